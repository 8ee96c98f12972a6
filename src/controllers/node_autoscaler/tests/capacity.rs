//! Capacity-failure cases.

use super::*;

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
