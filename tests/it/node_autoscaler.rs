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
