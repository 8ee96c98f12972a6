//! A target's settings, read strictly from its annotations under
//! `queue-autoscaler.clusterctl.io/`. Every problem names the annotation
//! and its value; an unknown key under the prefix is a problem too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The annotation prefix.
pub const PREFIX: &str = "queue-autoscaler.clusterctl.io/";

const KEYS: [&str; 13] = [
    "queue",
    "queue-regex",
    "operation",
    "server",
    "messages-per-pod",
    "mode",
    "exclude-unacked",
    "min",
    "max",
    "activation",
    "scale-down-window",
    "max-step",
    "drain-time",
];

/// How the queue is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Backlog: ready (and unacked) messages per pod.
    Length,
    /// Throughput: publish rate over what one pod acks, plus the backlog.
    Rate,
}

/// How several queues matched by a pattern combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Added up.
    Sum,
    /// The largest.
    Max,
    /// The mean.
    Avg,
}

/// Which queue (or queues) a target reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRef {
    /// The vhost (`/` by default).
    pub vhost: String,
    /// The queue's name, or a pattern.
    pub name: String,
    /// `name` is a regular expression (anchored).
    pub regex: bool,
}

/// A target's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Its queue(s).
    pub queue: QueueRef,
    /// Combining several queues.
    pub operation: Operation,
    /// Which configured RabbitMQ server.
    pub server: String,
    /// Length: messages one pod should have; rate: messages a second one
    /// pod acks.
    pub messages_per_pod: f64,
    /// Mode.
    pub mode: Mode,
    /// Count ready messages only.
    pub exclude_unacked: bool,
    /// Fewest replicas.
    pub min: i32,
    /// Most replicas.
    pub max: i32,
    /// The backlog that wakes a target from zero.
    pub activation: f64,
    /// Scale down only to the highest recommendation of this window.
    #[serde(with = "secs")]
    pub scale_down_window: Duration,
    /// Replicas added or removed per pass, at most.
    pub max_step: i32,
    /// Rate mode: drain the backlog within this long.
    #[serde(with = "secs")]
    pub drain_time: Duration,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// One problem with a target's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The annotation (full key), or the object for a conflict.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Splits `vhost/queue`: a leading `/` is the default vhost, no `/` means
/// the default vhost too.
pub fn queue_ref(value: &str, regex: bool) -> Result<QueueRef, String> {
    let (vhost, name) = match value.strip_prefix('/') {
        Some(rest) => ("/".to_string(), rest.to_string()),
        None => match value.split_once('/') {
            Some((v, q)) => (v.to_string(), q.to_string()),
            None => ("/".to_string(), value.to_string()),
        },
    };
    if name.is_empty() {
        return Err(format!(
            "\"{value}\" names no queue (use vhost/queue or queue)"
        ));
    }
    if regex && let Err(e) = regex::Regex::new(&format!("^(?:{name})$")) {
        return Err(format!("\"{name}\" is not a regular expression: {e}"));
    }
    Ok(QueueRef { vhost, name, regex })
}

/// Reads a target's settings from its annotations; every problem at once.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<TargetSpec, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            key: format!("{PREFIX}{key}"),
            message,
        })
    };
    let ours: BTreeMap<&str, &str> = annotations
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|k| (k, v.as_str())))
        .collect();
    for k in ours.keys() {
        if !KEYS.contains(k) {
            bad(k, format!("unknown annotation; known: {}", KEYS.join(", ")));
        }
    }
    let get = |k: &str| ours.get(k).copied();
    let boolean = |k: &str, bad: &mut dyn FnMut(&str, String)| match get(k) {
        None => false,
        Some("true") => true,
        Some("false") => false,
        Some(v) => {
            bad(k, format!("\"{v}\" is not true or false"));
            false
        }
    };
    let int = |k: &str, default: i32, min: i32, bad: &mut dyn FnMut(&str, String)| match get(k) {
        None => default,
        Some(v) => match v.trim().parse::<i32>() {
            Ok(n) if n >= min => n,
            _ => {
                bad(
                    k,
                    format!("\"{v}\" is not a whole number of at least {min}"),
                );
                default
            }
        },
    };
    let num = |k: &str, default: f64, bad: &mut dyn FnMut(&str, String)| match get(k) {
        None => default,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => n,
            _ => {
                bad(k, format!("\"{v}\" is not a number above zero"));
                default
            }
        },
    };
    let dur = |k: &str, default: Duration, bad: &mut dyn FnMut(&str, String)| match get(k) {
        None => default,
        Some(v) => match humantime::parse_duration(v.trim()) {
            Ok(d) => d,
            Err(_) => {
                bad(k, format!("\"{v}\" is not a duration such as 5m or 30s"));
                default
            }
        },
    };
    let regex = boolean("queue-regex", &mut bad);
    let queue = match get("queue") {
        None => {
            bad(
                "queue",
                "is required: the queue (vhost/queue) to scale on".into(),
            );
            None
        }
        Some(v) => match queue_ref(v, regex) {
            Ok(q) => Some(q),
            Err(e) => {
                bad("queue", e);
                None
            }
        },
    };
    let operation = match get("operation") {
        None | Some("sum") => Operation::Sum,
        Some("max") => Operation::Max,
        Some("avg") => Operation::Avg,
        Some(v) => {
            bad("operation", format!("\"{v}\" is not sum, max or avg"));
            Operation::Sum
        }
    };
    if get("operation").is_some() && !regex {
        bad(
            "operation",
            "only combines the queues of a pattern (queue-regex: \"true\")".into(),
        );
    }
    let mode = match get("mode") {
        None | Some("length") => Mode::Length,
        Some("rate") => Mode::Rate,
        Some(v) => {
            bad("mode", format!("\"{v}\" is not length or rate"));
            Mode::Length
        }
    };
    let messages_per_pod = match get("messages-per-pod") {
        None => {
            bad("messages-per-pod", "is required".into());
            1.0
        }
        Some(_) => num("messages-per-pod", 1.0, &mut bad),
    };
    let exclude_unacked = boolean("exclude-unacked", &mut bad);
    let min = int("min", 1, 0, &mut bad);
    let max = int("max", 10, 1, &mut bad);
    if min > max {
        bad("min", format!("{min} is above max ({max})"));
    }
    let activation = num("activation", 1.0, &mut bad);
    let scale_down_window = dur("scale-down-window", Duration::from_secs(300), &mut bad);
    let max_step = int("max-step", 10, 1, &mut bad);
    let drain_time = dur("drain-time", Duration::from_secs(300), &mut bad);
    let server = get("server").unwrap_or("default").to_string();
    match queue {
        Some(queue) if problems.is_empty() => Ok(TargetSpec {
            queue,
            operation,
            server,
            messages_per_pod,
            mode,
            exclude_unacked,
            min,
            max,
            activation,
            scale_down_window,
            max_step,
            drain_time,
        }),
        _ => Err(problems),
    }
}
