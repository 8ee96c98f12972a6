//! Rendering: the model → files. Terraform (`terraform/`) and addons
//! (`addons/`), byte-for-byte deterministic, written atomically, and checked
//! against an existing output directory with `--check`.

pub mod hclfmt;
pub mod terraform;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::Model;

/// Errors of rendering and writing.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed to render.
    #[error("template {template}: {source}")]
    Template {
        /// Template name.
        template: String,
        /// The tera error (its chain names the failing expression).
        #[source]
        source: tera::Error,
    },
    /// The model could not be turned into template context.
    #[error("serialising the model: {0}")]
    Serialize(#[source] serde_json::Error),
    /// Writing the output failed.
    #[error("cannot write {}: {}", path.display(), crate::io_reason(source))]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The top-level directories a render owns inside the output directory.
pub const OWNED_DIRS: &[&str] = &["terraform", "addons"];

/// Rendered files: relative path → content.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Files in path order.
    pub files: BTreeMap<String, String>,
}

/// How an output directory differs from a render.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// Relative path.
    pub path: String,
    /// `changed`, `missing` or `extra`.
    pub kind: &'static str,
}

/// Renders every file of a model.
pub fn render(model: &Model) -> Result<Rendered, RenderError> {
    let mut files = terraform::render(model)?;
    for (path, content) in &model.addons {
        files.insert(format!("addons/{path}"), content.clone());
    }
    Ok(Rendered { files })
}

fn existing_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for top in OWNED_DIRS {
        let mut stack = vec![dir.join(top)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(dir) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if !rel.contains("/.terraform")
                        && !rel.ends_with(".terraform.lock.hcl")
                        && !rel.contains(".tfstate")
                    {
                        out.push(rel);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

impl Rendered {
    /// Lists how `dir` differs from this render (empty when up to date).
    pub fn check(&self, dir: &Path) -> Vec<Difference> {
        let mut diffs = Vec::new();
        for (path, content) in &self.files {
            match std::fs::read(dir.join(path)) {
                Ok(bytes) if bytes == content.as_bytes() => {}
                Ok(_) => diffs.push(Difference {
                    path: path.clone(),
                    kind: "changed",
                }),
                Err(_) => diffs.push(Difference {
                    path: path.clone(),
                    kind: "missing",
                }),
            }
        }
        for path in existing_files(dir) {
            if !self.files.contains_key(&path) {
                diffs.push(Difference {
                    path,
                    kind: "extra",
                });
            }
        }
        diffs.sort_by(|a, b| a.path.cmp(&b.path));
        diffs
    }

    /// Writes the files under `dir`, each atomically (temp file + rename),
    /// skipping unchanged files and removing files of a previous render that
    /// this one no longer has. Returns the number of files written.
    pub fn write(&self, dir: &Path) -> Result<usize, RenderError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RenderError::Write { path, source }
        };
        let mut written = 0;
        for (rel, content) in &self.files {
            let path = dir.join(rel);
            if std::fs::read(&path).is_ok_and(|b| b == content.as_bytes()) {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(err(parent))?;
            }
            let tmp = path.with_extension("clusterctl-tmp");
            std::fs::write(&tmp, content).map_err(err(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(err(&path))?;
            written += 1;
        }
        for rel in existing_files(dir) {
            if !self.files.contains_key(&rel) {
                let path = dir.join(&rel);
                std::fs::remove_file(&path).map_err(err(&path))?;
            }
        }
        Ok(written)
    }
}
