//! Node cleanup on the controller runtime: each pass reads the runtime,
//! decides, removes (or, in a dry run, only says), and logs and exports
//! what it reclaimed: a count per kind, and the bytes the filesystem got
//! back.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::OnceCell;

use super::decide::{Removal, Rules, decide};
use super::{Backend, BackendError, detect, free_bytes};
use crate::controllers::runtime::{Component, Context, LoopError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Where the runtimes' sockets are.
#[derive(Debug, Clone)]
pub struct Sockets {
    /// Docker's.
    pub docker: String,
    /// containerd's.
    pub containerd: String,
    /// containerd's root directory (for its disk).
    pub containerd_root: Option<String>,
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// What was removed (or, in a dry run, would be).
    pub removed: Vec<Removal>,
    /// What could not be removed, and why.
    pub failed: Vec<(Removal, String)>,
    /// Bytes the filesystem got back (free space after minus before).
    pub bytes_freed: u64,
}

/// Node cleanup.
pub struct NodeCleanup {
    sockets: Sockets,
    rules: Rules,
    backend: OnceCell<Box<dyn Backend>>,
    removed: Family<KindLabel, Counter>,
    failed: Family<KindLabel, Counter>,
    bytes: Counter,
    /// The last pass (for tests).
    pub last: std::sync::Arc<std::sync::Mutex<Option<Pass>>>,
}

impl NodeCleanup {
    /// Node cleanup of the runtime behind `sockets`, by `rules`.
    pub fn new(sockets: Sockets, rules: Rules) -> NodeCleanup {
        NodeCleanup {
            sockets,
            rules,
            backend: OnceCell::new(),
            removed: Family::default(),
            failed: Family::default(),
            bytes: Counter::default(),
            last: Default::default(),
        }
    }

    async fn backend(&self) -> Result<&dyn Backend, BackendError> {
        self.backend
            .get_or_try_init(|| {
                detect(
                    &self.sockets.docker,
                    &self.sockets.containerd,
                    self.sockets.containerd_root.as_deref(),
                )
            })
            .await
            .map(|b| b.as_ref())
    }
}

/// One pass against `backend`: decide, then remove unless `dry_run`.
pub async fn pass(
    backend: &dyn Backend,
    rules: &Rules,
    dry_run: bool,
    disk: Option<&str>,
) -> Result<Pass, BackendError> {
    let inv = backend.inventory().await?;
    let plan = decide(&inv, rules, k8s_openapi::jiff::Timestamp::now());
    let mut out = Pass::default();
    let before = disk.and_then(free_bytes);
    for r in plan {
        if dry_run {
            tracing::info!(kind = r.kind, id = %r.id, name = %r.name, reason = %r.reason, "would remove");
            out.removed.push(r);
            continue;
        }
        let done = match r.kind {
            "container" => backend.remove_container(&r.id).await,
            "image" => backend.remove_image(&r.id).await,
            _ => backend.remove_volume(&r.id).await,
        };
        match done {
            Ok(()) => {
                tracing::info!(kind = r.kind, id = %r.id, name = %r.name, reason = %r.reason, "removed");
                out.removed.push(r);
            }
            Err(e) => {
                tracing::warn!(kind = r.kind, id = %r.id, error = %e, "removing failed");
                out.failed.push((r, e.0));
            }
        }
    }
    let after = disk.and_then(free_bytes);
    if let (Some(b), Some(a)) = (before, after) {
        out.bytes_freed = a.saturating_sub(b);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Component for NodeCleanup {
    fn name(&self) -> &'static str {
        "node-cleanup"
    }

    /// A disk sweep, not a controller: every 30 minutes.
    fn default_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30 * 60)
    }

    async fn start(&mut self, ctx: &Context) -> Result<(), LoopError> {
        ctx.metrics.register(
            "clusterctl_node_cleanup_removed",
            "Containers, images and volumes removed",
            self.removed.clone(),
        );
        ctx.metrics.register(
            "clusterctl_node_cleanup_failed",
            "Removals that failed",
            self.failed.clone(),
        );
        ctx.metrics.register(
            "clusterctl_node_cleanup_reclaimed_bytes",
            "Bytes the runtime's filesystem got back",
            self.bytes.clone(),
        );
        Ok(())
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        let backend = self.backend().await.map_err(|e| LoopError::Transient {
            category: "runtime",
            message: e.0,
        })?;
        let disk = backend.root();
        let dry_run = ctx.dry_run || !ctx.may_act();
        let p = pass(backend, &self.rules, dry_run, disk.as_deref())
            .await
            .map_err(|e| LoopError::Transient {
                category: "runtime",
                message: e.0,
            })?;
        if !dry_run {
            for r in &p.removed {
                self.removed
                    .get_or_create(&KindLabel {
                        kind: r.kind.to_string(),
                    })
                    .inc();
            }
            for (r, _) in &p.failed {
                self.failed
                    .get_or_create(&KindLabel {
                        kind: r.kind.to_string(),
                    })
                    .inc();
            }
            self.bytes.inc_by(p.bytes_freed);
        }
        let count = |k: &str| p.removed.iter().filter(|r| r.kind == k).count();
        tracing::info!(
            runtime = %backend.name(),
            dry_run,
            containers = count("container"),
            images = count("image"),
            volumes = count("volume"),
            failed = p.failed.len(),
            bytes_freed = p.bytes_freed,
            "node cleanup pass"
        );
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        Ok(())
    }
}
