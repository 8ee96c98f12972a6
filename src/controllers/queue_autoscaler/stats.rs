//! What the management API says of queues, read defensively: it lags the
//! broker and omits fields for new queues, so a missing field is `None`,
//! never zero. One request per server and vhost serves every target.

use std::collections::BTreeSet;

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

/// Which queues a target reads, compiled once (patterns are compiled when
/// a target first appears, not on every pass).
#[derive(Debug, Clone)]
pub enum Matcher {
    /// One queue by name.
    Name(String),
    /// Every queue whose whole name matches.
    Pattern(regex::Regex),
}

impl Matcher {
    /// Compiles `q` (a pattern is anchored at both ends).
    pub fn new(q: &QueueRef) -> Result<Matcher, regex::Error> {
        Ok(if q.regex {
            Matcher::Pattern(regex::Regex::new(&format!("^(?:{})$", q.name))?)
        } else {
            Matcher::Name(q.name.clone())
        })
    }
}

/// The queues of one vhost, indexed by name.
#[derive(Debug, Clone, Default)]
pub struct Queues {
    list: Vec<QueueStats>,
    by_name: std::collections::HashMap<String, usize>,
}

impl From<Vec<QueueStats>> for Queues {
    fn from(list: Vec<QueueStats>) -> Queues {
        let by_name = list
            .iter()
            .enumerate()
            .map(|(i, q)| (q.name.clone(), i))
            .collect();
        Queues { list, by_name }
    }
}

impl Queues {
    /// One queue, by name.
    pub fn get(&self, name: &str) -> Option<&QueueStats> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    /// Every queue.
    pub fn iter(&self) -> impl Iterator<Item = &QueueStats> {
        self.list.iter()
    }

    /// Records an exact ready count read another way (an AMQP passive
    /// declare) for a queue the API did not count: the unacked count stays
    /// unknown.
    pub fn fill_ready(&mut self, name: &str, ready: f64, consumers: f64) {
        match self.by_name.get(name) {
            Some(&i) => {
                let q = &mut self.list[i];
                q.ready = Some(ready);
                q.consumers.get_or_insert(consumers);
            }
            None => {
                self.by_name.insert(name.to_string(), self.list.len());
                self.list.push(QueueStats {
                    name: name.to_string(),
                    ready: Some(ready),
                    consumers: Some(consumers),
                    ..Default::default()
                });
            }
        }
    }
}

/// The reading of the queues `m` selects (`None`: no queue matched, or the
/// API has not reported it yet).
pub fn reading(m: &Matcher, op: Operation, queues: &Queues) -> Option<Reading> {
    let matched: Vec<&QueueStats> = match m {
        Matcher::Name(n) => queues.get(n).into_iter().collect(),
        Matcher::Pattern(re) => queues.iter().filter(|s| re.is_match(&s.name)).collect(),
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

/// The names a by-name target needs and the API did not count (missing,
/// or without a ready count): what an AMQP passive declare should read.
pub fn uncounted<'a>(m: &'a Matcher, queues: &Queues) -> Option<&'a str> {
    match m {
        Matcher::Name(n) if queues.get(n).is_none_or(|q| q.ready.is_none()) => Some(n),
        _ => None,
    }
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
    format!("/api/queues/{}?columns={COLUMNS}", encode(vhost))
}

/// A vhost as one path segment (`/` is `%2F`).
pub fn encode(vhost: &str) -> String {
    vhost
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
