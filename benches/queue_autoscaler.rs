//! The queue autoscaler's decision for 1,000 targets, and the requests one
//! poll makes for them. Run with `scripts/bench queue-autoscaler`; prints
//! figures, asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clusterctl::controllers::queue_autoscaler::decide::{decide, remember};
use clusterctl::controllers::queue_autoscaler::stats::{
    Matcher, QueueStats, Queues, reading, requests,
};
use clusterctl::controllers::queue_autoscaler::target::{PREFIX, parse};

fn main() {
    let quick = std::env::args().any(|a| a == "--test")
        || std::env::var_os("CLUSTERCTL_BENCH_QUICK").is_some();
    let runs = if quick { 1 } else { 50 };
    let now = chrono::Utc::now();
    // 1,000 targets over 4 vhosts of 2 servers; a tenth read a pattern.
    let targets: Vec<_> = (0..1000)
        .map(|i| {
            let vhost = format!("v{}", i % 4);
            let mut a = BTreeMap::from([
                (format!("{PREFIX}queue"), format!("{vhost}/q{i}")),
                (format!("{PREFIX}messages-per-pod"), "100".to_string()),
                (format!("{PREFIX}server"), format!("s{}", i % 2)),
                (format!("{PREFIX}min"), "0".to_string()),
                (format!("{PREFIX}max"), "50".to_string()),
            ]);
            if i % 10 == 0 {
                a.insert(format!("{PREFIX}queue"), format!("{vhost}/q{i}.*"));
                a.insert(format!("{PREFIX}queue-regex"), "true".into());
            }
            parse(&a).unwrap()
        })
        .collect();
    let queues: BTreeMap<String, Queues> = (0..4)
        .map(|v| {
            let qs = (0..1000)
                .filter(|i| i % 4 == v)
                .map(|i| QueueStats {
                    name: format!("q{i}"),
                    ready: Some((i * 37 % 5000) as f64),
                    unacked: Some((i % 50) as f64),
                    consumers: Some(2.0),
                    publish_rate: Some(1.0),
                    ack_rate: Some(1.0),
                })
                .collect::<Vec<QueueStats>>();
            (format!("v{v}"), Queues::from(qs))
        })
        .collect();
    // Patterns compiled once, as the controller keeps them.
    let matchers: Vec<Matcher> = targets
        .iter()
        .map(|t| Matcher::new(&t.queue).unwrap())
        .collect();
    let mut windows: Vec<Vec<(chrono::DateTime<chrono::Utc>, i32)>> =
        vec![Vec::new(); targets.len()];
    let mut samples: Vec<Duration> = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for (i, spec) in targets.iter().enumerate() {
            let r = reading(&matchers[i], spec.operation, &queues[&spec.queue.vhost]);
            let s = decide(spec, 3, r.as_ref(), &windows[i], now);
            remember(&mut windows[i], spec, now, s.recommended);
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "1,000 targets: decision pass median {:.2} ms, max {:.2} ms over {} runs",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
    println!(
        "management API requests per poll: {} (one per server and vhost, for 1,000 targets)",
        requests(&targets).len()
    );
}
