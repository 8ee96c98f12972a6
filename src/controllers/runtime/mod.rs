//! The controller runtime every in-cluster component shares, so that a
//! component is only observe → decide → act:
//!
//! - [`client`]: its Kubernetes clients (user agent, timeouts, and one
//!   client that never retries a 429, for evictions);
//! - [`leader`]: leader election on a Lease, fenced by time;
//! - [`serve`] and [`metrics`]: `/metrics`, `/healthz`, `/readyz`;
//! - [`cache`] and [`slim`]: stripped reflectors, and slim objects that
//!   decode only what components read;
//! - [`driver`]: the loop (interval and debounced watch events, error
//!   categories, `--once`, `--dry-run`, SIGTERM).
//!
//! A component implements [`Component`]; `driver::run` does the rest.

pub mod cache;
pub mod client;
pub mod driver;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod serve;
pub mod slim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

pub use client::Clients;
pub use driver::{Handle, RuntimeError, run_until_signal, start};
pub use leader::Elector;
pub use metrics::{Health, Metrics};

/// A duration flag: `500ms`, `30s`, `1m30s`, `2h`; zero and negative
/// values are refused.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration such as 500ms, 30s or 1m30s ({e})"))?;
    if d.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(d)
}

/// Parses an age or a TTL: zero allowed ("at once"), negative not.
pub fn age(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration such as 30m, 36h or 7d ({e})"))
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    /// JSON when the output is not a terminal.
    Auto,
    /// One JSON object per line.
    Json,
    /// Text.
    Text,
}

/// Flags every long-running component takes. Each has an environment
/// fallback, `CLUSTERCTL_<FLAG>`.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE", env = "CLUSTERCTL_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Time between passes (watch events also start one, debounced);
    /// default: the component's own (30s; node-cleanup 30m).
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_INTERVAL", value_parser = duration, allow_hyphen_values = true)]
    pub interval: Option<Duration>,
    /// One observe → decide → act pass, then exit (what CronJobs run).
    #[arg(long, env = "CLUSTERCTL_ONCE")]
    pub once: bool,
    /// Decide and report (logs, Events marked "(dry run)"), change nothing.
    #[arg(long, env = "CLUSTERCTL_DRY_RUN")]
    pub dry_run: bool,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(
        long,
        value_name = "ADDR",
        env = "CLUSTERCTL_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Elect a leader among replicas (off: this replica always acts).
    #[arg(long, env = "CLUSTERCTL_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub leader_elect: bool,
    /// The Lease's name (default: clusterctl-<component>).
    #[arg(long, env = "CLUSTERCTL_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// The Lease's namespace (default: the pod's, else kube-system).
    #[arg(long, env = "CLUSTERCTL_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease is valid after its last renewal.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_LEASE_DURATION", default_value = "15s", value_parser = duration, allow_hyphen_values = true)]
    pub lease_duration: Duration,
    /// How often the leader renews (shorter than --lease-duration).
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_RENEW_PERIOD", default_value = "5s", value_parser = duration, allow_hyphen_values = true)]
    pub renew_period: Duration,
    /// Watch events within this window start one pass.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_DEBOUNCE", default_value = "1s", value_parser = duration, allow_hyphen_values = true)]
    pub debounce: Duration,
    /// On SIGTERM, how long the pass in progress may take to finish.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration, allow_hyphen_values = true)]
    pub shutdown_grace: Duration,
    /// This replica's name (the pod's; a random suffix is added).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Log format.
    #[arg(
        long,
        value_enum,
        env = "CLUSTERCTL_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: LogFormatArg,
}

impl RuntimeArgs {
    /// Checks between flags (each flag's own value was checked by clap);
    /// the message names the flags.
    pub fn check(&self) -> Result<(), String> {
        if self.renew_period >= self.lease_duration {
            return Err(format!(
                "invalid value '{}' for '--renew-period <DURATION>': must be shorter than --lease-duration ({})",
                humantime::format_duration(self.renew_period),
                humantime::format_duration(self.lease_duration)
            ));
        }
        Ok(())
    }

    /// Defaults for a component run from code (tests): no metrics port
    /// conflicts (port 0), fast timings.
    pub fn for_tests() -> RuntimeArgs {
        RuntimeArgs {
            kubeconfig: None,
            interval: Some(Duration::from_millis(200)),
            once: false,
            dry_run: false,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            leader_elect: true,
            lease_name: None,
            lease_namespace: None,
            lease_duration: Duration::from_secs(3),
            renew_period: Duration::from_secs(1),
            debounce: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(1),
            pod_name: None,
            log_format: LogFormatArg::Auto,
        }
    }
}

/// A failed pass, sorted: a transient error skips this pass; a permanent
/// one stops the component with a clear message.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Try again next pass.
    #[error("{category}: {message}")]
    Transient {
        /// The metric label.
        category: &'static str,
        /// What failed.
        message: String,
    },
    /// Nothing will change by retrying (permissions, configuration).
    #[error("{category}: {message}")]
    Permanent {
        /// The metric label.
        category: &'static str,
        /// What failed.
        message: String,
    },
}

impl LoopError {
    /// Sorts an API error: 401 and 403 are permanent (credentials, RBAC);
    /// everything else may pass.
    pub fn from_kube(what: &str, e: kube::Error) -> LoopError {
        match &e {
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => LoopError::Permanent {
                category: "forbidden",
                message: format!("{what}: {e}"),
            },
            kube::Error::Api(_) => LoopError::Transient {
                category: "api",
                message: format!("{what}: {e}"),
            },
            _ => LoopError::Transient {
                category: "connection",
                message: format!("{what}: {e}"),
            },
        }
    }

    /// The metric label.
    pub fn category(&self) -> &'static str {
        match self {
            LoopError::Transient { category, .. } | LoopError::Permanent { category, .. } => {
                category
            }
        }
    }
}

/// What a pass gets.
pub struct Context {
    /// The clients.
    pub clients: Clients,
    /// Change nothing.
    pub dry_run: bool,
    /// This replica's identity.
    pub identity: String,
    /// Events.
    pub events: events::Events,
    /// The standard metrics (components register theirs in `start`).
    pub metrics: Metrics,
    elector: Option<Elector>,
    caches: std::sync::Mutex<Vec<futures::future::BoxFuture<'static, ()>>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    trigger: Arc<Notify>,
}

impl Context {
    /// Whether this replica may act now: it leads (within the renew
    /// deadline), or leader election is off. Check it before each write.
    pub fn may_act(&self) -> bool {
        self.elector.as_ref().is_none_or(Elector::is_leader)
    }

    /// A cache of `api`'s objects selected by `config`, each stripped by
    /// `strip` before it is stored. With `trigger`, its changes start a
    /// pass (debounced). `/readyz` waits for every cache's first list.
    pub fn cache<K>(
        &self,
        api: kube::Api<K>,
        config: watcher::Config,
        strip: fn(&mut K),
        trigger: bool,
    ) -> Store<K>
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let (reader, writer) = reflector::store();
        let notify = self.trigger.clone();
        let stream = watcher(api, config)
            .default_backoff()
            .modify(strip)
            .reflect(writer);
        let task = tokio::spawn(async move {
            stream
                .for_each(|ev| {
                    if trigger
                        && matches!(
                            ev,
                            Ok(watcher::Event::Apply(_)) | Ok(watcher::Event::Delete(_))
                        )
                    {
                        notify.notify_one();
                    }
                    if let Err(e) = ev {
                        tracing::warn!(error = %e, "watch failed; retrying with backoff");
                    }
                    futures::future::ready(())
                })
                .await;
        });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        let ready = reader.clone();
        self.caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::pin(async move {
                let _ = ready.wait_until_ready().await;
            }));
        reader
    }
}

/// A component: what it watches (`start`) and one pass (`tick`).
#[async_trait::async_trait]
pub trait Component: Send + 'static {
    /// Its name (the subcommand): the Lease, user agent and Event reporter.
    fn name(&self) -> &'static str;

    /// The time between passes when `--interval` does not say.
    fn default_interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Starts its caches (`ctx.cache`) and registers its metrics.
    async fn start(&mut self, _ctx: &Context) -> Result<(), LoopError> {
        Ok(())
    }

    /// One observe → decide → act pass. Check `ctx.may_act()` before each
    /// write, and write nothing under `ctx.dry_run`.
    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError>;
}

/// Resolves once `stop` is true (the guard `wait_for` returns is dropped
/// here, so callers stay `Send`).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse_what_is_not_one() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["-3s", "0s", "", "soon", "3", "1x", "🙂"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_duration_input_panics(s in "\\PC{0,12}") {
            let _ = duration(&s);
        }
    }
}
