//! Indexes over a snapshot that both halves of the decision use: which ASG
//! a node belongs to, what runs on each node, and the settings.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fit::ZONE_LABEL;
use super::model::{Controller, Group, PodInfo, Snapshot};
use super::resources::Resources;

/// How the group to grow is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Expander {
    /// The option that leaves the least CPU and memory unused.
    LeastWaste,
    /// The group with the highest priority, then least waste.
    Priority,
    /// Any option (seeded by the snapshot's time, so it is repeatable).
    Random,
}

/// The decision's knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Expander.
    pub expander: Expander,
    /// Nodes in all groups together, at most.
    pub max_nodes_total: i64,
    /// A node below this requested share may go.
    pub scale_down_utilization_threshold: f64,
    /// ... once it has stayed below for this long.
    pub scale_down_unneeded_time: Duration,
    /// Nodes with pods to move, removed per pass at most.
    pub max_scale_down_per_loop: usize,
    /// Empty nodes removed per pass at most.
    pub max_empty_bulk_delete: usize,
    /// No scale-down for this long after a scale-up.
    pub scale_down_delay_after_add: Duration,
    /// No scale-down for this long after a failed one.
    pub scale_down_delay_after_failure: Duration,
    /// An ASG whose scaling failed is left alone this long.
    pub backoff: Duration,
    /// Scale-down halts when more than this share of nodes is unready ...
    pub max_unready_fraction: f64,
    /// ... or more than this many.
    pub max_unready: usize,
    /// A registered node that has not become Ready this long after
    /// registering is unready, no longer capacity on its way.
    #[serde(default = "provision_time")]
    pub max_node_provision_time: Duration,
}

fn provision_time() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            expander: Expander::LeastWaste,
            max_nodes_total: 1000,
            scale_down_utilization_threshold: 0.5,
            scale_down_unneeded_time: Duration::from_secs(600),
            max_scale_down_per_loop: 1,
            max_empty_bulk_delete: 10,
            scale_down_delay_after_add: Duration::from_secs(600),
            scale_down_delay_after_failure: Duration::from_secs(180),
            backoff: Duration::from_secs(300),
            max_unready_fraction: 0.45,
            max_unready: 3,
            max_node_provision_time: provision_time(),
        }
    }
}

/// Where an ASG is: group and zone index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsgRef {
    /// Group index.
    pub group: usize,
    /// Zone (ASG) index in the group.
    pub zone: usize,
}

/// The indexes.
pub struct View<'a> {
    /// The snapshot.
    pub snap: &'a Snapshot,
    /// Node name → its ASG.
    pub node_asg: HashMap<&'a str, AsgRef>,
    /// Node name → index in `snap.nodes`.
    pub node_index: HashMap<&'a str, usize>,
    /// Node index → the pods on it (indexes into `snap.pods`).
    pub pods_on: Vec<Vec<usize>>,
    /// Per ASG: registered nodes, less those still starting (which, as
    /// instances not registered yet, count as upcoming).
    pub registered: BTreeMap<AsgRef, i64>,
    /// Per node index: registered but still starting.
    pub starting: Vec<bool>,
}

/// The instance id of `aws:///<zone>/<instance-id>`.
pub fn instance_of(provider_id: &str) -> Option<&str> {
    provider_id
        .strip_prefix("aws://")
        .and_then(|r| r.rsplit('/').next())
        .filter(|id| id.starts_with("i-"))
}

impl<'a> View<'a> {
    /// Indexes `snap`; a node not Ready within `provision_time` of
    /// registering is no longer starting.
    pub fn new(snap: &'a Snapshot, provision_time: Duration) -> View<'a> {
        let provision_time =
            chrono::Duration::from_std(provision_time).unwrap_or(chrono::Duration::MAX);
        let starting: Vec<bool> = snap
            .nodes
            .iter()
            .map(|n| n.starting(snap.now, provision_time))
            .collect();
        let mut by_instance: HashMap<&str, AsgRef> = HashMap::new();
        let mut by_dns: HashMap<&str, AsgRef> = HashMap::new();
        for (g, group) in snap.groups.iter().enumerate() {
            for (z, asg) in group.zones.iter().enumerate() {
                for i in &asg.instances {
                    by_instance.insert(i.id.as_str(), AsgRef { group: g, zone: z });
                    if let Some(d) = &i.private_dns {
                        by_dns.insert(d.as_str(), AsgRef { group: g, zone: z });
                    }
                }
            }
        }
        let mut node_asg = HashMap::new();
        let mut node_index = HashMap::new();
        let mut registered: BTreeMap<AsgRef, i64> = BTreeMap::new();
        for (i, n) in snap.nodes.iter().enumerate() {
            node_index.insert(n.name.as_str(), i);
            let by_id = n
                .provider_id
                .as_deref()
                .and_then(instance_of)
                .and_then(|id| by_instance.get(id));
            let found = by_id.or_else(|| {
                n.private_dns
                    .as_deref()
                    .or(Some(n.name.as_str()))
                    .and_then(|d| by_dns.get(d))
            });
            if let Some(r) = found {
                node_asg.insert(n.name.as_str(), *r);
                if !starting[i] {
                    *registered.entry(*r).or_default() += 1;
                }
            }
        }
        let mut pods_on = vec![Vec::new(); snap.nodes.len()];
        for (i, p) in snap.pods.iter().enumerate() {
            if p.finished {
                continue;
            }
            if let Some(n) = p.node.as_deref().and_then(|n| node_index.get(n)) {
                pods_on[*n].push(i);
            }
        }
        View {
            snap,
            node_asg,
            node_index,
            pods_on,
            registered,
            starting,
        }
    }

    /// What is requested on node `i` (all its pods).
    pub fn requested(&self, i: usize) -> Resources {
        let mut r = Resources::default();
        for p in &self.pods_on[i] {
            r += self.snap.pods[*p].requests;
        }
        r
    }

    /// The pods on node `i` that would have to move (not DaemonSet or
    /// mirror pods).
    pub fn movable(&self, i: usize) -> Vec<&'a PodInfo> {
        self.pods_on[i]
            .iter()
            .map(|p| &self.snap.pods[*p])
            .filter(|p| !matches!(p.controller, Controller::DaemonSet | Controller::Mirror))
            .collect()
    }

    /// The labels a new node of `group` in `zone` would carry.
    pub fn template_labels(group: &Group, zone: &str) -> BTreeMap<String, String> {
        let mut l = group.template.labels.clone();
        l.insert(ZONE_LABEL.into(), zone.into());
        l.insert(
            "node.kubernetes.io/instance-type".into(),
            group.template.instance_type.clone(),
        );
        l.insert("clusterctl.io/instancegroup".into(), group.name.clone());
        l.insert("kubernetes.io/os".into(), "linux".into());
        l
    }

    /// What DaemonSets would take on a new node of `group` in `zone`.
    pub fn daemonset_overhead(&self, group: &Group, zone: &str) -> Resources {
        let labels = Self::template_labels(group, zone);
        let mut r = Resources::default();
        for ds in &self.snap.daemonsets {
            let as_pod = PodInfo {
                namespace: String::new(),
                name: ds.name.clone(),
                node: None,
                requests: ds.requests,
                labels: Default::default(),
                node_selector: ds.node_selector.clone(),
                affinity: vec![],
                tolerations: ds.tolerations.clone(),
                volume_zone: None,
                controller: Controller::DaemonSet,
                local_storage: false,
                safe_to_evict: None,
                unschedulable: false,
                finished: false,
            };
            if super::fit::placement(&as_pod, &labels, &group.template.taints).is_none() {
                r += ds.requests;
            }
        }
        r
    }
}
