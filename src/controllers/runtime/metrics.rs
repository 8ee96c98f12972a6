//! The metrics every component exports (Prometheus text format, through
//! `prometheus-client`), and the health the HTTP endpoints report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `category` label of loop errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// transient, permanent, or a component's own.
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    component: String,
}

/// The standard metrics, and the registry components add theirs to.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served at `/metrics`.
    pub registry: Arc<Mutex<Registry>>,
    /// `clusterctl_loop_duration_seconds`.
    pub loop_duration: Histogram,
    /// `clusterctl_loop_errors_total{category}`.
    pub loop_errors: Family<ErrorLabels, Counter>,
    /// `clusterctl_leader`.
    pub leader: Gauge,
}

impl Metrics {
    /// The standard metrics of `component`.
    pub fn new(component: &str) -> Metrics {
        let mut registry = Registry::default();
        let loop_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "clusterctl_loop_duration_seconds",
            "Time one observe-decide-act pass took",
            loop_duration.clone(),
        );
        let loop_errors = Family::<ErrorLabels, Counter>::default();
        // Exported at zero from the start, so rates work before a failure.
        for category in ["api", "connection", "forbidden"] {
            let _ = loop_errors.get_or_create(&ErrorLabels {
                category: category.into(),
            });
        }
        registry.register(
            "clusterctl_loop_errors",
            "Passes that failed, by category",
            loop_errors.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "clusterctl_leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                component: component.to_string(),
            })
            .set(1);
        registry.register("clusterctl_build_info", "Build of this binary", build);
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            loop_duration,
            loop_errors,
            leader,
        }
    }

    /// Registers a component's own metric.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(name, help, metric);
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }

    /// Counts an error of `category`.
    pub fn error(&self, category: &str) {
        self.loop_errors
            .get_or_create(&ErrorLabels {
                category: category.to_string(),
            })
            .inc();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What `/healthz` and `/readyz` answer from.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    /// When the pass in progress started (0: none in progress).
    pass_started_ms: Arc<AtomicU64>,
    /// How long a pass may run before the loop counts as stuck.
    stuck_after_ms: Arc<AtomicU64>,
}

impl Health {
    /// Health that calls a pass stuck after `stuck_after`.
    pub fn new(stuck_after: Duration) -> Health {
        let h = Health::default();
        h.stuck_after_ms
            .store(stuck_after.as_millis() as u64, Ordering::Relaxed);
        h
    }

    /// The caches have synced.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Whether the caches have synced.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A pass starts.
    pub fn pass_started(&self) {
        self.pass_started_ms
            .store(now_ms().max(1), Ordering::Relaxed);
    }

    /// The pass ended.
    pub fn pass_ended(&self) {
        self.pass_started_ms.store(0, Ordering::Relaxed);
    }

    /// Alive: no pass has been running for longer than allowed.
    pub fn alive(&self) -> Result<(), String> {
        let started = self.pass_started_ms.load(Ordering::Relaxed);
        let limit = self.stuck_after_ms.load(Ordering::Relaxed);
        if started == 0 || limit == 0 {
            return Ok(());
        }
        let running = now_ms().saturating_sub(started);
        if running > limit {
            return Err(format!(
                "the current pass has run for {running} ms (limit {limit} ms)"
            ));
        }
        Ok(())
    }
}
