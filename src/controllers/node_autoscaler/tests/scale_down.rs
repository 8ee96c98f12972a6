//! Scale-down cases.

use super::*;

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
            "nodes still starting are not unready: scale-down goes on",
            C::new()
                .group_sized("nodes", &[("a", 10)], node_res(2000, 4096), 0, 10)
                .unneeded_for(30)
                .with(|s| {
                    for n in s.nodes.iter_mut().take(4) {
                        n.ready = false;
                        n.created = Some(now() - Duration::minutes(1));
                    }
                }),
            Box::new(|_| {}),
            Box::new(|d| {
                let gone = removed(d);
                if !gone.is_empty()
                    && !gone.iter().any(|n| {
                        ["nodes-a-0", "nodes-a-1", "nodes-a-2", "nodes-a-3"].contains(&n.as_str())
                    })
                    && !d.reasons.iter().any(|r| r.contains("unready"))
                {
                    Ok(())
                } else {
                    Err(format!("{gone:?} {:?}", d.reasons))
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
