//! Table tests: the rules file, and what the janitor selects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::rules::{Rules, parse_file};
use super::select::{Annotated, Inventory, select};

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn ago(hours: i64) -> String {
    (now() - k8s_openapi::jiff::SignedDuration::from_hours(hours)).to_string()
}

fn deployment(name: &str, revision: u64, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "app", "uid": format!("uid-{name}"),
                      "creationTimestamp": ago(24 * 60),
                      "annotations": { "deployment.kubernetes.io/revision": revision.to_string() } },
        "spec": { "selector": { "matchLabels": { "app": name } },
                  "template": { "metadata": { "labels": { "app": name } },
                                "spec": { "containers": [{ "name": "c", "image": image }] } } },
    }))
    .unwrap()
}

fn replicaset(
    owner: Option<&str>,
    revision: u64,
    image: &str,
    replicas: i32,
    age_h: i64,
) -> ReplicaSet {
    let name = format!("{}-{revision}", owner.unwrap_or("orphan"));
    let mut meta = json!({ "name": name, "namespace": "app", "uid": format!("uid-{name}"),
                           "creationTimestamp": ago(age_h),
                           "annotations": { "deployment.kubernetes.io/revision": revision.to_string() } });
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([{ "apiVersion": "apps/v1", "kind": "Deployment", "name": o,
                                           "uid": format!("uid-{o}"), "controller": true }]);
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": "x" } },
                  "template": { "metadata": { "labels": { "app": owner.unwrap_or("x"), "pod-template-hash": format!("h{revision}") } },
                                "spec": { "containers": [{ "name": "c", "image": image }] } } },
        "status": { "replicas": replicas },
    }))
    .unwrap()
}

fn job(name: &str, condition: Option<&str>, finished_h: i64, extra: serde_json::Value) -> Job {
    let mut j = json!({
        "metadata": { "name": name, "namespace": "app", "uid": format!("uid-{name}"), "creationTimestamp": ago(finished_h + 1) },
        "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "x" }], "restartPolicy": "Never" } } },
        "status": {},
    });
    if let Some(c) = condition {
        j["status"] = json!({ "completionTime": ago(finished_h),
                              "conditions": [{ "type": c, "status": "True", "lastTransitionTime": ago(finished_h) }] });
    }
    if let Some(o) = extra.get("owner") {
        j["metadata"]["ownerReferences"] = json!([{ "apiVersion": "batch/v1", "kind": "CronJob", "name": o,
                                                   "uid": "uid-cron", "controller": true }]);
    }
    if let Some(t) = extra.get("ttl") {
        j["spec"]["ttlSecondsAfterFinished"] = t.clone();
    }
    serde_json::from_value(j).unwrap()
}

fn pod(name: &str, phase: &str, reason: Option<&str>, failed_h: i64) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "app", "uid": format!("uid-{name}"), "creationTimestamp": ago(failed_h + 1) },
        "status": { "phase": phase, "reason": reason,
                    "conditions": [{ "type": "Ready", "status": "False", "lastTransitionTime": ago(failed_h) }] },
    }))
    .unwrap()
}

fn annotated(
    kind: &str,
    name: &str,
    ns: Option<&str>,
    created_h: i64,
    a: &[(&str, String)],
) -> Annotated {
    Annotated {
        kind: kind.into(),
        metadata: serde_json::from_value(json!({
            "name": name, "namespace": ns, "uid": format!("uid-{name}"), "creationTimestamp": ago(created_h),
            "annotations": a.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap(),
    }
}

fn rules(f: impl FnOnce(&mut Rules)) -> super::rules::RuleSet {
    let mut r = Rules::default();
    r.ttl.kinds = vec!["configmaps".into()];
    f(&mut r);
    super::rules::RuleSet {
        default: r,
        namespaces: Default::default(),
    }
}

fn names(inv: &Inventory, set: &super::rules::RuleSet) -> Vec<String> {
    select(inv, set, now())
        .delete
        .into_iter()
        .map(|c| format!("{}/{}", c.kind, c.name))
        .collect()
}

/// A name, a change to the inventory, the rules, what is selected.
type Case = (
    &'static str,
    Box<dyn Fn(&mut Inventory)>,
    super::rules::RuleSet,
    Vec<&'static str>,
);

#[test]
fn replicasets() {
    // web is at revision 6 (image v6); its revisions 1..6 exist.
    let mut inv = Inventory {
        deployments: vec![deployment("web", 6, "v6")],
        ..Default::default()
    };
    for r in 1..=6 {
        inv.replicasets
            .push(replicaset(Some("web"), r, &format!("v{r}"), 0, 24 * 30));
    }
    let cases: Vec<Case> = vec![
        (
            "keeps the newest 3 (the current one among them)",
            Box::new(|_| {}),
            rules(|_| {}),
            vec!["ReplicaSet/web-1", "ReplicaSet/web-2", "ReplicaSet/web-3"],
        ),
        (
            "keep-revisions 5",
            Box::new(|_| {}),
            rules(|r| r.replicasets.keep_revisions = 5),
            vec!["ReplicaSet/web-1"],
        ),
        (
            "keep-revisions 0 never takes the current one",
            Box::new(|_| {}),
            rules(|r| r.replicasets.keep_revisions = 0),
            vec![
                "ReplicaSet/web-1",
                "ReplicaSet/web-2",
                "ReplicaSet/web-3",
                "ReplicaSet/web-4",
                "ReplicaSet/web-5",
            ],
        ),
        (
            "younger than min-age: kept",
            Box::new(|_| {}),
            rules(|r| r.replicasets.min_age = Duration::from_secs(86400 * 60)),
            vec![],
        ),
        (
            "with replicas: kept",
            Box::new(|i| i.replicasets[0] = replicaset(Some("web"), 1, "v1", 2, 24 * 30)),
            rules(|_| {}),
            vec!["ReplicaSet/web-2", "ReplicaSet/web-3"],
        ),
        (
            "the current template is never deleted, whatever its revision says",
            Box::new(|i| i.replicasets[0] = replicaset(Some("web"), 1, "v6", 0, 24 * 30)),
            rules(|_| {}),
            vec!["ReplicaSet/web-2", "ReplicaSet/web-3"],
        ),
        (
            "an orphan is kept",
            Box::new(|i| i.replicasets.push(replicaset(None, 1, "v1", 0, 24 * 30))),
            rules(|_| {}),
            vec!["ReplicaSet/web-1", "ReplicaSet/web-2", "ReplicaSet/web-3"],
        ),
        (
            "an orphan goes with --orphans",
            Box::new(|i| i.replicasets.push(replicaset(None, 1, "v1", 0, 24 * 30))),
            rules(|r| r.replicasets.orphans = true),
            vec![
                "ReplicaSet/orphan-1",
                "ReplicaSet/web-1",
                "ReplicaSet/web-2",
                "ReplicaSet/web-3",
            ],
        ),
        (
            "a Deployment not listed: its ReplicaSets are the garbage collector's",
            Box::new(|i| i.deployments.clear()),
            rules(|_| {}),
            vec![],
        ),
        (
            "rule off",
            Box::new(|_| {}),
            rules(|r| r.replicasets.enabled = false),
            vec![],
        ),
    ];
    let n = cases.len();
    for (name, change, set, want) in cases {
        let mut i = inv.clone();
        change(&mut i);
        assert_eq!(names(&i, &set), want, "{name}");
    }
    assert!(n >= 10);
}

#[test]
fn jobs_and_pods() {
    let none = json!({});
    let cases: Vec<(&str, Job, super::rules::RuleSet, bool)> = vec![
        (
            "complete 2 days ago",
            job("a", Some("Complete"), 48, none.clone()),
            rules(|_| {}),
            true,
        ),
        (
            "failed 2 days ago",
            job("a", Some("Failed"), 48, none.clone()),
            rules(|_| {}),
            true,
        ),
        (
            "complete an hour ago",
            job("a", Some("Complete"), 1, none.clone()),
            rules(|_| {}),
            false,
        ),
        (
            "running",
            job("a", None, 48, none.clone()),
            rules(|_| {}),
            false,
        ),
        (
            "a CronJob's",
            job("a", Some("Complete"), 48, json!({ "owner": "nightly" })),
            rules(|_| {}),
            false,
        ),
        (
            "a CronJob's with --include-cronjob-jobs",
            job("a", Some("Complete"), 48, json!({ "owner": "nightly" })),
            rules(|r| r.jobs.include_cron_job_jobs = true),
            true,
        ),
        (
            "ttlSecondsAfterFinished: left to Kubernetes",
            job("a", Some("Complete"), 48, json!({ "ttl": 60 })),
            rules(|_| {}),
            false,
        ),
        (
            "job-ttl 3d",
            job("a", Some("Complete"), 48, none.clone()),
            rules(|r| r.jobs.ttl = Duration::from_secs(3 * 86400)),
            false,
        ),
    ];
    for (name, j, set, want) in cases {
        let inv = Inventory {
            jobs: vec![j],
            ..Default::default()
        };
        assert_eq!(!names(&inv, &set).is_empty(), want, "{name}");
    }
    let cases: Vec<(&str, Pod, super::rules::RuleSet, bool)> = vec![
        (
            "evicted 2 hours ago",
            pod("p", "Failed", Some("Evicted"), 2),
            rules(|_| {}),
            true,
        ),
        (
            "evicted just now",
            pod("p", "Failed", Some("Evicted"), 0),
            rules(|_| {}),
            false,
        ),
        (
            "failed, not evicted",
            pod("p", "Failed", Some("Error"), 2),
            rules(|_| {}),
            false,
        ),
        (
            "failed with --all-failed-pods",
            pod("p", "Failed", None, 2),
            rules(|r| r.pods.all_failed = true),
            true,
        ),
        (
            "running",
            pod("p", "Running", None, 2),
            rules(|r| r.pods.all_failed = true),
            false,
        ),
    ];
    for (name, p, set, want) in cases {
        let inv = Inventory {
            pods: vec![p],
            ..Default::default()
        };
        assert_eq!(!names(&inv, &set).is_empty(), want, "{name}");
    }
}

#[test]
fn ttl_annotations() {
    let ttl = |v: &str| ("janitor.clusterctl.io/ttl", v.to_string());
    let cases: Vec<(&str, Annotated, bool, usize)> = vec![
        (
            "36h TTL, 48h old",
            annotated("ConfigMap", "a", Some("app"), 48, &[ttl("36h")]),
            true,
            0,
        ),
        (
            "7d TTL, 48h old",
            annotated("ConfigMap", "a", Some("app"), 48, &[ttl("7d")]),
            false,
            0,
        ),
        (
            "redeployed an hour ago: counts from then",
            annotated(
                "ConfigMap",
                "a",
                Some("app"),
                48,
                &[ttl("36h"), ("janitor.clusterctl.io/last-deployed", ago(1))],
            ),
            false,
            0,
        ),
        (
            "expires in the past",
            annotated(
                "ConfigMap",
                "a",
                Some("app"),
                1,
                &[("janitor.clusterctl.io/expires", ago(0))],
            ),
            true,
            0,
        ),
        (
            "expires tomorrow",
            annotated(
                "ConfigMap",
                "a",
                Some("app"),
                1,
                &[("janitor.clusterctl.io/expires", ago(-24))],
            ),
            false,
            0,
        ),
        (
            "no annotation",
            annotated("ConfigMap", "a", Some("app"), 480, &[]),
            false,
            0,
        ),
        (
            "a bad TTL is kept and said",
            annotated("ConfigMap", "a", Some("app"), 480, &[ttl("soon")]),
            false,
            1,
        ),
        (
            "a namespace",
            annotated("Namespace", "preview-x", None, 48, &[ttl("1d")]),
            true,
            0,
        ),
        (
            "kube-system never",
            annotated("Namespace", "kube-system", None, 48, &[ttl("1d")]),
            false,
            0,
        ),
    ];
    for (name, o, want, problems) in cases {
        let inv = Inventory {
            annotated: vec![o],
            ..Default::default()
        };
        let s = select(&inv, &rules(|_| {}), now());
        assert_eq!(!s.delete.is_empty(), want, "{name}: {s:?}");
        assert_eq!(s.problems.len(), problems, "{name}: {:?}", s.problems);
    }
}

#[test]
fn the_rules_file_is_strict_and_overrides_per_namespace() {
    let text = "jobs:\n  ttl: 2h\nnamespaces:\n  ci:\n    jobs: { ttl: 10m }\n    pods: { enabled: false }\n";
    let set = parse_file(text, "rules.yaml", Rules::default()).unwrap();
    assert_eq!(set.default.jobs.ttl, Duration::from_secs(7200));
    assert_eq!(
        set.for_namespace(Some("ci")).jobs.ttl,
        Duration::from_secs(600)
    );
    assert!(!set.for_namespace(Some("ci")).pods.enabled);
    assert!(set.for_namespace(Some("other")).pods.enabled);
    // Errors at their line, naming the field.
    let bad: [(&str, &str); 3] = [
        (
            "jobs:\n  ttl: 2h\n  tll: 3h\n",
            "rules.yaml:3:3: jobs.tll: unknown field `tll`",
        ),
        (
            "pods:\n  ttl: soon\n",
            "rules.yaml:2:3: pods.ttl: \"soon\" is not a duration",
        ),
        (
            "namespaces:\n  ci:\n    replicasets: { keepRevisions: -1 }\n",
            "rules.yaml:3:",
        ),
    ];
    for (text, want) in bad {
        let e = parse_file(text, "rules.yaml", Rules::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
}
