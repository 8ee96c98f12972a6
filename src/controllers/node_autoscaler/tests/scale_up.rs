//! Scale-up cases.

use super::*;

/// Node `name` registered `minutes` ago and not Ready; its Ready condition
/// (False) last changed `changed` minutes after it registered, or is absent.
fn starting(s: &mut Snapshot, name: &str, minutes: i64, changed: Option<i64>) {
    let n = s.nodes.iter_mut().find(|n| n.name == name).unwrap();
    n.ready = false;
    n.created = Some(now() - Duration::minutes(minutes));
    n.ready_changed = changed.map(|c| now() - Duration::minutes(minutes - c));
}

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
        (
            "a node that registered but is not Ready yet is capacity on its way",
            C::new()
                .group("nodes", &[("a", 2)])
                .full()
                .with(|s| starting(s, "nodes-a-1", 1, None))
                .pending(1, r(500, 512)),
            Box::new(|_| {}),
            Box::new(|d| {
                if d.set_desired.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "a node whose Ready condition was set at registration is still starting",
            C::new()
                .group("nodes", &[("a", 2)])
                .full()
                .with(|s| starting(s, "nodes-a-1", 3, Some(1)))
                .pending(1, r(500, 512)),
            Box::new(|_| {}),
            Box::new(|d| {
                if d.set_desired.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?}", sets(d)))
                }
            }),
        ),
        (
            "a node not Ready 20 minutes after registering is no longer on its way",
            C::new()
                .group("nodes", &[("a", 2)])
                .full()
                .with(|s| starting(s, "nodes-a-1", 20, None))
                .pending(1, r(500, 512)),
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
            "a node that was Ready and went NotReady is not starting",
            C::new()
                .group("nodes", &[("a", 2)])
                .full()
                .with(|s| starting(s, "nodes-a-1", 10, Some(5)))
                .pending(1, r(500, 512)),
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
            "with a shorter --max-node-provision-time, a 3-minute-old node is late",
            C::new()
                .group("nodes", &[("a", 2)])
                .full()
                .with(|s| starting(s, "nodes-a-1", 3, None))
                .pending(1, r(500, 512)),
            Box::new(|s| s.max_node_provision_time = std::time::Duration::from_secs(120)),
            Box::new(|d| {
                if sets(d) == m(&[("nodes-a", 3)]) {
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
