//! `clusterctl node-autoscaler simulate`: a recorded snapshot in, the
//! decision and its reasons out.

use crate::support::{clusterctl, root};

#[test]
fn simulate_prints_the_decision_with_its_reasons() {
    let out = clusterctl(&[
        "node-autoscaler",
        "simulate",
        "--snapshot",
        "tests/fixtures/node-autoscaler/pending-in-two-zones.yaml",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut sets: Vec<(String, i64)> = d["setDesired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["asg"].as_str().unwrap().to_string(),
                s["to"].as_i64().unwrap(),
            )
        })
        .collect();
    sets.sort();
    // db-0 needs us-east-1b; web-3 and web-4 spread: one more node per zone,
    // and one for db-0 (1500m each on 2000m nodes).
    assert_eq!(
        sets,
        [
            ("nodes-us-east-1a".to_string(), 2),
            ("nodes-us-east-1b".to_string(), 3)
        ]
    );
    let triggered = d["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "TriggeredScaleUp")
        .count();
    assert_eq!(triggered, 3);

    let human = clusterctl(&[
        "node-autoscaler",
        "simulate",
        "--snapshot",
        "tests/fixtures/node-autoscaler/pending-in-two-zones.yaml",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("~ nodes-us-east-1b (nodes, us-east-1b): desired 1 -> 3"),
        "{text}"
    );
}

#[test]
fn a_bad_snapshot_is_reported_at_its_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(
        root().join("tests/fixtures/node-autoscaler/pending-in-two-zones.yaml"),
    )
    .unwrap()
    .replace(
        "cpuM: 1500, memory: 1073741824, pods: 1 } }\n- { namespace: shop, name: web-3",
        "cpuM: lots, memory: 1073741824, pods: 1 } }\n- { namespace: shop, name: web-3",
    );
    std::fs::write(&path, text).unwrap();
    let out = clusterctl(&[
        "node-autoscaler",
        "simulate",
        "--snapshot",
        path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pods[1].requests.cpuM") && err.contains("bad.yaml:"),
        "{err}"
    );
}

/// The AWS side against moto_server: ha.yaml applied by clusterctl, then
/// the node groups read back through the trait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_node_groups_are_discovered_by_tags_with_templates() {
    use clusterctl::controllers::node_autoscaler::cloud::{AwsNodeGroups, NodeGroups};
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    crate::direct::account(&moto, "eu-west-1").await;
    crate::node_autoscaler_moto::apply_ha(&moto);
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config("eu-west-1").await, true);
    let groups = AwsNodeGroups::new(&clients, "ha.example.com");
    let found = groups.groups().await.unwrap();
    let names: Vec<&str> = found.iter().map(|g| g.name.as_str()).collect();
    // Only the groups with autoscaler.enabled (not the control planes).
    assert_eq!(names, ["nodes", "spot-batch"]);
    let nodes = &found[0];
    assert_eq!(nodes.zones.len(), 3);
    assert_eq!(nodes.zones.iter().map(|z| z.min).sum::<i64>(), 3);
    assert_eq!(nodes.zones.iter().map(|z| z.max).sum::<i64>(), 30);
    assert!(nodes.zones.windows(2).all(|w| w[0].zone < w[1].zone));
    assert_eq!(nodes.priority, 10);
    assert_eq!(nodes.template.instance_type, "m6i.xlarge");
    assert_eq!(
        nodes.template.allocatable.cpu_m, 4000,
        "{:?}",
        nodes.template
    );
    assert_eq!(nodes.template.labels["workload"], "general");
    let spot = &found[1];
    assert_eq!(spot.template.instance_type, "m6i.large");
    assert_eq!(spot.template.labels["lifecycle"], "spot");
    assert_eq!(spot.template.taints[0].key, "dedicated");
    assert_eq!(spot.template.taints[0].effect, "NoSchedule");

    // The writes.
    let asg = nodes.zones[0].name.clone();
    groups.set_desired(&asg, 2).await.unwrap();
    let again = groups.groups().await.unwrap();
    assert_eq!(again[0].zones[0].desired, 2);
    let instance = again[0].zones[0].instances[0].id.clone();
    groups.terminate(&instance).await.unwrap();
    let after = groups.groups().await.unwrap();
    assert_eq!(after[0].zones[0].desired, 1);
    assert!(
        groups
            .failures(chrono::Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}
