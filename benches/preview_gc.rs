//! `preview gc`'s decision (pure) over 10,000 preview namespaces and
//! 10,000 stored ledgers. Run with `scripts/bench preview-gc`, which also
//! prints the wall time and API calls of a real gc run over 1,000 previews;
//! prints figures, asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clusterctl::preview::gc::{Seen, decide};

fn main() {
    let quick = std::env::args().any(|a| a == "--test")
        || std::env::var_os("CLUSTERCTL_BENCH_QUICK").is_some();
    let runs = if quick { 1 } else { 50 };
    let now = chrono::Utc::now();
    // 10,000 previews: 3,000 expired, 500 without an expiry (default TTL),
    // 200 terminating; plus 100 ledgers whose namespace is gone.
    let seen: Vec<Seen> = (0..10_000)
        .map(|i| Seen {
            name: format!("repo-branch-{i}"),
            ours: true,
            terminating: i % 50 == 0,
            expires_at: (i % 20 != 0)
                .then(|| now + chrono::Duration::hours(if i % 10 < 3 { -1 } else { 24 })),
            last_deployed: Some(now - chrono::Duration::hours((i % 100) as i64)),
        })
        .collect();
    let stored: BTreeSet<String> = (0..10_100).map(|i| format!("repo-branch-{i}")).collect();
    let ttl = Duration::from_secs(72 * 3600);
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..runs {
        let t = Instant::now();
        plan = Some(decide(&seen, &stored, now, ttl));
        times.push(t.elapsed());
    }
    times.sort();
    let p = plan.unwrap();
    println!(
        "preview gc decide, 10,000 namespaces + 10,100 ledgers: median {:.2} ms over {runs} runs ({} to delete, {} DNS, {} leftovers, {} kept)",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        p.delete.len(),
        p.dns.len(),
        p.leftovers.len(),
        p.kept
    );
}
