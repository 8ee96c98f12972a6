//! What the management API says of queues, read defensively: it lags the
//! broker and omits fields for new queues, so a missing field is `None`,
//! never zero. One request per server and vhost serves every target.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::target::{Operation, QueueRef, TargetSpec};

/// The columns asked of `/api/queues/<vhost>`.
pub const COLUMNS: &str = "name,vhost,messages_ready,messages_unacknowledged,consumers,message_stats.publish_details.rate,message_stats.ack_details.rate";

/// One queue as the management API reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Name.
    pub name: String,
    /// Ready messages.
    pub ready: Option<f64>,
    /// Delivered, not yet acknowledged.
    pub unacked: Option<f64>,
    /// Consumers.
    pub consumers: Option<f64>,
    /// Messages published a second.
    pub publish_rate: Option<f64>,
    /// Messages acknowledged a second.
    pub ack_rate: Option<f64>,
}

/// Parses the JSON array of `/api/queues/<vhost>?columns=…`.
pub fn parse_queues(json: &serde_json::Value) -> Vec<QueueStats> {
    let num = |v: &serde_json::Value, path: &[&str]| {
        let mut cur = v;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_f64()
    };
    json.as_array()
        .map(|a| {
            a.iter()
                .map(|q| QueueStats {
                    name: q["name"].as_str().unwrap_or_default().to_string(),
                    ready: num(q, &["messages_ready"]),
                    unacked: num(q, &["messages_unacknowledged"]),
                    consumers: num(q, &["consumers"]),
                    publish_rate: num(q, &["message_stats", "publish_details", "rate"]),
                    ack_rate: num(q, &["message_stats", "ack_details", "rate"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A target's reading: the numbers the decision needs, combined over its
/// queues. `None` fields were not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Ready messages.
    pub ready: Option<f64>,
    /// Unacked messages.
    pub unacked: Option<f64>,
    /// Publish rate.
    pub publish_rate: Option<f64>,
    /// Ack rate.
    pub ack_rate: Option<f64>,
}

fn combine(op: Operation, values: &[Option<f64>]) -> Option<f64> {
    // One missing value makes the combination unknown.
    let vs: Option<Vec<f64>> = values.iter().copied().collect();
    let vs = vs?;
    if vs.is_empty() {
        return None;
    }
    Some(match op {
        Operation::Sum => vs.iter().sum(),
        Operation::Max => vs.iter().copied().fold(f64::MIN, f64::max),
        Operation::Avg => vs.iter().sum::<f64>() / vs.len() as f64,
    })
}

/// The reading of `q` among the queues of its vhost (`None`: no queue
/// matched, or the API has not reported it yet).
pub fn reading(q: &QueueRef, op: Operation, queues: &[QueueStats]) -> Option<Reading> {
    let matched: Vec<&QueueStats> = if q.regex {
        let re = regex::Regex::new(&format!("^(?:{})$", q.name)).ok()?;
        queues.iter().filter(|s| re.is_match(&s.name)).collect()
    } else {
        queues.iter().filter(|s| s.name == q.name).collect()
    };
    if matched.is_empty() {
        return None;
    }
    let col = |f: fn(&QueueStats) -> Option<f64>| matched.iter().map(|s| f(s)).collect::<Vec<_>>();
    Some(Reading {
        ready: combine(op, &col(|s| s.ready)),
        unacked: combine(op, &col(|s| s.unacked)),
        publish_rate: combine(op, &col(|s| s.publish_rate)),
        ack_rate: combine(op, &col(|s| s.ack_rate)),
    })
}

/// The requests one poll makes: one per (server, vhost), whatever the
/// number of targets.
pub fn requests<'a>(
    targets: impl IntoIterator<Item = &'a TargetSpec>,
) -> BTreeSet<(String, String)> {
    targets
        .into_iter()
        .map(|t| (t.server.clone(), t.queue.vhost.clone()))
        .collect()
}

/// The path of a vhost's queues (the vhost percent-encoded: `/` is `%2F`).
pub fn queues_path(vhost: &str) -> String {
    let enc: String = vhost
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/api/queues/{enc}?columns={COLUMNS}")
}

/// Readings by (server, vhost) → queues.
pub type Polled = BTreeMap<(String, String), Vec<QueueStats>>;
