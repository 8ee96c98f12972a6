//! The node autoscaler's decision at scale: a generated snapshot of 5,000
//! nodes, 150,000 pods, 50 groups × 3 zones and 2,000 pending pods, and
//! cluster-autoscaler's published scale (1,000 nodes × 30 pods). Targets:
//! under 100 ms a decision, under 300 MB RSS. Run with `scripts/bench
//! node-autoscaler`; prints figures, asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use clusterctl::controllers::node_autoscaler::generate::{Size, synthetic};
use clusterctl::controllers::node_autoscaler::{Settings, decide};

fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn case(name: &str, size: Size, iterations: usize) {
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let snap = synthetic(size, now);
    // Room to grow: the default --max-nodes-total (1,000) would hold the
    // large case at its size.
    let settings = Settings {
        max_nodes_total: 20_000,
        ..Settings::default()
    };
    let mut samples: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..iterations {
        let t = Instant::now();
        let d = decide(&snap, &settings);
        samples.push(t.elapsed());
        last = Some(d);
    }
    samples.sort();
    let d = last.unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: {} nodes, {} pods ({} pending), {} groups x {} zones",
        snap.nodes.len(),
        snap.pods.len(),
        size.pending,
        size.groups,
        size.zones
    );
    println!(
        "  decision: median {:.1} ms, max {:.1} ms over {} runs (target under 100 ms)",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
    println!(
        "  decided: {} ASGs to grow, {} nodes to remove, {} Events",
        d.set_desired.len(),
        d.remove.len(),
        d.notes.len()
    );
    println!(
        "  RSS now {:.0} MB, peak {:.0} MB (snapshot included; target under 300 MB)",
        rss_mb("VmRSS:"),
        rss_mb("VmHWM:")
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test")
        || std::env::var_os("CLUSTERCTL_BENCH_QUICK").is_some();
    let runs = if quick { 1 } else { 10 };
    case(
        "cluster-autoscaler's published scale",
        Size {
            nodes: 1000,
            pods: 30_000,
            groups: 10,
            zones: 3,
            pending: 300,
        },
        runs,
    );
    case(
        "large",
        Size {
            nodes: 5000,
            pods: 150_000,
            groups: 50,
            zones: 3,
            pending: 2000,
        },
        runs,
    );
}
