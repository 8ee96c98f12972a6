//! Synthetic snapshots of a given size, for the benchmark and for tests of
//! scale: groups of per-zone ASGs with their nodes, pods spread over them,
//! DaemonSets, PDBs and a backlog of unschedulable pods of a few kinds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::model::*;
use super::resources::Resources;

/// The size of a synthetic cluster.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Nodes in all.
    pub nodes: usize,
    /// Pods in all (bound to nodes).
    pub pods: usize,
    /// Node groups.
    pub groups: usize,
    /// Zones (one ASG per group and zone).
    pub zones: usize,
    /// Unschedulable pods.
    pub pending: usize,
}

fn res(cpu_m: i64, mem_mi: i64, pods: i64) -> Resources {
    Resources {
        cpu_m,
        memory: mem_mi << 20,
        pods,
        ephemeral: 0,
    }
}

/// A snapshot of `size`, the same for the same size.
pub fn synthetic(size: Size, now: DateTime<Utc>) -> Snapshot {
    let zones: Vec<String> = (0..size.zones)
        .map(|z| format!("us-east-1{}", (b'a' + z as u8) as char))
        .collect();
    let mut groups = Vec::new();
    let mut nodes = Vec::new();
    let per_asg = size.nodes / (size.groups * size.zones).max(1);
    // Nearly full with its ~30 pods, so the backlog needs new nodes.
    let alloc = res(7_800, 16_384, 110);
    for g in 0..size.groups {
        let name = format!("group-{g:02}");
        let mut asgs = Vec::new();
        for zone in &zones {
            let mut instances = Vec::new();
            for k in 0..per_asg {
                let id = format!("i-{g:02}{}{k:06}", &zone[zone.len() - 1..]);
                let node = format!("ip-{g}-{k}.{zone}.compute.internal");
                instances.push(Instance {
                    id: id.clone(),
                    private_dns: Some(node.clone()),
                });
                nodes.push(NodeInfo {
                    name: node,
                    provider_id: Some(format!("aws:///{zone}/{id}")),
                    private_dns: None,
                    labels: BTreeMap::from([
                        ("topology.kubernetes.io/zone".to_string(), zone.clone()),
                        ("clusterctl.io/instancegroup".to_string(), name.clone()),
                        ("workload".to_string(), format!("w{}", g % 5)),
                    ]),
                    taints: if g % 10 == 9 {
                        vec![Taint {
                            key: "dedicated".into(),
                            value: Some(format!("g{g}")),
                            effect: "NoSchedule".into(),
                        }]
                    } else {
                        vec![]
                    },
                    allocatable: alloc,
                    ready: true,
                    unschedulable: false,
                    deleting: false,
                    created: None,
                    ready_changed: None,
                });
            }
            asgs.push(ZoneAsg {
                name: format!("{name}-{zone}"),
                zone: zone.clone(),
                min: 1,
                max: (per_asg as i64) * 2 + 10,
                desired: per_asg as i64,
                instances,
            });
        }
        let mut labels = BTreeMap::from([("workload".to_string(), format!("w{}", g % 5))]);
        labels.insert("clusterctl.io/instancegroup".into(), name.clone());
        groups.push(Group {
            name,
            zones: asgs,
            template: Template {
                instance_type: "m5.2xlarge".into(),
                allocatable: alloc,
                labels,
                taints: if g % 10 == 9 {
                    vec![Taint {
                        key: "dedicated".into(),
                        value: Some(format!("g{g}")),
                        effect: "NoSchedule".into(),
                    }]
                } else {
                    vec![]
                },
            },
            priority: (g % 3) as i64,
        });
    }
    let mut pods = Vec::with_capacity(size.pods + size.pending);
    let n_nodes = nodes.len().max(1);
    for i in 0..size.pods {
        let node = &nodes[i % n_nodes];
        let kind = i % 7;
        pods.push(PodInfo {
            namespace: format!("team-{}", i % 40),
            name: format!("app-{i}"),
            node: Some(node.name.clone()),
            requests: res(100 + 50 * kind as i64, 128 + 64 * kind as i64, 1),
            labels: BTreeMap::from([("app".to_string(), format!("app-{}", i % 500))]),
            node_selector: BTreeMap::new(),
            affinity: vec![],
            tolerations: node
                .taints
                .iter()
                .map(|t| Toleration {
                    key: Some(t.key.clone()),
                    operator: Some("Exists".into()),
                    value: None,
                    effect: None,
                })
                .collect(),
            volume_zone: None,
            controller: if kind == 6 {
                Controller::DaemonSet
            } else {
                Controller::Replicated
            },
            local_storage: false,
            safe_to_evict: None,
            unschedulable: false,
            finished: false,
        });
    }
    for i in 0..size.pending {
        let kind = i % 20;
        let mut p = PodInfo {
            namespace: format!("team-{}", i % 40),
            name: format!("pending-{i}"),
            node: None,
            requests: res(
                500 + 100 * (kind % 5) as i64,
                512 + 256 * (kind % 4) as i64,
                1,
            ),
            labels: BTreeMap::from([("app".to_string(), format!("burst-{kind}"))]),
            node_selector: BTreeMap::new(),
            affinity: vec![],
            tolerations: vec![],
            volume_zone: None,
            controller: Controller::Replicated,
            local_storage: false,
            safe_to_evict: None,
            unschedulable: true,
            finished: false,
        };
        if kind % 4 == 1 {
            p.node_selector
                .insert("workload".into(), format!("w{}", kind % 5));
        }
        if kind % 5 == 2 && !zones.is_empty() {
            p.volume_zone = Some(zones[kind % zones.len()].clone());
        }
        pods.push(p);
    }
    let pdbs = (0..100)
        .map(|i| PdbInfo {
            namespace: format!("team-{}", i % 40),
            name: format!("pdb-{i}"),
            match_labels: BTreeMap::from([("app".to_string(), format!("app-{}", i * 5))]),
            match_expressions: vec![],
            disruptions_allowed: (i % 2) as i64,
        })
        .collect();
    let daemonsets = vec![
        DaemonSetInfo {
            name: "cilium".into(),
            requests: res(100, 128, 1),
            node_selector: BTreeMap::new(),
            tolerations: vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }],
        },
        DaemonSetInfo {
            name: "node-cleanup".into(),
            requests: res(10, 32, 1),
            node_selector: BTreeMap::new(),
            tolerations: vec![],
        },
    ];
    let mut memory = Memory::default();
    // A tenth of the nodes have been unneeded for an hour.
    for n in nodes.iter().step_by(10) {
        memory
            .unneeded_since
            .insert(n.name.clone(), now - chrono::Duration::hours(1));
    }
    Snapshot {
        now,
        nodes,
        pods,
        pdbs,
        daemonsets,
        groups,
        failures: vec![],
        memory,
    }
}
