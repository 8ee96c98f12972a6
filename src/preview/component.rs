//! `preview gc` on the controller runtime: with `--once` (the CronJob of
//! `addons/preview-gc/`) one pass whose failures make the exit non-zero;
//! without it, a pass every 30 minutes (as Jenkins X's gc) under leader
//! election, failures retried by the next pass.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::cloud::dns::Dns;
use crate::controllers::runtime::{Component, Context, LoopError};

use super::ledger::LedgerStore;
use super::{Shared, gc};

/// The garbage collector.
pub struct PreviewGc {
    dns: Arc<dyn Dns>,
    ledgers: LedgerStore,
    default_ttl: Duration,
    json: bool,
    once: bool,
}

impl PreviewGc {
    /// A collector; `once`: failures end the run with an error.
    pub fn new(
        dns: Arc<dyn Dns>,
        ledgers: LedgerStore,
        default_ttl: Duration,
        json: bool,
        once: bool,
    ) -> PreviewGc {
        PreviewGc {
            dns,
            ledgers,
            default_ttl,
            json,
            once,
        }
    }
}

#[async_trait::async_trait]
impl Component for PreviewGc {
    fn name(&self) -> &'static str {
        "preview-gc"
    }

    fn default_interval(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        let shared = Shared {
            client: ctx.clients.client.clone(),
            dns: self.dns.clone(),
            ledgers: self.ledgers.clone(),
        };
        let dry_run = ctx.dry_run || !ctx.may_act();
        let report = gc::run(&shared, chrono::Utc::now(), self.default_ttl, dry_run)
            .await
            .map_err(|e| {
                let message = e.to_string();
                match self.once {
                    true => LoopError::Permanent {
                        category: "preview-gc",
                        message,
                    },
                    false => LoopError::Transient {
                        category: "preview-gc",
                        message,
                    },
                }
            })?;
        let text = if self.json {
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
        } else {
            gc::text(&report)
        };
        let _ = std::io::stdout().write_all(text.as_bytes());
        for f in &report.failed {
            tracing::warn!(namespace = %f.namespace, error = %f.error, "preview not finished; the next run retries it");
        }
        if report.failed.is_empty() {
            return Ok(());
        }
        let message = format!("{} previews could not be finished", report.failed.len());
        Err(if self.once {
            LoopError::Permanent {
                category: "preview-gc",
                message,
            }
        } else {
            LoopError::Transient {
                category: "preview-gc",
                message,
            }
        })
    }
}
