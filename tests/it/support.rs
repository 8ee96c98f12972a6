//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the clusterctl binary from the repository root.
pub fn clusterctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterctl"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .output()
        .expect("run clusterctl")
}

/// Whether tests must fail, not skip, when an external tool is missing.
/// `scripts/test` sets CLUSTERCTL_REQUIRE_TOOLS=1 after installing them.
pub fn require_tools() -> bool {
    std::env::var("CLUSTERCTL_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Finds an executable on PATH; when it is missing, skips (prints why) or
/// fails under CLUSTERCTL_REQUIRE_TOOLS=1.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !require_tools(),
            "{name} is required (CLUSTERCTL_REQUIRE_TOOLS=1) but not on PATH"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// Finds a filesystem mirror of the hashicorp/aws provider: the directory
/// named by CLUSTERCTL_TF_PROVIDER_MIRROR, else the usual plugin
/// directories, else any /opt/<dir> that holds one.
pub fn provider_mirror() -> Option<PathBuf> {
    let has_aws = |d: &Path| d.join("registry.terraform.io/hashicorp/aws").is_dir();
    if let Some(d) = std::env::var_os("CLUSTERCTL_TF_PROVIDER_MIRROR") {
        let d = PathBuf::from(d);
        return has_aws(&d).then_some(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut candidates = vec![
        home.join(".terraform.d/plugins"),
        home.join(".local/share/terraform/plugins"),
        PathBuf::from("/usr/local/share/terraform/plugins"),
        PathBuf::from("/usr/share/terraform/plugins"),
    ];
    if let Ok(entries) = std::fs::read_dir("/opt") {
        let mut opt: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        opt.sort();
        candidates.extend(opt);
    }
    candidates.into_iter().find(|d| has_aws(d))
}

/// The example specs.
pub const EXAMPLES: &[&str] = &["dev", "ha", "large"];

/// Renders an example into a fresh temporary directory with the binary.
pub fn render_example(example: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = clusterctl(&[
        "render",
        "-f",
        &format!("examples/{example}.yaml"),
        "-o",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "render {example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// An edited copy of an example spec, in a temporary directory.
pub struct EditedSpec {
    _dir: tempfile::TempDir,
    example: String,
    /// The copy.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl EditedSpec {
    /// `examples/<example>.yaml` with `edit` applied.
    pub fn new(example: &str, edit: impl FnOnce(String) -> String) -> EditedSpec {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{example}.yaml"));
        let mut spec = EditedSpec {
            _dir: dir,
            example: example.to_string(),
            path,
            text: String::new(),
        };
        spec.set(edit);
        spec
    }

    /// Rewrites the copy as the example with `edit` applied.
    pub fn set(&mut self, edit: impl FnOnce(String) -> String) {
        let original =
            std::fs::read_to_string(root().join(format!("examples/{}.yaml", self.example)))
                .expect("read example");
        self.text = edit(original);
        std::fs::write(&self.path, &self.text).expect("write spec");
    }

    /// The copy's path, for `-f`.
    pub fn file(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// The 1-based line of the first line containing `needle`.
    pub fn line_of(&self, needle: &str) -> usize {
        self.text
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line contains {needle}"))
            + 1
    }
}
