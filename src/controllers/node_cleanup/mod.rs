//! `clusterctl node-cleanup`: on every node (a DaemonSet), removes exited
//! containers, dangling images and dangling volumes through the node's
//! container runtime: containerd ([`containerd`]) or Docker ([`docker`]),
//! told apart by their sockets. Observe (the runtime's inventory) → decide
//! ([`decide`], pure) → act (remove, count, measure), on the controller
//! runtime.

pub mod component;
pub mod containerd;
pub mod decide;
pub mod docker;

#[cfg(test)]
mod tests;

use std::path::Path;

/// A backend failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A container runtime node cleanup can read and clean.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Which runtime, where.
    fn name(&self) -> String;
    /// The runtime's data directory (its filesystem is what cleanup frees).
    fn root(&self) -> Option<String>;
    /// Everything it holds.
    async fn inventory(&self) -> Result<decide::Inventory, BackendError>;
    /// Removes a container.
    async fn remove_container(&self, id: &str) -> Result<(), BackendError>;
    /// Removes an image (never forced).
    async fn remove_image(&self, id: &str) -> Result<(), BackendError>;
    /// Removes a volume.
    async fn remove_volume(&self, name: &str) -> Result<(), BackendError>;
}

/// How full the filesystem holding `path` is (percent) and its size.
pub fn disk_usage(path: &str) -> Option<(f64, u64)> {
    let s = rustix::fs::statvfs(Path::new(path)).ok()?;
    let total = s.f_blocks.checked_mul(s.f_frsize)?;
    let free = s.f_bavail.checked_mul(s.f_frsize)?;
    (total > 0).then(|| ((total - free) as f64 * 100.0 / total as f64, total))
}

/// Free bytes of the filesystem holding `path`.
pub fn free_bytes(path: &str) -> Option<u64> {
    let s = rustix::fs::statvfs(Path::new(path)).ok()?;
    s.f_bavail.checked_mul(s.f_frsize)
}

/// Which runtime: Docker when its socket is there, else containerd.
pub async fn detect(
    docker_socket: &str,
    containerd_socket: &str,
    containerd_root: Option<&str>,
) -> Result<Box<dyn Backend>, BackendError> {
    if Path::new(docker_socket).exists() {
        return Ok(Box::new(
            docker::DockerBackend::connect(docker_socket).await?,
        ));
    }
    if Path::new(containerd_socket).exists() {
        return Ok(Box::new(
            containerd::ContainerdBackend::connect(containerd_socket, containerd_root).await?,
        ));
    }
    Err(BackendError(format!(
        "no container runtime: neither {docker_socket} (Docker) nor {containerd_socket} (containerd) exists"
    )))
}
