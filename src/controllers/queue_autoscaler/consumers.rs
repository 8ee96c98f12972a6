//! Which consumer pods are busy, so a scale-down removes idle ones first.
//!
//! The management API's consumers (`/api/consumers/<vhost>`) name the
//! channel each consumer of a queue uses, with the peer's address; its
//! channels (`/api/vhosts/<vhost>/channels`) say how many messages each
//! channel holds unacknowledged. A pod whose `status.podIP` is the peer of
//! channels consuming the target's queues holds their unacked messages.
//! That count becomes the pod's `controller.kubernetes.io/pod-deletion-cost`
//! (the ReplicaSet controller deletes the lowest cost first; StatefulSets
//! ignore it and always remove the highest ordinal).

use std::collections::{BTreeMap, BTreeSet};

use super::stats::Matcher;

/// The annotation the ReplicaSet controller reads.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// One consumer: the queue it consumes, its channel and peer address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The queue's name.
    pub queue: String,
    /// The channel's name (as the channels listing names it).
    pub channel: String,
    /// The client's address.
    pub peer_host: String,
}

/// Parses `/api/consumers/<vhost>`; entries without the fields are skipped.
pub fn parse_consumers(json: &serde_json::Value) -> Vec<Consumer> {
    json.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some(Consumer {
                        queue: c["queue"]["name"].as_str()?.to_string(),
                        channel: c["channel_details"]["name"].as_str()?.to_string(),
                        peer_host: c["channel_details"]["peer_host"].as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses `/api/vhosts/<vhost>/channels`: unacked messages by channel name
/// (`None` when the API has not reported the count yet).
pub fn parse_channels(json: &serde_json::Value) -> BTreeMap<String, Option<f64>> {
    json.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some((
                        c["name"].as_str()?.to_string(),
                        c["messages_unacknowledged"].as_f64(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A pod of the target, as the cost needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Its name.
    pub name: String,
    /// `status.podIP`, once it has one.
    pub ip: Option<String>,
    /// Its deletion-cost annotation now.
    pub cost: Option<String>,
}

/// The deletion cost each pod should have: the unacked messages its
/// channels consuming the target's queues hold. A channel whose count is
/// not reported yet counts as 1, so an unknown consumer never ranks below
/// one known to be idle. Only the pods whose annotation changes are
/// returned, by name.
pub fn deletion_costs(
    queues: &Matcher,
    consumers: &[Consumer],
    channels: &BTreeMap<String, Option<f64>>,
    pods: &[PodView],
) -> Vec<(String, i32)> {
    let selected = |q: &str| match queues {
        Matcher::Name(n) => n == q,
        Matcher::Pattern(re) => re.is_match(q),
    };
    // Each channel once, however many of the target's queues it consumes.
    let mut by_peer: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in consumers.iter().filter(|c| selected(&c.queue)) {
        by_peer
            .entry(c.peer_host.as_str())
            .or_default()
            .insert(c.channel.as_str());
    }
    let mut out = Vec::new();
    for pod in pods {
        let held: f64 = pod
            .ip
            .as_deref()
            .and_then(|ip| by_peer.get(ip))
            .map(|chans| {
                chans
                    .iter()
                    .map(|ch| channels.get(*ch).copied().flatten().unwrap_or(1.0))
                    .sum()
            })
            .unwrap_or(0.0);
        let cost = held.clamp(0.0, f64::from(i32::MAX)) as i32;
        if pod.cost.as_deref() != Some(cost.to_string().as_str()) {
            out.push((pod.name.clone(), cost));
        }
    }
    out
}
