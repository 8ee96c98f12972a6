//! Table tests: the annotations, the statistics, and the decision.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::decide::{decide, remember};
use super::stats::{
    Matcher, Queues, Reading, parse_queues, queues_path, reading, requests, uncounted,
};
use super::target::{Mode, Operation, PREFIX, TargetSpec, parse, queue_ref};

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
        .collect()
}

fn spec(pairs: &[(&str, &str)]) -> TargetSpec {
    let mut all = vec![("queue", "orders"), ("messages-per-pod", "100")];
    all.extend_from_slice(pairs);
    parse(&ann(&all)).unwrap_or_else(|p| panic!("{p:?}"))
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn read(ready: f64, unacked: f64) -> Reading {
    Reading {
        ready: Some(ready),
        unacked: Some(unacked),
        publish_rate: Some(0.0),
        ack_rate: Some(0.0),
    }
}

/// A window of `minutes` minutes of the same recommendation.
fn history(minutes: i64, value: i32) -> Vec<(DateTime<Utc>, i32)> {
    (0..=minutes)
        .rev()
        .map(|m| (now() - chrono::Duration::minutes(m), value))
        .collect()
}

#[test]
fn annotations_are_read_strictly() {
    let s = spec(&[]);
    assert_eq!(
        (s.queue.vhost.as_str(), s.queue.name.as_str()),
        ("/", "orders")
    );
    assert_eq!((s.min, s.max, s.max_step), (1, 10, 10));
    assert_eq!(s.mode, Mode::Length);
    assert_eq!(s.scale_down_window, Duration::from_secs(300));
    let s = spec(&[
        ("queue", "prod/orders"),
        ("mode", "rate"),
        ("min", "0"),
        ("max", "50"),
        ("scale-down-window", "10m"),
        ("exclude-unacked", "true"),
    ]);
    assert_eq!(s.queue.vhost, "prod");
    assert_eq!(
        (s.min, s.max, s.mode, s.exclude_unacked),
        (0, 50, Mode::Rate, true)
    );
    let s = spec(&[
        ("queue", "prod/orders-.*"),
        ("queue-regex", "true"),
        ("operation", "max"),
    ]);
    assert!(s.queue.regex);
    assert_eq!(s.operation, Operation::Max);

    let bad: &[(&[(&str, &str)], &str)] = &[
        (
            &[("queue", "orders"), ("messages-per-pod", "lots")],
            "messages-per-pod: \"lots\" is not a number above zero",
        ),
        (
            &[
                ("queue", "orders"),
                ("messages-per-pod", "10"),
                ("min", "5"),
                ("max", "2"),
            ],
            "min: 5 is above max (2)",
        ),
        (
            &[
                ("queue", "orders"),
                ("messages-per-pod", "10"),
                ("mode", "magic"),
            ],
            "mode: \"magic\" is not length or rate",
        ),
        (
            &[
                ("queue", "o[("),
                ("queue-regex", "true"),
                ("messages-per-pod", "10"),
            ],
            "queue: \"o[(\" is not a regular expression",
        ),
        (
            &[
                ("queue", "orders"),
                ("messages-per-pod", "10"),
                ("min", "-1"),
            ],
            "min: \"-1\" is not a whole number of at least 0",
        ),
        (
            &[
                ("queue", "orders"),
                ("messages-per-pod", "10"),
                ("colour", "blue"),
            ],
            "colour: unknown annotation",
        ),
        (&[("messages-per-pod", "10")], "queue: is required"),
        (&[("queue", "orders")], "messages-per-pod: is required"),
        (
            &[
                ("queue", "orders"),
                ("messages-per-pod", "10"),
                ("operation", "sum"),
            ],
            "operation: only combines the queues of a pattern",
        ),
        (
            &[
                ("queue", "orders"),
                ("messages-per-pod", "10"),
                ("scale-down-window", "soon"),
            ],
            "scale-down-window: \"soon\" is not a duration",
        ),
        (
            &[("queue", "vhost/"), ("messages-per-pod", "10")],
            "queue: \"vhost/\" names no queue",
        ),
    ];
    for (pairs, want) in bad {
        let err = parse(&ann(pairs)).unwrap_err();
        let text: Vec<String> = err.iter().map(|p| p.to_string()).collect();
        assert!(text.iter().any(|t| t.contains(want)), "{pairs:?}: {text:?}");
        assert!(text.iter().all(|t| t.starts_with(PREFIX)), "{text:?}");
    }
    // Every problem at once.
    let err = parse(&ann(&[
        ("queue", "orders"),
        ("messages-per-pod", "x"),
        ("mode", "y"),
    ]))
    .unwrap_err();
    assert_eq!(err.len(), 2);
    assert_eq!(queue_ref("/orders", false).unwrap().vhost, "/");
}

#[test]
fn statistics_are_read_defensively_and_polled_once_per_vhost() {
    let json = serde_json::json!([
        { "name": "orders", "vhost": "/", "messages_ready": 900, "messages_unacknowledged": 100, "consumers": 2,
          "message_stats": { "publish_details": { "rate": 12.5 }, "ack_details": { "rate": 10.0 } } },
        { "name": "orders-eu", "vhost": "/", "messages_ready": 10, "messages_unacknowledged": 0 },
        // A queue the API has just seen: no counts yet.
        { "name": "fresh", "vhost": "/" },
    ]);
    let mut qs = Queues::from(parse_queues(&json));
    let q = |name: &str, regex| Matcher::new(&queue_ref(name, regex).unwrap()).unwrap();
    let r = reading(&q("orders", false), Operation::Sum, &qs).unwrap();
    assert_eq!(
        (r.ready, r.unacked, r.publish_rate),
        (Some(900.0), Some(100.0), Some(12.5))
    );
    let r = reading(&q("orders.*", true), Operation::Sum, &qs).unwrap();
    assert_eq!(r.ready, Some(910.0));
    let r = reading(&q("orders.*", true), Operation::Max, &qs).unwrap();
    assert_eq!(r.ready, Some(900.0));
    let r = reading(&q("orders.*", true), Operation::Avg, &qs).unwrap();
    assert_eq!(r.ready, Some(455.0));
    // Missing fields stay missing; an unknown queue reads nothing.
    let r = reading(&q("fresh", false), Operation::Sum, &qs).unwrap();
    assert_eq!(r.ready, None);
    assert!(reading(&q("nope", false), Operation::Sum, &qs).is_none());
    // What an AMQP passive declare should read: a by-name queue the API
    // did not count; never a pattern.
    assert_eq!(uncounted(&q("fresh", false), &qs), Some("fresh"));
    assert_eq!(uncounted(&q("nope", false), &qs), Some("nope"));
    assert_eq!(uncounted(&q("orders", false), &qs), None);
    assert_eq!(uncounted(&q("fr.*", true), &qs), None);
    // Its depth fills in ready; unacked stays unknown.
    qs.fill_ready("nope", 40.0, 1.0);
    qs.fill_ready("fresh", 7.0, 0.0);
    let r = reading(&q("nope", false), Operation::Sum, &qs).unwrap();
    assert_eq!((r.ready, r.unacked), (Some(40.0), None));
    let r = reading(&q("fresh", false), Operation::Sum, &qs).unwrap();
    assert_eq!((r.ready, r.unacked), (Some(7.0), None));
    // Fifty targets over two vhosts: two requests.
    let mut targets = Vec::new();
    for i in 0..50 {
        let vhost = if i % 2 == 0 { "a" } else { "b" };
        targets.push(spec(&[("queue", &format!("{vhost}/q{i}"))]));
    }
    assert_eq!(requests(&targets).len(), 2);
    assert_eq!(queues_path("/").split('?').next(), Some("/api/queues/%2F"));
}

#[test]
fn decisions() {
    type Row = (
        &'static str,
        TargetSpec,
        i32,
        Option<Reading>,
        Vec<(DateTime<Utc>, i32)>,
        i32,
        bool,
    );
    let base = spec(&[]);
    let zero = spec(&[("min", "0")]);
    let table: Vec<Row> = vec![
        (
            "1,000 messages at 100 a pod: 10 replicas",
            base.clone(),
            1,
            Some(read(1000.0, 0.0)),
            vec![],
            10,
            false,
        ),
        (
            "unacked count too",
            base.clone(),
            1,
            Some(read(500.0, 500.0)),
            vec![],
            10,
            false,
        ),
        (
            "exclude-unacked counts ready only",
            spec(&[("exclude-unacked", "true")]),
            1,
            Some(read(500.0, 500.0)),
            vec![],
            5,
            false,
        ),
        (
            "rounded up",
            base.clone(),
            1,
            Some(read(101.0, 0.0)),
            vec![],
            2,
            false,
        ),
        (
            "clamped to max",
            spec(&[("max", "4")]),
            1,
            Some(read(10_000.0, 0.0)),
            vec![],
            4,
            false,
        ),
        (
            "up bounded by max-step",
            spec(&[("max-step", "3")]),
            2,
            Some(read(1000.0, 0.0)),
            vec![],
            5,
            false,
        ),
        (
            "steady: no change",
            base.clone(),
            3,
            Some(read(300.0, 0.0)),
            history(10, 3),
            3,
            false,
        ),
        (
            "down waits for the window",
            base.clone(),
            5,
            Some(read(100.0, 0.0)),
            history(2, 5),
            5,
            false,
        ),
        (
            "down once the window is covered",
            base.clone(),
            5,
            Some(read(100.0, 0.0)),
            history(6, 1),
            1,
            false,
        ),
        (
            "down to the window's highest recommendation",
            base.clone(),
            8,
            Some(read(100.0, 0.0)),
            {
                let mut h = history(6, 1);
                h.push((now() - chrono::Duration::minutes(1), 4));
                h
            },
            4,
            false,
        ),
        (
            "down bounded by max-step",
            spec(&[("max-step", "2")]),
            8,
            Some(read(0.0, 0.0)),
            history(6, 1),
            6,
            false,
        ),
        (
            "never below min",
            spec(&[("min", "2")]),
            5,
            Some(read(0.0, 0.0)),
            history(6, 2),
            2,
            false,
        ),
        (
            "an empty queue at min 0 goes to zero",
            zero.clone(),
            2,
            Some(read(0.0, 0.0)),
            history(6, 0),
            0,
            false,
        ),
        (
            "at zero, one message wakes it (activation 1)",
            zero.clone(),
            0,
            Some(read(1.0, 0.0)),
            vec![],
            1,
            false,
        ),
        (
            "at zero, below activation stays asleep",
            spec(&[("min", "0"), ("activation", "50")]),
            0,
            Some(read(10.0, 0.0)),
            vec![],
            0,
            false,
        ),
        (
            "at zero, at activation wakes",
            spec(&[("min", "0"), ("activation", "50")]),
            0,
            Some(read(50.0, 0.0)),
            vec![],
            1,
            false,
        ),
        (
            "awake, a small backlog keeps one pod",
            zero.clone(),
            1,
            Some(read(1.0, 0.0)),
            history(6, 1),
            1,
            false,
        ),
        (
            "no reading: hold, never down",
            base.clone(),
            5,
            None,
            history(6, 1),
            5,
            true,
        ),
        (
            "no reading at zero: stays",
            zero.clone(),
            0,
            None,
            vec![],
            0,
            true,
        ),
        (
            "no reading: never to zero",
            zero.clone(),
            3,
            None,
            history(6, 0),
            3,
            true,
        ),
        (
            "ready not reported yet: hold",
            base.clone(),
            4,
            Some(Reading {
                ready: None,
                ..read(0.0, 0.0)
            }),
            history(6, 1),
            4,
            true,
        ),
        (
            "unacked not reported, needed: keep (a lower bound)",
            base.clone(),
            4,
            Some(Reading {
                unacked: None,
                ..read(0.0, 0.0)
            }),
            history(6, 1),
            4,
            false,
        ),
        (
            "unacked not reported, ready says more: up on the lower bound",
            base.clone(),
            1,
            Some(Reading {
                unacked: None,
                ..read(700.0, 0.0)
            }),
            vec![],
            7,
            false,
        ),
        (
            "unacked not reported: a first message still wakes it from zero",
            zero.clone(),
            0,
            Some(Reading {
                unacked: None,
                ..read(1.0, 0.0)
            }),
            vec![],
            1,
            false,
        ),
        (
            "unacked not reported, ready says less: never down",
            base.clone(),
            6,
            Some(Reading {
                unacked: None,
                ..read(100.0, 0.0)
            }),
            history(6, 1),
            6,
            false,
        ),
        (
            "unacked not reported, excluded: fine",
            spec(&[("exclude-unacked", "true")]),
            1,
            Some(Reading {
                unacked: None,
                ..read(300.0, 0.0)
            }),
            vec![],
            3,
            false,
        ),
        (
            "rate: publish over per-pod rate",
            spec(&[
                ("mode", "rate"),
                ("messages-per-pod", "10"),
                ("drain-time", "1m"),
            ]),
            1,
            Some(Reading {
                publish_rate: Some(45.0),
                ..read(0.0, 0.0)
            }),
            vec![],
            5,
            false,
        ),
        (
            "rate: plus the pods that drain the backlog in time",
            spec(&[
                ("mode", "rate"),
                ("messages-per-pod", "10"),
                ("drain-time", "1m"),
            ]),
            1,
            Some(Reading {
                publish_rate: Some(45.0),
                ..read(1200.0, 0.0)
            }),
            vec![],
            7,
            false,
        ),
        (
            "rate: no publish rate reported counts as none",
            spec(&[
                ("mode", "rate"),
                ("messages-per-pod", "10"),
                ("drain-time", "1m"),
            ]),
            1,
            Some(Reading {
                publish_rate: None,
                ..read(600.0, 0.0)
            }),
            vec![],
            1,
            false,
        ),
        (
            "a window not yet full holds a scale-down",
            base.clone(),
            3,
            Some(read(0.0, 0.0)),
            vec![(now() - chrono::Duration::seconds(30), 1)],
            3,
            false,
        ),
        (
            "up ignores the window",
            base.clone(),
            2,
            Some(read(900.0, 0.0)),
            history(6, 1),
            9,
            false,
        ),
    ];
    let n = table.len();
    let mut failed = Vec::new();
    for (name, s, current, r, window, want, held) in table {
        let got = decide(&s, current, r.as_ref(), &window, now());
        if got.desired != want || got.held != held {
            failed.push(format!(
                "{name}: got {} (held {}), want {want} (held {held}): {}",
                got.desired, got.held, got.reason
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(n >= 25, "{n}");
}

#[test]
fn the_window_keeps_one_entry_older_than_itself() {
    let s = spec(&[]);
    let mut w = Vec::new();
    for m in (0..20).rev() {
        remember(&mut w, &s, now() - chrono::Duration::minutes(m), 1);
    }
    // 5 minutes of history plus the one before it.
    assert_eq!(w.len(), 7, "{w:?}");
    assert!(now() - w[0].0 > chrono::Duration::minutes(5));
}

#[test]
fn busy_consumers_cost_more_to_delete() {
    use super::consumers::{PodView, deletion_costs, parse_channels, parse_consumers};
    let consumers = parse_consumers(&serde_json::json!([
        { "queue": { "name": "jobs" }, "channel_details": { "name": "10.0.0.2:4000 -> 10.0.9.9:5672 (1)", "peer_host": "10.0.0.2" } },
        { "queue": { "name": "jobs" }, "channel_details": { "name": "10.0.0.3:4000 -> 10.0.9.9:5672 (1)", "peer_host": "10.0.0.3" } },
        // The same channel consumes a second matched queue: counted once.
        { "queue": { "name": "jobs-eu" }, "channel_details": { "name": "10.0.0.2:4000 -> 10.0.9.9:5672 (1)", "peer_host": "10.0.0.2" } },
        // Another queue's consumer on the idle pod: not the target's work.
        { "queue": { "name": "other" }, "channel_details": { "name": "10.0.0.3:4001 -> 10.0.9.9:5672 (1)", "peer_host": "10.0.0.3" } },
        // A new consumer whose channel has no count yet.
        { "queue": { "name": "jobs" }, "channel_details": { "name": "10.0.0.5:4000 -> 10.0.9.9:5672 (1)", "peer_host": "10.0.0.5" } },
        // Malformed: skipped.
        { "queue": {} },
    ]));
    assert_eq!(consumers.len(), 5);
    let channels = parse_channels(&serde_json::json!([
        { "name": "10.0.0.2:4000 -> 10.0.9.9:5672 (1)", "messages_unacknowledged": 7 },
        { "name": "10.0.0.3:4000 -> 10.0.9.9:5672 (1)", "messages_unacknowledged": 0 },
        { "name": "10.0.0.3:4001 -> 10.0.9.9:5672 (1)", "messages_unacknowledged": 40 },
        { "name": "10.0.0.5:4000 -> 10.0.9.9:5672 (1)" },
    ]));
    let pod = |name: &str, ip: Option<&str>, cost: Option<&str>| PodView {
        name: name.into(),
        ip: ip.map(str::to_string),
        cost: cost.map(str::to_string),
    };
    let pods = vec![
        pod("busy", Some("10.0.0.2"), None),
        pod("idle", Some("10.0.0.3"), None),
        pod("new", Some("10.0.0.5"), None),
        pod("pending", None, None),
        pod("unchanged", Some("10.0.0.9"), Some("0")),
    ];
    let by_name = |m: &Matcher| -> BTreeMap<String, i32> {
        deletion_costs(m, &consumers, &channels, &pods)
            .into_iter()
            .collect()
    };
    let jobs = Matcher::new(&queue_ref("jobs", false).unwrap()).unwrap();
    assert_eq!(
        by_name(&jobs),
        BTreeMap::from([
            ("busy".to_string(), 7),
            ("idle".to_string(), 0),
            ("new".to_string(), 1),
            ("pending".to_string(), 0),
        ]),
        "an annotation already right is not rewritten"
    );
    let pattern = Matcher::new(&queue_ref("jobs.*", true).unwrap()).unwrap();
    assert_eq!(
        by_name(&pattern)["busy"],
        7,
        "one channel, two queues: once"
    );
    let other = Matcher::new(&queue_ref("other", false).unwrap()).unwrap();
    assert_eq!(by_name(&other)["idle"], 40);
    assert_eq!(by_name(&other)["busy"], 0);
}
