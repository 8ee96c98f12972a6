//! Scale-up: where would the unschedulable pods run? Equal pods are
//! grouped (the cost grows with the kinds of pods, not their number), then
//! packed onto the nodes already coming up and onto new template nodes of
//! each group; an expander picks the group; new nodes are spread across
//! its zones so that per-zone counts stay within one of each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::decide::{Note, NoteKind, SetDesired, Target};
use super::fit::{Misfit, placement};
use super::model::{PodInfo, Requirement, Toleration};
use super::resources::Resources;
use super::view::{AsgRef, Expander, Settings, View};

/// Pods with the same scheduling needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    requests: Resources,
    node_selector: Vec<(String, String)>,
    affinity: Vec<Vec<Requirement>>,
    tolerations: Vec<Toleration>,
    volume_zone: Option<String>,
}

/// A kind of pending pod and how many of it remain.
#[derive(Debug, Clone)]
struct Kind {
    example: usize,
    pods: Vec<usize>,
}

fn kinds(view: &View, pending: &[usize]) -> Vec<Kind> {
    let mut by: HashMap<Shape, Kind> = HashMap::new();
    let mut order = Vec::new();
    for &i in pending {
        let p = &view.snap.pods[i];
        let shape = Shape {
            requests: p.requests,
            node_selector: p.node_selector.clone().into_iter().collect(),
            affinity: p.affinity.clone(),
            tolerations: p.tolerations.clone(),
            volume_zone: p.volume_zone.clone(),
        };
        by.entry(shape.clone())
            .or_insert_with(|| {
                order.push(shape);
                Kind {
                    example: i,
                    pods: vec![],
                }
            })
            .pods
            .push(i);
    }
    // Largest first (first-fit decreasing), stable by first appearance.
    let mut out: Vec<Kind> = order.into_iter().filter_map(|s| by.remove(&s)).collect();
    out.sort_by_key(|k| {
        let r = view.snap.pods[k.example].requests;
        std::cmp::Reverse((r.cpu_m, r.memory))
    });
    out
}

/// How many pods of `req` fit in `free`.
fn how_many(req: &Resources, free: &Resources) -> i64 {
    let per = |need: i64, have: i64| {
        if need <= 0 {
            i64::MAX
        } else {
            (have / need).max(0)
        }
    };
    per(req.cpu_m, free.cpu_m)
        .min(per(req.memory, free.memory))
        .min(per(req.pods, free.pods))
        .min(per(req.ephemeral, free.ephemeral))
}

/// New nodes being packed: per ASG, the free space of each.
#[derive(Debug, Default, Clone)]
struct Packing {
    nodes: BTreeMap<AsgRef, Vec<Resources>>,
    used: Resources,
    capacity: Resources,
    helped: Vec<usize>,
}

/// One way to help pending pods: grow one group.
#[derive(Debug, Clone)]
struct Option_ {
    group: usize,
    new_nodes: BTreeMap<AsgRef, i64>,
    helped: Vec<usize>,
    waste: f64,
}

/// Why a kind of pod cannot go to a group.
fn misfit_in_group(
    view: &View,
    g: usize,
    pod: &PodInfo,
    zones: &[usize],
) -> Result<Vec<usize>, String> {
    let group = &view.snap.groups[g];
    let mut fitting = Vec::new();
    let mut why: Option<Misfit> = None;
    for &z in zones {
        let zone = &group.zones[z].zone;
        let labels = View::template_labels(group, zone);
        match placement(pod, &labels, &group.template.taints) {
            Some(m) => why = Some(m),
            None => {
                let free = group.template.allocatable - view.daemonset_overhead(group, zone);
                if pod.requests.fits_in(&free) {
                    fitting.push(z);
                } else {
                    why = Some(Misfit::TooBig(pod.requests.exceeding(&free)));
                }
            }
        }
    }
    if fitting.is_empty() {
        return Err(why
            .map(|m| m.to_string())
            .unwrap_or_else(|| "no zone can grow".into()));
    }
    Ok(fitting)
}

/// Packs `kinds` onto new nodes of group `g` in the ASGs `open` (each with
/// room for `room[asg]` more nodes), after the upcoming nodes in `upcoming`.
fn pack(
    view: &View,
    g: usize,
    kinds: &[Kind],
    open: &[usize],
    room: &BTreeMap<AsgRef, i64>,
    reasons: &mut BTreeMap<usize, String>,
) -> Packing {
    let group = &view.snap.groups[g];
    let mut pk = Packing::default();
    let mut counts: BTreeMap<AsgRef, i64> = open
        .iter()
        .map(|&z| {
            let r = AsgRef { group: g, zone: z };
            (r, group.zones[z].desired)
        })
        .collect();
    for kind in kinds {
        let pod = &view.snap.pods[kind.example];
        let zones = match misfit_in_group(view, g, pod, open) {
            Ok(z) => z,
            Err(why) => {
                reasons.insert(kind.example, format!("{}: {why}", group.name));
                continue;
            }
        };
        let mut left: &[usize] = &kind.pods;
        // Fill the space already opened in the zones this pod may use.
        for &z in &zones {
            let r = AsgRef { group: g, zone: z };
            for free in pk.nodes.entry(r).or_default().iter_mut() {
                let n = how_many(&pod.requests, free).min(left.len() as i64);
                if n <= 0 {
                    continue;
                }
                *free = *free - pod.requests.times(n);
                pk.used += pod.requests.times(n);
                pk.helped.extend_from_slice(&left[..n as usize]);
                left = &left[n as usize..];
            }
        }
        // Then new nodes, each in the zone with the fewest (within one).
        while !left.is_empty() {
            let Some(&z) = zones
                .iter()
                .filter(|&&z| {
                    let r = AsgRef { group: g, zone: z };
                    pk.nodes.get(&r).map_or(0, |v| v.len() as i64)
                        < room.get(&r).copied().unwrap_or(0)
                })
                .min_by_key(|&&z| {
                    let r = AsgRef { group: g, zone: z };
                    (
                        counts.get(&r).copied().unwrap_or(0),
                        group.zones[z].zone.clone(),
                    )
                })
            else {
                reasons.insert(kind.example, format!("{}: at its maximum size", group.name));
                break;
            };
            let r = AsgRef { group: g, zone: z };
            let zone = &group.zones[z].zone;
            let mut free = group.template.allocatable - view.daemonset_overhead(group, zone);
            pk.capacity += group.template.allocatable;
            let n = how_many(&pod.requests, &free).min(left.len() as i64);
            if n <= 0 {
                break;
            }
            free = free - pod.requests.times(n);
            pk.used += pod.requests.times(n);
            pk.helped.extend_from_slice(&left[..n as usize]);
            left = &left[n as usize..];
            pk.nodes.entry(r).or_default().push(free);
            *counts.entry(r).or_default() += 1;
        }
    }
    pk
}

/// Decides the scale-up: which ASGs get how many more nodes, and a note
/// for every pending pod (triggered, or why not).
pub fn decide(
    view: &View,
    settings: &Settings,
    backoff: &BTreeSet<String>,
    desired_now: &BTreeMap<AsgRef, i64>,
) -> (Vec<SetDesired>, Vec<Note>) {
    let snap = view.snap;
    let pending: Vec<usize> = snap
        .pods
        .iter()
        .enumerate()
        .filter(|(_, p)| p.unschedulable && !p.finished && p.node.is_none())
        .map(|(i, _)| i)
        .collect();
    if pending.is_empty() {
        return (vec![], vec![]);
    }
    let mut remaining = kinds(view, &pending);
    let mut notes = Vec::new();

    // Pods that fit on a ready node as things are will be scheduled there
    // (the scheduler has not caught up yet, for example with a node that
    // just joined): they need no new node.
    let mut free: Vec<Resources> = snap
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| n.allocatable - view.requested(i))
        .collect();
    for kind in &mut remaining {
        let pod = &snap.pods[kind.example];
        for (i, n) in snap.nodes.iter().enumerate() {
            if kind.pods.is_empty() {
                break;
            }
            if !n.ready
                || n.unschedulable
                || n.deleting
                || placement(pod, &n.labels, &n.taints).is_some()
            {
                continue;
            }
            let k = how_many(&pod.requests, &free[i]).min(kind.pods.len() as i64);
            if k > 0 {
                free[i] = free[i] - pod.requests.times(k);
                kind.pods.drain(..k as usize);
            }
        }
    }
    remaining.retain(|k| !k.pods.is_empty());

    // Nodes already coming up (desired above the registered count) take
    // pods first: they would be scheduled there once the nodes join.
    let mut upcoming_reasons = BTreeMap::new();
    for (g, group) in snap.groups.iter().enumerate() {
        let zones: Vec<usize> = (0..group.zones.len())
            .filter(|&z| {
                let r = AsgRef { group: g, zone: z };
                desired_now.get(&r).copied().unwrap_or(0)
                    > view.registered.get(&r).copied().unwrap_or(0)
            })
            .collect();
        if zones.is_empty() {
            continue;
        }
        let room: BTreeMap<AsgRef, i64> = zones
            .iter()
            .map(|&z| {
                let r = AsgRef { group: g, zone: z };
                (
                    r,
                    desired_now[&r] - view.registered.get(&r).copied().unwrap_or(0),
                )
            })
            .collect();
        let pk = pack(view, g, &remaining, &zones, &room, &mut upcoming_reasons);
        let helped: BTreeSet<usize> = pk.helped.iter().copied().collect();
        for k in &mut remaining {
            k.pods.retain(|p| !helped.contains(p));
        }
        remaining.retain(|k| !k.pods.is_empty());
    }

    let total_nodes: i64 = desired_now.values().sum();
    let mut budget = (settings.max_nodes_total - total_nodes).max(0);
    let mut grown: BTreeMap<AsgRef, i64> = BTreeMap::new();
    let mut reasons: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut used_groups = BTreeSet::new();
    loop {
        if remaining.is_empty() {
            break;
        }
        let mut options = Vec::new();
        for (g, group) in snap.groups.iter().enumerate() {
            if used_groups.contains(&g) {
                continue;
            }
            let mut open = Vec::new();
            let mut room = BTreeMap::new();
            for (z, asg) in group.zones.iter().enumerate() {
                let r = AsgRef { group: g, zone: z };
                if backoff.contains(&asg.name) {
                    continue;
                }
                let have = desired_now.get(&r).copied().unwrap_or(asg.desired);
                if have < asg.max {
                    open.push(z);
                    room.insert(r, (asg.max - have).min(budget));
                }
            }
            let mut why = BTreeMap::new();
            if open.is_empty() {
                let all_backed_off = group.zones.iter().all(|a| backoff.contains(&a.name));
                for k in &remaining {
                    why.insert(
                        k.example,
                        format!(
                            "{}: {}",
                            group.name,
                            if all_backed_off {
                                "backed off after a capacity failure"
                            } else if budget == 0 {
                                "the cluster is at --max-nodes-total"
                            } else {
                                "at its maximum size"
                            }
                        ),
                    );
                }
            } else {
                let pk = pack(view, g, &remaining, &open, &room, &mut why);
                if !pk.helped.is_empty() {
                    let new_nodes = pk
                        .nodes
                        .iter()
                        .map(|(r, v)| (*r, v.len() as i64))
                        .filter(|(_, n)| *n > 0)
                        .collect();
                    options.push(Option_ {
                        group: g,
                        new_nodes,
                        helped: pk.helped,
                        waste: pk.used.waste(&pk.capacity),
                    });
                }
            }
            for (pod, w) in why {
                reasons
                    .entry(pod)
                    .or_default()
                    .insert(group.name.clone(), w);
            }
        }
        let Some(best) = expand(settings.expander, &options, snap) else {
            break;
        };
        used_groups.insert(best.group);
        let helped: BTreeSet<usize> = best.helped.iter().copied().collect();
        for k in &mut remaining {
            k.pods.retain(|p| !helped.contains(p));
        }
        remaining.retain(|k| !k.pods.is_empty());
        let mut zones_text = Vec::new();
        for (r, n) in &best.new_nodes {
            *grown.entry(*r).or_default() += n;
            budget -= n;
            zones_text.push(format!("{} +{n}", snap.groups[r.group].zones[r.zone].zone));
        }
        let msg = format!(
            "pod triggered scale-up: group {} ({})",
            snap.groups[best.group].name,
            zones_text.join(", ")
        );
        for p in &best.helped {
            let pod = &snap.pods[*p];
            notes.push(Note {
                target: Target::Pod {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                },
                kind: NoteKind::TriggeredScaleUp,
                message: msg.clone(),
            });
        }
    }
    for k in &remaining {
        let why = reasons
            .get(&k.example)
            .map(|m| m.values().cloned().collect::<Vec<_>>().join("; "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "no node group matches".into());
        for p in &k.pods {
            let pod = &snap.pods[*p];
            notes.push(Note {
                target: Target::Pod {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                },
                kind: NoteKind::NotTriggerScaleUp,
                message: format!("pod didn't trigger scale-up: {why}"),
            });
        }
    }
    let sets = grown
        .into_iter()
        .map(|(r, n)| {
            let asg = &snap.groups[r.group].zones[r.zone];
            let from = desired_now.get(&r).copied().unwrap_or(asg.desired);
            SetDesired {
                group: snap.groups[r.group].name.clone(),
                asg: asg.name.clone(),
                zone: asg.zone.clone(),
                from,
                to: from + n,
                reason: "unschedulable pods".into(),
            }
        })
        .collect();
    (sets, notes)
}

fn expand<'o>(
    expander: Expander,
    options: &'o [Option_],
    snap: &super::model::Snapshot,
) -> Option<&'o Option_> {
    let least_waste = |a: &&Option_, b: &&Option_| {
        a.waste
            .partial_cmp(&b.waste)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.helped.len().cmp(&a.helped.len()))
            .then(snap.groups[a.group].name.cmp(&snap.groups[b.group].name))
    };
    match expander {
        Expander::LeastWaste => options.iter().min_by(least_waste),
        Expander::Priority => {
            let top = options
                .iter()
                .map(|o| snap.groups[o.group].priority)
                .max()?;
            options
                .iter()
                .filter(|o| snap.groups[o.group].priority == top)
                .min_by(least_waste)
        }
        Expander::Random => {
            if options.is_empty() {
                return None;
            }
            let seed = snap.now.timestamp().unsigned_abs() as usize;
            options.get(seed % options.len())
        }
    }
}
