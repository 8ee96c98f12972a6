//! The decision, table by table: each case builds a snapshot, runs
//! `decide`, and checks what it decided and why.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::decide::{Decision, NoteKind, decide};
use super::model::*;
use super::resources::Resources;
use super::view::{Expander, Settings};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn r(cpu_m: i64, mem_mi: i64) -> Resources {
    Resources {
        cpu_m,
        memory: mem_mi << 20,
        pods: 1,
        ephemeral: 0,
    }
}

fn node_res(cpu_m: i64, mem_mi: i64) -> Resources {
    Resources {
        cpu_m,
        memory: mem_mi << 20,
        pods: 110,
        ephemeral: 20 << 30,
    }
}

/// A table row: name, snapshot, settings tweak, check.
type Case = (
    &'static str,
    C,
    Box<dyn Fn(&mut Settings)>,
    Box<dyn Fn(&Decision) -> Result<(), String>>,
);

/// A snapshot under construction.
struct C(Snapshot);

impl C {
    fn new() -> C {
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
    fn group(self, name: &str, zones: &[(&str, i64)]) -> C {
        self.group_sized(name, zones, node_res(2000, 4096), 0, 10)
    }

    fn group_sized(
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

    fn pod(name: &str, req: Resources) -> PodInfo {
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

    fn pending(mut self, n: usize, req: Resources) -> C {
        for i in 0..n {
            let mut p = Self::pod(&format!("pending-{}", self.0.pods.len() + i), req);
            p.unschedulable = true;
            self.0.pods.push(p);
        }
        self
    }

    fn pending_with(mut self, f: impl Fn(&mut PodInfo)) -> C {
        let mut p = Self::pod(&format!("pending-{}", self.0.pods.len()), r(100, 100));
        p.unschedulable = true;
        f(&mut p);
        self.0.pods.push(p);
        self
    }

    fn on(mut self, node: &str, req: Resources, f: impl Fn(&mut PodInfo)) -> C {
        let mut p = Self::pod(&format!("{node}-pod-{}", self.0.pods.len()), req);
        p.node = Some(node.into());
        f(&mut p);
        self.0.pods.push(p);
        self
    }

    /// Every node so far filled to its allocatable CPU and memory (so the
    /// scheduler could place nothing more there).
    fn full(mut self) -> C {
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
    fn unneeded_for(mut self, minutes: i64) -> C {
        for n in &self.0.nodes {
            self.0
                .memory
                .unneeded_since
                .insert(n.name.clone(), now() - Duration::minutes(minutes));
        }
        self
    }

    fn with(mut self, f: impl FnOnce(&mut Snapshot)) -> C {
        f(&mut self.0);
        self
    }
}

fn run(c: C) -> Decision {
    decide(&c.0, &Settings::default())
}

fn run_with(c: C, f: impl FnOnce(&mut Settings)) -> Decision {
    let mut s = Settings::default();
    f(&mut s);
    decide(&c.0, &s)
}

/// ASG → desired after the decision (only those it sets).
fn sets(d: &Decision) -> BTreeMap<String, i64> {
    d.set_desired
        .iter()
        .map(|s| (s.asg.clone(), s.to))
        .collect()
}

fn removed(d: &Decision) -> Vec<String> {
    d.remove.iter().map(|r| r.node.clone()).collect()
}

fn notes(d: &Decision, kind: NoteKind) -> Vec<String> {
    d.notes
        .iter()
        .filter(|n| n.kind == kind)
        .map(|n| n.message.clone())
        .collect()
}

fn m(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn gpu_taint() -> Taint {
    Taint {
        key: "dedicated".into(),
        value: Some("gpu".into()),
        effect: "NoSchedule".into(),
    }
}

// ---------------------------------------------------------------- scale up

#[test]
fn scale_up_cases() {
    let cases: Vec<Case> = vec![
        (
            "nothing pending: nothing to do",
            C::new().group("nodes", &[("a", 1)]),
            Box::new(|_| {}),
            Box::new(|d| {
                if d.set_desired.is_empty() && d.notes.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{d:?}"))
                }
            }),
        ),
        (
            "one small pod: one node",
            C::new()
                .group("nodes", &[("a", 1)])
                .full()
                .pending(1, r(500, 512)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) != m(&[("nodes-a", 2)]) {
                    return Err(format!("{:?}", sets(d)));
                }
                if notes(d, NoteKind::TriggeredScaleUp).len() != 1 {
                    return Err(format!("{:?}", d.notes));
                }
                Ok(())
            }),
        ),
        (
            "ten 500m pods pack four to a node: three nodes",
            C::new()
                .group("nodes", &[("a", 0)])
                .pending(10, r(500, 256)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 3)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "memory limits the packing too",
            C::new()
                .group("nodes", &[("a", 0)])
                .pending(4, r(100, 2048)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 2)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "new nodes spread evenly over three zones",
            C::new()
                .group("nodes", &[("a", 1), ("b", 1), ("c", 1)])
                .full()
                .pending(24, r(500, 256)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 3), ("nodes-b", 3), ("nodes-c", 3)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "uneven zones are evened out first",
            C::new()
                .group("nodes", &[("a", 3), ("b", 1), ("c", 1)])
                .full()
                .pending(16, r(500, 256)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-b", 3), ("nodes-c", 3)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "a pod bound to a zonal volume grows only its zone",
            C::new()
                .group("nodes", &[("a", 1), ("b", 1), ("c", 1)])
                .full()
                .pending_with(|p| p.volume_zone = Some("c".into())),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-c", 2)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "a zone selector pins too",
            C::new()
                .group("nodes", &[("a", 1), ("b", 1), ("c", 1)])
                .full()
                .pending_with(|p| {
                    p.node_selector
                        .insert("topology.kubernetes.io/zone".into(), "b".into());
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-b", 2)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "pinned pods to two zones and free pods: each zone gets what it needs",
            C::new()
                .group("nodes", &[("a", 0), ("b", 0), ("c", 0)])
                .pending_with(|p| {
                    p.volume_zone = Some("a".into());
                    p.requests = r(1500, 256);
                })
                .pending_with(|p| {
                    p.volume_zone = Some("a".into());
                    p.requests = r(1500, 256);
                })
                .pending_with(|p| {
                    p.volume_zone = Some("c".into());
                    p.requests = r(1500, 256);
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 2), ("nodes-c", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "a taint without a toleration: no scale-up, and the Event says which taint",
            C::new()
                .group("gpu", &[("a", 0)])
                .with(|s| s.groups[0].template.taints.push(gpu_taint()))
                .pending(1, r(100, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                let n = notes(d, NoteKind::NotTriggerScaleUp);
                if !d.set_desired.is_empty() {
                    return Err(format!("{:?}", d.set_desired));
                }
                if n.len() == 1 && n[0].contains("taint dedicated=gpu:NoSchedule") {
                    Ok(())
                } else {
                    Err(format!("{n:?}"))
                }
            }),
        ),
        (
            "a toleration lets the tainted group grow",
            C::new()
                .group("gpu", &[("a", 0)])
                .with(|s| s.groups[0].template.taints.push(gpu_taint()))
                .pending_with(|p| {
                    p.tolerations.push(Toleration {
                        key: Some("dedicated".into()),
                        operator: Some("Equal".into()),
                        value: Some("gpu".into()),
                        effect: Some("NoSchedule".into()),
                    })
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("gpu-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "an Exists toleration without a key tolerates everything",
            C::new()
                .group("gpu", &[("a", 0)])
                .with(|s| s.groups[0].template.taints.push(gpu_taint()))
                .pending_with(|p| {
                    p.tolerations.push(Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    })
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("gpu-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "a pod too big for any group: no scale-up, and the Event says why",
            C::new()
                .group("nodes", &[("a", 1)])
                .pending(1, r(64000, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                let n = notes(d, NoteKind::NotTriggerScaleUp);
                if !d.set_desired.is_empty() {
                    return Err(format!("{:?}", d.set_desired));
                }
                if n.len() == 1 && n[0].contains("too big: cpu 64000m > 2000m") {
                    Ok(())
                } else {
                    Err(format!("{n:?}"))
                }
            }),
        ),
        (
            "a node selector no group carries",
            C::new().group("nodes", &[("a", 1)]).pending_with(|p| {
                p.node_selector.insert("disk".into(), "ssd".into());
            }),
            Box::new(|_| {}),
            Box::new(|d| {
                let n = notes(d, NoteKind::NotTriggerScaleUp);
                if d.set_desired.is_empty()
                    && n.len() == 1
                    && n[0].contains("node selector disk=ssd")
                {
                    Ok(())
                } else {
                    Err(format!("{:?} {n:?}", d.set_desired))
                }
            }),
        ),
        (
            "required affinity picks the group with the label",
            C::new()
                .group("plain", &[("a", 0)])
                .group("ssd", &[("a", 0)])
                .with(|s| {
                    s.groups[1]
                        .template
                        .labels
                        .insert("disk".into(), "ssd".into());
                })
                .pending_with(|p| {
                    p.affinity = vec![vec![Requirement {
                        key: "disk".into(),
                        operator: "In".into(),
                        values: vec!["ssd".into(), "nvme".into()],
                    }]]
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("ssd-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "NotIn affinity keeps a pod off a group",
            C::new()
                .group("spot", &[("a", 0)])
                .group("ondemand", &[("a", 0)])
                .with(|s| {
                    s.groups[0]
                        .template
                        .labels
                        .insert("lifecycle".into(), "spot".into());
                })
                .pending_with(|p| {
                    p.affinity = vec![vec![Requirement {
                        key: "lifecycle".into(),
                        operator: "NotIn".into(),
                        values: vec!["spot".into()],
                    }]]
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("ondemand-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "DaemonSet overhead counts on new nodes",
            C::new()
                .group("nodes", &[("a", 0)])
                .with(|s| {
                    s.daemonsets.push(DaemonSetInfo {
                        name: "cilium".into(),
                        requests: r(500, 256),
                        node_selector: BTreeMap::new(),
                        tolerations: vec![],
                    })
                })
                .pending(1, r(1600, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                let n = notes(d, NoteKind::NotTriggerScaleUp);
                if d.set_desired.is_empty()
                    && n.len() == 1
                    && n[0].contains("too big: cpu 1600m > 1500m")
                {
                    Ok(())
                } else {
                    Err(format!("{:?} {n:?}", d.set_desired))
                }
            }),
        ),
        (
            "a DaemonSet that would not run there adds no overhead",
            C::new()
                .group("nodes", &[("a", 0)])
                .with(|s| {
                    s.daemonsets.push(DaemonSetInfo {
                        name: "gpu-driver".into(),
                        requests: r(500, 256),
                        node_selector: BTreeMap::from([("gpu".to_string(), "true".to_string())]),
                        tolerations: vec![],
                    })
                })
                .pending(1, r(1600, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "an ASG at its maximum: no scale-up, and the Event says so",
            C::new()
                .group_sized("nodes", &[("a", 2)], node_res(2000, 4096), 0, 2)
                .full()
                .pending(1, r(100, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                let n = notes(d, NoteKind::NotTriggerScaleUp);
                if d.set_desired.is_empty() && n.len() == 1 && n[0].contains("at its maximum size")
                {
                    Ok(())
                } else {
                    Err(format!("{:?} {n:?}", d.set_desired))
                }
            }),
        ),
        (
            "room for part of the pods: grow to the maximum, report the rest",
            C::new()
                .group_sized("nodes", &[("a", 0)], node_res(2000, 4096), 0, 2)
                .pending(12, r(500, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                let up = notes(d, NoteKind::TriggeredScaleUp).len();
                let not = notes(d, NoteKind::NotTriggerScaleUp).len();
                if sets(d) == m(&[("nodes-a", 2)]) && up == 8 && not == 4 {
                    Ok(())
                } else {
                    Err(format!("{:?} up {up} not {not}", sets(d)))
                }
            }),
        ),
        (
            "--max-nodes-total caps the cluster",
            C::new()
                .group("nodes", &[("a", 2)])
                .pending(20, r(500, 100)),
            Box::new(|s| s.max_nodes_total = 4),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 4)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "least-waste picks the group whose nodes the pods fill best",
            C::new()
                .group_sized("small", &[("a", 0)], node_res(2000, 4096), 0, 10)
                .group_sized("large", &[("a", 0)], node_res(16000, 65536), 0, 10)
                .pending(1, r(1500, 3000)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("small-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "priority picks the preferred group whatever the waste",
            C::new()
                .group_sized("small", &[("a", 0)], node_res(2000, 4096), 0, 10)
                .group_sized("large", &[("a", 0)], node_res(16000, 65536), 0, 10)
                .with(|s| s.groups[1].priority = 10)
                .pending(1, r(1500, 3000)),
            Box::new(|s| s.expander = Expander::Priority),
            Box::new(|d| {
                if sets(d) == m(&[("large-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "random picks one of the options, repeatably",
            C::new()
                .group("x", &[("a", 0)])
                .group("y", &[("a", 0)])
                .pending(1, r(100, 100)),
            Box::new(|s| s.expander = Expander::Random),
            Box::new(|d| {
                if sets(d).len() == 1 && sets(d).values().all(|v| *v == 1) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "scale from zero: the template's labels make the group match",
            C::new()
                .group("gpu", &[("a", 0), ("b", 0)])
                .with(|s| {
                    s.groups[0]
                        .template
                        .labels
                        .insert("accelerator".into(), "nvidia".into());
                })
                .pending_with(|p| {
                    p.node_selector
                        .insert("accelerator".into(), "nvidia".into());
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("gpu-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "nodes already coming up take the pods: no second scale-up",
            C::new()
                .group("nodes", &[("a", 1)])
                .with(|s| s.groups[0].zones[0].desired = 2)
                .pending(3, r(500, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                if d.set_desired.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.set_desired))
                }
            }),
        ),
        (
            "pending pods that fit on a ready node as it is wait for the scheduler",
            C::new()
                .group("nodes", &[("a", 2)])
                .on("nodes-a-0", r(1500, 100), |_| {})
                .pending(2, r(900, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                if d.set_desired.is_empty() && d.notes.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", d.set_desired, d.notes))
                }
            }),
        ),
        (
            "a cordoned node takes no pending pods",
            C::new()
                .group("nodes", &[("a", 1)])
                .with(|s| s.nodes[0].unschedulable = true)
                .pending(1, r(900, 100)),
            Box::new(|_| {}),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 2)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "finished pods are not pending",
            C::new()
                .group("nodes", &[("a", 1)])
                .pending_with(|p| p.finished = true),
            Box::new(|_| {}),
            Box::new(|d| {
                if d.set_desired.is_empty() && d.notes.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{d:?}"))
                }
            }),
        ),
        (
            "a pod of each of two kinds can each pick the group that suits it",
            C::new()
                .group("plain", &[("a", 0)])
                .group("gpu", &[("a", 0)])
                .with(|s| s.groups[1].template.taints.push(gpu_taint()))
                .pending(1, r(100, 100))
                .pending_with(|p| {
                    p.tolerations.push(Toleration {
                        key: Some("dedicated".into()),
                        operator: Some("Exists".into()),
                        ..Default::default()
                    })
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                // The tolerant pod also fits plain; least waste puts both there.
                if sets(d) == m(&[("plain-a", 1)]) {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
    ];
    let mut failed = vec![];
    let n = cases.len();
    for (name, c, tweak, check) in cases {
        let d = run_with(c, |s| tweak(s));
        if let Err(e) = check(&d) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} scale-up cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(n >= 25, "{n} cases");
}

// ----------------------------------------------------- capacity failures

#[test]
fn capacity_failure_cases() {
    let failed_a = |s: &mut Snapshot| {
        s.groups[0].zones[0].desired = 2; // one launched, one failed
        s.failures.push(FailedActivity {
            asg: "nodes-a".into(),
            message: "Launching a new EC2 instance. Status Reason: We currently do not have sufficient t3.medium capacity in the Availability Zone you requested (a). InsufficientInstanceCapacity".into(),
            at: now() - Duration::seconds(20),
        });
    };
    // Noticed in the next pass: backed off, desired reset, the pod goes to b.
    let d = run(C::new()
        .group("nodes", &[("a", 1), ("b", 1)])
        .full()
        .with(failed_a)
        .pending(1, r(1500, 100)));
    assert_eq!(
        sets(&d),
        m(&[("nodes-a", 1), ("nodes-b", 2)]),
        "{:?}",
        d.set_desired
    );
    assert!(d.memory.backoff.contains_key("nodes-a"));
    assert!(
        d.reasons.iter().any(|r| r.contains("backed off")),
        "{:?}",
        d.reasons
    );

    // The whole group backed off: another group is tried.
    let d = run(C::new()
        .group("spot", &[("a", 0)])
        .group("ondemand", &[("a", 0)])
        .with(|s| {
            s.groups[0]
                .template
                .labels
                .insert("lifecycle".into(), "spot".into());
            s.groups[0].zones[0].desired = 1;
            s.failures.push(FailedActivity {
                asg: "spot-a".into(),
                message: "Could not launch Spot Instances. UnfulfillableCapacity".into(),
                at: now(),
            });
        })
        .pending(1, r(100, 100)));
    assert_eq!(sets(&d), m(&[("spot-a", 0), ("ondemand-a", 1)]));

    // A failure that is not about capacity backs nothing off.
    let d = run(C::new().group("nodes", &[("a", 1)]).with(|s| {
        s.failures.push(FailedActivity {
            asg: "nodes-a".into(),
            message: "Access denied when attaching to the target group".into(),
            at: now(),
        });
    }));
    assert!(d.memory.backoff.is_empty(), "{:?}", d.memory.backoff);

    // A failure already acted on is not acted on again.
    let d = run(C::new().group("nodes", &[("a", 1)]).with(|s| {
        s.groups[0].zones[0].desired = 2;
        s.failures.push(FailedActivity {
            asg: "nodes-a".into(),
            message: "InsufficientInstanceCapacity".into(),
            at: now() - Duration::minutes(1),
        });
        s.memory
            .seen_failures
            .insert("nodes-a".into(), now() - Duration::minutes(1));
    }));
    assert!(d.set_desired.is_empty(), "{:?}", d.set_desired);

    // A backoff that has expired is lifted.
    let d = run(C::new()
        .group("nodes", &[("a", 1)])
        .full()
        .with(|s| {
            s.memory
                .backoff
                .insert("nodes-a".into(), now() - Duration::seconds(1));
        })
        .pending(1, r(1500, 100)));
    assert_eq!(sets(&d), m(&[("nodes-a", 2)]));

    // A backoff still running keeps the ASG out.
    let d = run(C::new()
        .group("nodes", &[("a", 1)])
        .full()
        .with(|s| {
            s.memory
                .backoff
                .insert("nodes-a".into(), now() + Duration::minutes(3));
        })
        .pending(1, r(1500, 100)));
    assert!(d.set_desired.is_empty());
    assert!(notes(&d, NoteKind::NotTriggerScaleUp)[0].contains("backed off"));
}

// -------------------------------------------------------------- scale down

#[test]
fn scale_down_cases() {
    let three = || C::new().group_sized("nodes", &[("a", 3)], node_res(2000, 4096), 1, 10);
    let cases: Vec<Case> = vec![
        (
            "an empty node unneeded for 11 minutes goes",
            three()
                .unneeded_for(11)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {}),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d) == ["nodes-a-2"] && notes(d, NoteKind::ScaleDown).len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
        (
            "unneeded for 5 minutes: not yet, but remembered",
            three()
                .unneeded_for(5)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {}),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.memory.unneeded_since.contains_key("nodes-a-2") {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
        (
            "a node above the threshold is needed (and forgotten as unneeded)",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .on("nodes-a-2", r(1200, 100), |_| {}),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.memory.unneeded_since.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.memory.unneeded_since))
                }
            }),
        ),
        (
            "a pod without a controller keeps its node",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .on("nodes-a-2", r(100, 100), |p| {
                    p.controller = Controller::None
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty()
                    && d.reasons.iter().any(|r| r.contains("has no controller"))
                {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.reasons))
                }
            }),
        ),
        (
            "safe-to-evict \"false\" keeps its node",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .on("nodes-a-2", r(100, 100), |p| p.safe_to_evict = Some(false)),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.reasons.iter().any(|r| r.contains("safe-to-evict")) {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.reasons))
                }
            }),
        ),
        (
            "local storage keeps its node",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .on("nodes-a-2", r(100, 100), |p| p.local_storage = true),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.reasons.iter().any(|r| r.contains("local storage")) {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.reasons))
                }
            }),
        ),
        (
            "safe-to-evict \"true\" overrides local storage",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(600, 100), |_| {})
                .on("nodes-a-2", r(100, 100), |p| {
                    p.local_storage = true;
                    p.safe_to_evict = Some(true);
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d) == ["nodes-a-2"] && d.remove[0].evict.len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.reasons))
                }
            }),
        ),
        (
            "a PDB that allows no disruption keeps its node",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(600, 100), |_| {})
                .on("nodes-a-2", r(100, 100), |_| {})
                .with(|s| {
                    s.pdbs.push(PdbInfo {
                        namespace: "default".into(),
                        name: "web".into(),
                        match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                        match_expressions: vec![],
                        disruptions_allowed: 0,
                    })
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty()
                    && d.reasons
                        .iter()
                        .any(|r| r.contains("PodDisruptionBudget default/web"))
                {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.reasons))
                }
            }),
        ),
        (
            "a PDB that allows one disruption lets one node go, not two",
            C::new()
                .group_sized("nodes", &[("a", 4)], node_res(2000, 4096), 1, 10)
                .unneeded_for(30)
                .on("nodes-a-0", r(200, 100), |_| {})
                .on("nodes-a-1", r(200, 100), |_| {})
                .on("nodes-a-2", r(200, 100), |_| {})
                .on("nodes-a-3", r(200, 100), |_| {})
                .with(|s| {
                    s.pdbs.push(PdbInfo {
                        namespace: "default".into(),
                        name: "web".into(),
                        match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                        match_expressions: vec![],
                        disruptions_allowed: 1,
                    })
                }),
            Box::new(|s| s.max_scale_down_per_loop = 3),
            Box::new(|d| {
                if removed(d).len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
        (
            "DaemonSet and mirror pods neither block nor count",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .on("nodes-a-2", r(900, 100), |p| {
                    p.controller = Controller::DaemonSet
                })
                .on("nodes-a-2", r(100, 100), |p| {
                    p.controller = Controller::Mirror
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d) == ["nodes-a-2"] && d.remove[0].evict.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.reasons))
                }
            }),
        ),
        (
            "pods that fit nowhere else keep their node",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1900, 100), |_| {})
                .on("nodes-a-1", r(1900, 100), |_| {})
                .on("nodes-a-2", r(900, 100), |_| {}),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty()
                    && d.reasons
                        .iter()
                        .any(|r| r.contains("fits on no other node"))
                {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.reasons))
                }
            }),
        ),
        (
            "the zone with the most nodes gives first",
            C::new()
                .group_sized("nodes", &[("a", 3), ("b", 1)], node_res(2000, 4096), 0, 10)
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(800, 100), |_| {})
                .on("nodes-a-2", r(900, 100), |_| {}),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d) == ["nodes-a-1"] || removed(d) == ["nodes-a-2"] {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?} (nodes-b-0 is emptier, but b has one node)",
                        removed(d)
                    ))
                }
            }),
        ),
        (
            "empty nodes go in bulk, zones kept within one of each other",
            C::new()
                .group_sized("nodes", &[("a", 4), ("b", 2)], node_res(2000, 4096), 0, 10)
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {}),
            Box::new(|s| s.max_empty_bulk_delete = 3),
            Box::new(|d| {
                let a = removed(d)
                    .iter()
                    .filter(|n| n.starts_with("nodes-a"))
                    .count();
                let b = removed(d)
                    .iter()
                    .filter(|n| n.starts_with("nodes-b"))
                    .count();
                // Left: 4 - a and 2 - b, within one of each other.
                let (left_a, left_b) = (4 - a as i64, 2 - b as i64);
                if a + b == 3 && (left_a - left_b).abs() <= 1 {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
        (
            "never below an ASG's minimum",
            C::new()
                .group_sized("nodes", &[("a", 2)], node_res(2000, 4096), 2, 10)
                .unneeded_for(30),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.reasons.iter().any(|r| r.contains("minimum size")) {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
        (
            "at most --max-scale-down-per-loop nodes with pods",
            C::new()
                .group_sized("nodes", &[("a", 4)], node_res(2000, 4096), 0, 10)
                .unneeded_for(30)
                .on("nodes-a-0", r(300, 100), |_| {})
                .on("nodes-a-1", r(300, 100), |_| {})
                .on("nodes-a-2", r(300, 100), |_| {})
                .on("nodes-a-3", r(300, 100), |_| {}),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
        (
            "no scale-down within the delay after a scale-up",
            three()
                .unneeded_for(30)
                .with(|s| s.memory.last_scale_up = Some(now() - Duration::minutes(5))),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.reasons.iter().any(|r| r.contains("delay-after-add"))
                {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.reasons))
                }
            }),
        ),
        (
            "no scale-down within the delay after a failed one",
            three()
                .unneeded_for(30)
                .with(|s| s.memory.last_failed_scale_down = Some(now() - Duration::minutes(1))),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty()
                    && d.reasons.iter().any(|r| r.contains("delay-after-failure"))
                {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.reasons))
                }
            }),
        ),
        (
            "more than three unready nodes halt scale-down",
            C::new()
                .group_sized("nodes", &[("a", 10)], node_res(2000, 4096), 0, 10)
                .unneeded_for(30)
                .with(|s| {
                    for n in s.nodes.iter_mut().take(4) {
                        n.ready = false;
                    }
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty()
                    && d.reasons
                        .iter()
                        .any(|r| r.contains("4 of 10 nodes are unready"))
                {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.reasons))
                }
            }),
        ),
        (
            "more than 45% unready halts scale-down",
            C::new()
                .group_sized("nodes", &[("a", 4)], node_res(2000, 4096), 0, 10)
                .unneeded_for(30)
                .with(|s| {
                    for n in s.nodes.iter_mut().take(2) {
                        n.ready = false;
                    }
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && d.reasons.iter().any(|r| r.contains("unready")) {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.reasons))
                }
            }),
        ),
        (
            "no scale-down while scaling up",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .with(|s| {
                    s.groups[0]
                        .template
                        .labels
                        .insert("pool".into(), "new".into());
                })
                .pending_with(|p| {
                    p.node_selector.insert("pool".into(), "new".into());
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && !d.set_desired.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?} {:?}", removed(d), d.set_desired))
                }
            }),
        ),
        (
            "a node without a providerID is found by its private DNS name",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .with(|s| {
                    s.nodes[2].provider_id = None;
                    s.nodes[2].private_dns = Some("ip-nodes-a-2.ec2.internal".into());
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d) == ["nodes-a-2"] && d.remove[0].instance == "i-nodes-a-2" {
                    Ok(())
                } else {
                    Err(format!("{:?}", d.remove))
                }
            }),
        ),
        (
            "a node of no group is never touched",
            three()
                .unneeded_for(30)
                .on("nodes-a-0", r(1200, 100), |_| {})
                .on("nodes-a-1", r(1200, 100), |_| {})
                .on("nodes-a-2", r(1200, 100), |_| {})
                .with(|s| {
                    let mut stray = s.nodes[0].clone();
                    stray.name = "hand-made".into();
                    stray.provider_id = Some("aws:///a/i-somebody-else".into());
                    s.nodes.push(stray);
                    s.memory
                        .unneeded_since
                        .insert("hand-made".into(), now() - Duration::hours(2));
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                if removed(d).is_empty() && !d.memory.unneeded_since.contains_key("hand-made") {
                    Ok(())
                } else {
                    Err(format!("{:?}", removed(d)))
                }
            }),
        ),
    ];
    let mut failed = vec![];
    let n = cases.len();
    for (name, c, tweak, check) in cases {
        let d = run_with(c, |s| tweak(s));
        if let Err(e) = check(&d) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} scale-down cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(n >= 20, "{n} cases");
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
