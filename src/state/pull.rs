//! `state pull`: copies every object of a cluster's state store into a
//! local directory. It holds the cluster's CA keys and bootstrap token, so
//! every file is written owner-only (0600, directories 0700), and a key
//! that would land outside the directory (`..`, an absolute path) refuses
//! the whole pull before anything is written.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{StateError, StateStore};

/// Where `name` (a key relative to the store's prefix) goes under `dir`,
/// or `None` when it would leave `dir`.
pub fn local_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let rel = Path::new(name);
    let plain = !name.is_empty()
        && !name.contains('\\')
        && rel.components().all(|c| matches!(c, Component::Normal(_)))
        && !name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    plain.then(|| dir.join(rel))
}

fn io(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `path` and its missing parents, owner-only.
fn private_dirs(path: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| io(path, e))
}

/// Writes `bytes` to `path` with mode 0600, also when it existed before
/// with a looser mode.
fn private_file(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))
}

impl StateStore {
    /// Copies every object into `dir`; returns how many.
    pub async fn pull(&self, dir: &Path) -> Result<usize, StateError> {
        let objects = self.list().await?;
        let unsafe_keys: Vec<String> = objects
            .iter()
            .filter(|(k, _)| local_path(dir, k).is_none())
            .map(|(k, _)| format!("{}/{k}", self.prefix))
            .collect();
        if !unsafe_keys.is_empty() {
            return Err(StateError::UnsafeKeys {
                bucket: self.bucket.clone(),
                keys: unsafe_keys,
            });
        }
        private_dirs(dir)?;
        let mut n = 0;
        for (k, _) in &objects {
            let Some(path) = local_path(dir, k) else {
                continue;
            };
            let Some((bytes, _)) = self.get(k).await? else {
                continue;
            };
            if let Some(parent) = path.parent() {
                private_dirs(parent)?;
            }
            private_file(&path, &bytes)?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_directory() {
        let d = Path::new("/tmp/out");
        assert_eq!(local_path(d, "pki/ca.key"), Some(d.join("pki/ca.key")));
        assert_eq!(local_path(d, "config"), Some(d.join("config")));
        for bad in [
            "../evil",
            "pki/../../evil",
            "/etc/passwd",
            "",
            "a//b",
            "./x",
            "a/.",
            "a\\..\\b",
        ] {
            assert_eq!(local_path(d, bad), None, "{bad}");
        }
    }

    #[test]
    fn files_are_owner_only_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sub = dir.path().join("pki");
        private_dirs(&sub).unwrap_or_else(|e| panic!("{e}"));
        let f = sub.join("ca.key");
        std::fs::write(&f, "old").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        private_file(&f, b"new").unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(std::fs::read_to_string(&f).unwrap_or_default(), "new");
    }
}
