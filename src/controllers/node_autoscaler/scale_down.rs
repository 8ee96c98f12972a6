//! Scale-down: nodes below the utilization threshold for long enough, whose
//! pods may be evicted and fit elsewhere, taken from the zone with the most
//! nodes of their group so that zones stay balanced on the way down too.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration as ChronoDuration;

use super::decide::{Note, NoteKind, Removal, Target};
use super::fit::fits;
use super::model::{Memory, PodInfo};
use super::resources::Resources;
use super::view::{AsgRef, Settings, View};

/// Why a pod keeps its node.
pub fn blocker(pod: &PodInfo) -> Option<String> {
    let id = format!("{}/{}", pod.namespace, pod.name);
    match pod.safe_to_evict {
        Some(false) => return Some(format!("pod {id} is annotated safe-to-evict: \"false\"")),
        Some(true) => return None,
        None => {}
    }
    if pod.controller == super::model::Controller::None {
        return Some(format!("pod {id} has no controller"));
    }
    if pod.local_storage {
        return Some(format!("pod {id} uses local storage"));
    }
    None
}

fn pdb_budget(view: &View) -> Vec<i64> {
    view.snap
        .pdbs
        .iter()
        .map(|p| p.disruptions_allowed)
        .collect()
}

fn pdbs_of(view: &View, pod: &PodInfo) -> Vec<usize> {
    view.snap
        .pdbs
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            b.namespace == pod.namespace
                && !b.match_labels.is_empty()
                && b.match_labels
                    .iter()
                    .all(|(k, v)| pod.labels.get(k) == Some(v))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Whether the pods of node `victim` fit on the other nodes (not `gone`),
/// given each node's `free` resources; on success the moves are taken
/// from `free`.
fn relocate(
    view: &View,
    victim: usize,
    pods: &[&PodInfo],
    gone: &[usize],
    free: &mut [Resources],
) -> Result<(), String> {
    let mut trial: HashMap<usize, Resources> = HashMap::new();
    for pod in pods {
        let target = view.snap.nodes.iter().enumerate().find(|(i, n)| {
            *i != victim
                && n.ready
                && !n.unschedulable
                && !n.deleting
                && pod
                    .requests
                    .fits_in(&(free[*i] - trial.get(i).copied().unwrap_or_default()))
                && !gone.contains(i)
                && {
                    let left = free[*i] - trial.get(i).copied().unwrap_or_default();
                    fits(pod, &n.labels, &n.taints, &left, &n.allocatable).is_none()
                }
        });
        match target {
            Some((i, _)) => *trial.entry(i).or_default() += pod.requests,
            None => {
                return Err(format!(
                    "pod {}/{} fits on no other node",
                    pod.namespace, pod.name
                ));
            }
        }
    }
    for (i, used) in trial {
        free[i] = free[i] - used;
    }
    Ok(())
}

/// Decides the scale-down; updates `memory.unneeded_since`. `halt` says
/// why no node may go this pass (the tracking still runs).
pub fn decide(
    view: &View,
    settings: &Settings,
    memory: &mut Memory,
    desired_now: &BTreeMap<AsgRef, i64>,
    halt: Option<String>,
) -> (Vec<Removal>, Vec<Note>, Vec<String>) {
    let snap = view.snap;
    let now = snap.now;
    let mut reasons = Vec::new();
    // Track which managed nodes are unneeded, and since when.
    let mut util: HashMap<usize, f64> = HashMap::new();
    memory
        .unneeded_since
        .retain(|n, _| view.node_index.contains_key(n.as_str()));
    for (i, n) in snap.nodes.iter().enumerate() {
        if !view.node_asg.contains_key(n.name.as_str()) || !n.ready || n.deleting {
            memory.unneeded_since.remove(&n.name);
            continue;
        }
        let used: Resources = view
            .movable(i)
            .iter()
            .fold(Resources::default(), |a, p| a + p.requests);
        let u = used.utilization(&n.allocatable);
        util.insert(i, u);
        if u < settings.scale_down_utilization_threshold {
            memory.unneeded_since.entry(n.name.clone()).or_insert(now);
        } else {
            memory.unneeded_since.remove(&n.name);
        }
    }
    if let Some(why) = halt {
        reasons.push(format!("scale-down halted: {why}"));
        return (vec![], vec![], reasons);
    }
    let unneeded_for =
        ChronoDuration::from_std(settings.scale_down_unneeded_time).unwrap_or(ChronoDuration::MAX);
    let mut candidates: Vec<usize> = util
        .keys()
        .copied()
        .filter(|i| {
            memory
                .unneeded_since
                .get(&snap.nodes[*i].name)
                .is_some_and(|t| now - *t >= unneeded_for)
        })
        .collect();
    candidates.sort_by(|a, b| {
        util[a]
            .partial_cmp(&util[b])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(snap.nodes[*a].name.cmp(&snap.nodes[*b].name))
    });
    let mut size: BTreeMap<AsgRef, i64> = desired_now.clone();
    let mut gone: Vec<usize> = Vec::new();
    let mut free: Vec<Resources> = (0..snap.nodes.len())
        .map(|i| snap.nodes[i].allocatable - view.requested(i))
        .collect();
    let mut budget = pdb_budget(view);
    let (mut empty_taken, mut busy_taken) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut notes = Vec::new();
    loop {
        // The zone with the most nodes (of the victim's group) goes first.
        let zone_count = |r: &AsgRef| size.get(r).copied().unwrap_or(0);
        let mut best: Option<(usize, (i64, i64))> = None;
        for &i in &candidates {
            if gone.contains(&i) {
                continue;
            }
            let r = view.node_asg[snap.nodes[i].name.as_str()];
            let key = (zone_count(&r), -((util[&i] * 1e6) as i64));
            if best.is_none_or(|(_, k)| key > k) {
                best = Some((i, key));
            }
        }
        let Some((i, _)) = best else { break };
        candidates.retain(|c| *c != i);
        let node = &snap.nodes[i];
        let r = view.node_asg[node.name.as_str()];
        let asg = &snap.groups[r.group].zones[r.zone];
        // Balance: only the group's fullest zones give nodes, so counts
        // stay within one of each other on the way down.
        let fullest = size
            .iter()
            .filter(|(k, _)| k.group == r.group)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0);
        if zone_count(&r) < fullest {
            reasons.push(format!(
                "{}: zone {} has fewer nodes of group {} than another zone",
                node.name, asg.zone, snap.groups[r.group].name
            ));
            continue;
        }
        if zone_count(&r) <= asg.min {
            reasons.push(format!(
                "{}: {} is at its minimum size ({})",
                node.name, asg.name, asg.min
            ));
            continue;
        }
        let pods = view.movable(i);
        let empty = pods.is_empty();
        if (empty && empty_taken >= settings.max_empty_bulk_delete)
            || (!empty && busy_taken >= settings.max_scale_down_per_loop)
        {
            continue;
        }
        if let Some(why) = pods.iter().find_map(|p| blocker(p)) {
            reasons.push(format!("{}: {why}", node.name));
            continue;
        }
        let mut trial_budget = budget.clone();
        let mut pdb_block = None;
        for p in &pods {
            for b in pdbs_of(view, p) {
                trial_budget[b] -= 1;
                if trial_budget[b] < 0 {
                    let pdb = &snap.pdbs[b];
                    pdb_block = Some(format!(
                        "{}: PodDisruptionBudget {}/{} allows no more disruptions (pod {})",
                        node.name, pdb.namespace, pdb.name, p.name
                    ));
                }
            }
        }
        if let Some(why) = pdb_block {
            reasons.push(why);
            continue;
        }
        let mut others = gone.clone();
        others.push(i);
        if let Err(why) = relocate(view, i, &pods, &others, &mut free) {
            reasons.push(format!("{}: {why}", node.name));
            continue;
        }
        budget = trial_budget;
        gone.push(i);
        *size.entry(r).or_default() -= 1;
        if empty {
            empty_taken += 1;
        } else {
            busy_taken += 1;
        }
        let instance = node
            .provider_id
            .as_deref()
            .and_then(super::view::instance_of)
            .map(str::to_string)
            .or_else(|| {
                asg.instances
                    .iter()
                    .find(|x| {
                        x.private_dns.as_deref()
                            == Some(node.private_dns.as_deref().unwrap_or(&node.name))
                    })
                    .map(|x| x.id.clone())
            })
            .unwrap_or_default();
        let message = format!(
            "node removed by the node autoscaler: {:.0}% requested for over {}s; {} pods move",
            util[&i] * 100.0,
            settings.scale_down_unneeded_time.as_secs(),
            pods.len()
        );
        notes.push(Note {
            target: Target::Node(node.name.clone()),
            kind: NoteKind::ScaleDown,
            message: message.clone(),
        });
        out.push(Removal {
            node: node.name.clone(),
            group: snap.groups[r.group].name.clone(),
            asg: asg.name.clone(),
            zone: asg.zone.clone(),
            instance,
            evict: pods
                .iter()
                .map(|p| (p.namespace.clone(), p.name.clone()))
                .collect(),
            reason: message,
        });
    }
    (out, notes, reasons)
}
