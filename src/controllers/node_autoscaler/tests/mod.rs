//! The decision, table by table: each case builds a snapshot, runs
//! `decide`, and checks what it decided and why. The builders are here;
//! the tables are in one file per half of the decision.

mod capacity;
mod scale_down;
mod scale_up;

pub(super) use std::collections::BTreeMap;

pub(super) use chrono::{DateTime, Duration, Utc};

pub(super) use super::decide::{Decision, NoteKind, decide};
pub(super) use super::model::*;
pub(super) use super::resources::Resources;
pub(super) use super::view::{Expander, Settings};

pub(super) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub(super) fn r(cpu_m: i64, mem_mi: i64) -> Resources {
    Resources {
        cpu_m,
        memory: mem_mi << 20,
        pods: 1,
        ephemeral: 0,
    }
}

pub(super) fn node_res(cpu_m: i64, mem_mi: i64) -> Resources {
    Resources {
        cpu_m,
        memory: mem_mi << 20,
        pods: 110,
        ephemeral: 20 << 30,
    }
}

/// A table row: name, snapshot, settings tweak, check.
pub(super) type Case = (
    &'static str,
    C,
    Box<dyn Fn(&mut Settings)>,
    Box<dyn Fn(&Decision) -> Result<(), String>>,
);

/// A snapshot under construction.
pub(super) struct C(pub(super) Snapshot);

impl C {
    pub(super) fn new() -> C {
        C(Snapshot {
            now: now(),
            nodes: vec![],
            pods: vec![],
            pdbs: vec![],
            daemonsets: vec![],
            groups: vec![],
            failures: vec![],
            memory: Memory::default(),
        })
    }

    /// A group of 2-CPU / 4 GiB nodes with `nodes[i]` registered nodes in
    /// zone `zones[i]` (desired = that count), min 0, max 10.
    pub(super) fn group(self, name: &str, zones: &[(&str, i64)]) -> C {
        self.group_sized(name, zones, node_res(2000, 4096), 0, 10)
    }

    pub(super) fn group_sized(
        mut self,
        name: &str,
        zones: &[(&str, i64)],
        alloc: Resources,
        min: i64,
        max: i64,
    ) -> C {
        let mut asgs = vec![];
        for (zone, count) in zones {
            let asg = format!("{name}-{zone}");
            let mut instances = vec![];
            for k in 0..*count {
                let id = format!("i-{name}-{zone}-{k}");
                let node = format!("{name}-{zone}-{k}");
                instances.push(Instance {
                    id: id.clone(),
                    private_dns: Some(format!("ip-{name}-{zone}-{k}.ec2.internal")),
                });
                self.0.nodes.push(NodeInfo {
                    name: node,
                    provider_id: Some(format!("aws:///{zone}/{id}")),
                    private_dns: None,
                    labels: BTreeMap::from([
                        ("topology.kubernetes.io/zone".to_string(), zone.to_string()),
                        ("clusterctl.io/instancegroup".to_string(), name.to_string()),
                    ]),
                    taints: vec![],
                    allocatable: alloc,
                    ready: true,
                    unschedulable: false,
                    deleting: false,
                    created: None,
                    ready_changed: None,
                });
            }
            asgs.push(ZoneAsg {
                name: asg,
                zone: zone.to_string(),
                min,
                max,
                desired: *count,
                instances,
            });
        }
        self.0.groups.push(Group {
            name: name.into(),
            zones: asgs,
            template: Template {
                instance_type: "t3.medium".into(),
                allocatable: alloc,
                labels: BTreeMap::new(),
                taints: vec![],
            },
            priority: 0,
        });
        self
    }

    pub(super) fn pod(name: &str, req: Resources) -> PodInfo {
        PodInfo {
            namespace: "default".into(),
            name: name.into(),
            node: None,
            requests: req,
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            node_selector: BTreeMap::new(),
            affinity: vec![],
            tolerations: vec![],
            volume_zone: None,
            controller: Controller::Replicated,
            local_storage: false,
            safe_to_evict: None,
            unschedulable: false,
            finished: false,
        }
    }

    pub(super) fn pending(mut self, n: usize, req: Resources) -> C {
        for i in 0..n {
            let mut p = Self::pod(&format!("pending-{}", self.0.pods.len() + i), req);
            p.unschedulable = true;
            self.0.pods.push(p);
        }
        self
    }

    pub(super) fn pending_with(mut self, f: impl Fn(&mut PodInfo)) -> C {
        let mut p = Self::pod(&format!("pending-{}", self.0.pods.len()), r(100, 100));
        p.unschedulable = true;
        f(&mut p);
        self.0.pods.push(p);
        self
    }

    pub(super) fn on(mut self, node: &str, req: Resources, f: impl Fn(&mut PodInfo)) -> C {
        let mut p = Self::pod(&format!("{node}-pod-{}", self.0.pods.len()), req);
        p.node = Some(node.into());
        f(&mut p);
        self.0.pods.push(p);
        self
    }

    /// Every node so far filled to its allocatable CPU and memory (so the
    /// scheduler could place nothing more there).
    pub(super) fn full(mut self) -> C {
        let nodes: Vec<(String, Resources)> = self
            .0
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.allocatable))
            .collect();
        for (name, alloc) in nodes {
            let mut p = Self::pod(
                &format!("{name}-filler"),
                Resources {
                    pods: 1,
                    ephemeral: 0,
                    ..alloc
                },
            );
            p.node = Some(name);
            self.0.pods.push(p);
        }
        self
    }

    /// Every managed node unneeded since `minutes` ago.
    pub(super) fn unneeded_for(mut self, minutes: i64) -> C {
        for n in &self.0.nodes {
            self.0
                .memory
                .unneeded_since
                .insert(n.name.clone(), now() - Duration::minutes(minutes));
        }
        self
    }

    pub(super) fn with(mut self, f: impl FnOnce(&mut Snapshot)) -> C {
        f(&mut self.0);
        self
    }
}

pub(super) fn run(c: C) -> Decision {
    decide(&c.0, &Settings::default())
}

pub(super) fn run_with(c: C, f: impl FnOnce(&mut Settings)) -> Decision {
    let mut s = Settings::default();
    f(&mut s);
    decide(&c.0, &s)
}

/// ASG → desired after the decision (only those it sets).
pub(super) fn sets(d: &Decision) -> BTreeMap<String, i64> {
    d.set_desired
        .iter()
        .map(|s| (s.asg.clone(), s.to))
        .collect()
}

pub(super) fn removed(d: &Decision) -> Vec<String> {
    d.remove.iter().map(|r| r.node.clone()).collect()
}

pub(super) fn notes(d: &Decision, kind: NoteKind) -> Vec<String> {
    d.notes
        .iter()
        .filter(|n| n.kind == kind)
        .map(|n| n.message.clone())
        .collect()
}

pub(super) fn m(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

pub(super) fn gpu_taint() -> Taint {
    Taint {
        key: "dedicated".into(),
        value: Some("gpu".into()),
        effect: "NoSchedule".into(),
    }
}

#[test]
fn a_snapshot_round_trips_through_yaml() {
    let c = C::new()
        .group("nodes", &[("a", 1), ("b", 1)])
        .pending(2, r(500, 100));
    let text = serde_norway::to_string(&c.0).unwrap();
    let back: Snapshot = serde_norway::from_str(&text).unwrap();
    assert_eq!(back, c.0);
    assert_eq!(
        decide(&back, &Settings::default()),
        decide(&c.0, &Settings::default())
    );
}
