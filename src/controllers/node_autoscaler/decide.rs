//! The decision: a pure function from a snapshot to actions, with the
//! reasons for each and the memory for the next pass.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration as ChronoDuration;
use serde::{Deserialize, Serialize};

use super::model::Snapshot;
use super::view::{AsgRef, Settings, View};

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Target {
    /// A pod.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A node.
    Node(String),
}

/// The Event reasons, as cluster-autoscaler names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoteKind {
    /// A pod made a group grow.
    TriggeredScaleUp,
    /// A pod could not make any group grow (the message says why).
    NotTriggerScaleUp,
    /// A node is being removed.
    ScaleDown,
}

/// An Event to emit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// About what.
    pub target: Target,
    /// Reason.
    pub kind: NoteKind,
    /// Message.
    pub message: String,
}

/// Set an ASG's desired capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetDesired {
    /// Its node group.
    pub group: String,
    /// The ASG.
    pub asg: String,
    /// Its zone.
    pub zone: String,
    /// Desired now.
    pub from: i64,
    /// Desired after.
    pub to: i64,
    /// Why.
    pub reason: String,
}

/// Drain a node and terminate its instance, decrementing its ASG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    /// The node.
    pub node: String,
    /// Its group.
    pub group: String,
    /// Its ASG.
    pub asg: String,
    /// Its zone.
    pub zone: String,
    /// Its instance.
    pub instance: String,
    /// The pods to evict.
    pub evict: Vec<(String, String)>,
    /// Why.
    pub reason: String,
}

/// Everything one pass decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Desired capacities to set (scale-up, and resets after a failure).
    pub set_desired: Vec<SetDesired>,
    /// Nodes to remove.
    pub remove: Vec<Removal>,
    /// Events.
    pub notes: Vec<Note>,
    /// Why things were not done (log lines).
    pub reasons: Vec<String>,
    /// Memory for the next pass.
    pub memory: super::model::Memory,
}

/// Failure messages that mean AWS had no capacity (or could not launch).
pub fn is_capacity_failure(message: &str) -> bool {
    const MARKS: [&str; 8] = [
        "InsufficientInstanceCapacity",
        "insufficient capacity",
        "sufficient capacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "UnfulfillableCapacity",
        "InstanceLimitExceeded",
        "Could not launch",
    ];
    let lower = message.to_lowercase();
    MARKS.iter().any(|m| lower.contains(&m.to_lowercase()))
}

/// The decision for `snap`.
pub fn decide(snap: &Snapshot, settings: &Settings) -> Decision {
    let view = View::new(snap, settings.max_node_provision_time);
    let now = snap.now;
    let mut memory = snap.memory.clone();
    let mut reasons = Vec::new();
    let mut set_desired = Vec::new();
    let mut desired_now: BTreeMap<AsgRef, i64> = BTreeMap::new();
    for (g, group) in snap.groups.iter().enumerate() {
        for (z, asg) in group.zones.iter().enumerate() {
            desired_now.insert(AsgRef { group: g, zone: z }, asg.desired);
        }
    }

    // Capacity failures: back the ASG off, and take back the nodes it could
    // not launch, so their pods are placed elsewhere in this same pass.
    let backoff_for = ChronoDuration::from_std(settings.backoff).unwrap_or(ChronoDuration::MAX);
    memory.backoff.retain(|_, until| *until > now);
    for f in &snap.failures {
        if !is_capacity_failure(&f.message)
            || memory.seen_failures.get(&f.asg).is_some_and(|t| *t >= f.at)
        {
            continue;
        }
        memory.seen_failures.insert(f.asg.clone(), f.at);
        memory.backoff.insert(f.asg.clone(), now + backoff_for);
        reasons.push(format!(
            "{}: scaling failed ({}); backed off until {}",
            f.asg,
            f.message,
            now + backoff_for
        ));
        for (g, group) in snap.groups.iter().enumerate() {
            for (z, asg) in group.zones.iter().enumerate() {
                let launched = asg.instances.len() as i64;
                if asg.name == f.asg && asg.desired > launched {
                    desired_now.insert(AsgRef { group: g, zone: z }, launched.max(asg.min));
                    set_desired.push(super::decide::SetDesired {
                        group: group.name.clone(),
                        asg: asg.name.clone(),
                        zone: asg.zone.clone(),
                        from: asg.desired,
                        to: launched.max(asg.min),
                        reason: format!("capacity failure: {}", f.message),
                    });
                }
            }
        }
    }
    let backoff: BTreeSet<String> = memory.backoff.keys().cloned().collect();

    let (ups, mut notes) = super::scale_up::decide(&view, settings, &backoff, &desired_now);
    let scaled_up = !ups.is_empty();
    if scaled_up {
        memory.last_scale_up = Some(now);
    }
    for u in ups {
        // A reset and a scale-up of the same ASG: the scale-up counts from
        // the reset.
        set_desired.retain(|s: &SetDesired| s.asg != u.asg || s.to > u.to);
        set_desired.push(u);
    }

    // Nodes still starting are capacity on its way, not unready nodes.
    let unready = (0..snap.nodes.len())
        .filter(|&i| !snap.nodes[i].ready && !view.starting[i])
        .count();
    let after_add = ChronoDuration::from_std(settings.scale_down_delay_after_add)
        .unwrap_or(ChronoDuration::MAX);
    let after_failure = ChronoDuration::from_std(settings.scale_down_delay_after_failure)
        .unwrap_or(ChronoDuration::MAX);
    let halt = if unready > settings.max_unready
        || (unready as f64) > settings.max_unready_fraction * snap.nodes.len() as f64
    {
        Some(format!(
            "{unready} of {} nodes are unready",
            snap.nodes.len()
        ))
    } else if scaled_up {
        Some("scaling up this pass".into())
    } else if memory.last_scale_up.is_some_and(|t| now - t < after_add) {
        Some("a scale-up happened less than --scale-down-delay-after-add ago".into())
    } else if memory
        .last_failed_scale_down
        .is_some_and(|t| now - t < after_failure)
    {
        Some("a scale-down failed less than --scale-down-delay-after-failure ago".into())
    } else {
        None
    };
    let (remove, down_notes, down_reasons) =
        super::scale_down::decide(&view, settings, &mut memory, &desired_now, halt);
    notes.extend(down_notes);
    reasons.extend(down_reasons);
    Decision {
        set_desired,
        remove,
        notes,
        reasons,
        memory,
    }
}
