//! The janitor against the test API server (or the real cluster of
//! CLUSTERCTL_TEST_KUBECONFIG), in the test's namespaces only: 20
//! Deployments with 15 old ReplicaSets each, finished and running Jobs,
//! evicted and running pods, TTL-annotated ConfigMaps (one redeployed
//! recently) and namespaces. A dry run lists exactly the expected set and
//! deletes nothing; a real run deletes exactly that set; an object replaced
//! between the list and the delete survives.
//!
//! The Deployments are paused with 0 replicas and a long revision history,
//! so on a real cluster their controller neither makes pods nor prunes the
//! test's ReplicaSets; pods and Jobs never run (no such scheduler,
//! suspended).

use std::collections::BTreeSet;
use std::time::Duration;

use clusterctl::controllers::janitor::act::Pace;
use clusterctl::controllers::janitor::observe::Lister;
use clusterctl::controllers::janitor::rules::{RuleSet, Rules};
use clusterctl::controllers::janitor::{execute, plan};
use clusterctl::controllers::runtime::events::Events;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kube_env::KubeEnv;

const REVISION: &str = "deployment.kubernetes.io/revision";

fn template(app: &str, rev: u32) -> serde_json::Value {
    json!({ "metadata": { "labels": { "app": app } },
            "spec": { "schedulerName": "clusterctl-test-no-scheduler",
                      "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10",
                                       "env": [{ "name": "REV", "value": rev.to_string() }] }] } })
}

async fn fixture(env: &KubeEnv, ttl_ns: &str, kept_ns: &str) -> BTreeSet<String> {
    let pp = PostParams::default();
    let mut expected = BTreeSet::new();
    let deployments: Api<Deployment> = env.api();
    let replicasets: Api<ReplicaSet> = env.api();
    for d in 0..20 {
        let app = format!("app-{d}");
        let dep: Deployment = serde_json::from_value(json!({
            "metadata": { "name": app, "annotations": { REVISION: "15" } },
            "spec": { "replicas": 0, "paused": true, "revisionHistoryLimit": 100,
                      "selector": { "matchLabels": { "app": app } }, "template": template(&app, 15) },
        }))
        .unwrap();
        let dep = deployments.create(&pp, &dep).await.unwrap();
        for rev in 1..=15u32 {
            let mut t = template(&app, rev);
            t["metadata"]["labels"]["pod-template-hash"] = format!("h{rev}").into();
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": { "name": format!("{app}-h{rev}"), "annotations": { REVISION: rev.to_string() },
                              "labels": { "app": app, "pod-template-hash": format!("h{rev}") },
                              "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                                                    "uid": dep.metadata.uid, "controller": true, "blockOwnerDeletion": true }] },
                "spec": { "replicas": 0, "selector": { "matchLabels": { "app": app, "pod-template-hash": format!("h{rev}") } },
                          "template": t },
            }))
            .unwrap();
            replicasets.create(&pp, &rs).await.unwrap();
            // The newest three (13, 14 and the current 15) stay.
            if rev <= 12 {
                expected.insert(format!("ReplicaSet/{app}-h{rev}"));
            }
        }
    }
    // Jobs: finished ones go, a running one, a CronJob's and one with
    // ttlSecondsAfterFinished stay.
    let jobs: Api<Job> = env.api();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    // A suspended CronJob owns one of them (an owner that is not there
    // would have its Job garbage-collected).
    let mut cron_template = json!({ "spec": { "template": template("nightly", 1) } });
    cron_template["spec"]["template"]["spec"]["restartPolicy"] = "Never".into();
    let cron: CronJob = serde_json::from_value(json!({
        "metadata": { "name": "nightly" },
        "spec": { "schedule": "0 3 * * *", "suspend": true, "jobTemplate": cron_template },
    }))
    .unwrap();
    let cron = env.api::<CronJob>().create(&pp, &cron).await.unwrap();
    for (name, state, extra) in [
        ("job-done", Some("Complete"), json!({})),
        ("job-failed", Some("Failed"), json!({})),
        ("job-running", None, json!({})),
        ("job-of-cron", Some("Complete"), json!({ "cron": true })),
        (
            "job-self-ttl",
            Some("Complete"),
            json!({ "ttlSecondsAfterFinished": 3600 }),
        ),
    ] {
        let mut j = json!({
            "metadata": { "name": name },
            "spec": { "suspend": true, "template": template(name, 1) },
        });
        j["spec"]["template"]["spec"]["restartPolicy"] = "Never".into();
        if let Some(t) = extra.get("ttlSecondsAfterFinished") {
            j["spec"]["ttlSecondsAfterFinished"] = t.clone();
        }
        if extra.get("cron").is_some() {
            j["metadata"]["ownerReferences"] = json!([{ "apiVersion": "batch/v1", "kind": "CronJob",
                "name": "nightly", "uid": cron.metadata.uid, "controller": true }]);
        }
        jobs.create(&pp, &serde_json::from_value(j).unwrap())
            .await
            .unwrap();
        if let Some(state) = state {
            let conditions = if state == "Complete" {
                json!([{ "type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now },
                       { "type": "Complete", "status": "True", "lastTransitionTime": now }])
            } else {
                json!([{ "type": "FailureTarget", "status": "True", "lastTransitionTime": now },
                       { "type": "Failed", "status": "True", "lastTransitionTime": now }])
            };
            let mut status = json!({ "startTime": now, "conditions": conditions });
            if state == "Complete" {
                status["completionTime"] = now.clone().into();
                status["succeeded"] = 1.into();
            } else {
                status["failed"] = 1.into();
            }
            jobs.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .unwrap();
        }
        if name == "job-done" || name == "job-failed" {
            expected.insert(format!("Job/{name}"));
        }
    }
    // Pods: an evicted one goes; a running one and one failed otherwise stay.
    let pods: Api<Pod> = env.api();
    for (name, phase, reason) in [
        ("pod-evicted", "Failed", Some("Evicted")),
        ("pod-running", "Running", None),
        ("pod-error", "Failed", Some("Error")),
    ] {
        let p: Pod = serde_json::from_value(
            json!({ "metadata": { "name": name }, "spec": template(name, 1)["spec"] }),
        )
        .unwrap();
        pods.create(&pp, &p).await.unwrap();
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": phase, "reason": reason,
                "conditions": [{ "type": "Ready", "status": "False", "lastTransitionTime": now }] } })),
        )
        .await
        .unwrap();
    }
    expected.insert("Pod/pod-evicted".into());
    // ConfigMaps: a 3 s TTL (expired by the time the janitor runs), one
    // expired by date, one redeployed (its TTL counts again), one plain.
    let cms: Api<ConfigMap> = env.api();
    let past = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_hours(1))
    .to_string();
    for (name, annotations) in [
        ("cm-ttl", json!({ "janitor.clusterctl.io/ttl": "3s" })),
        (
            "cm-redeployed",
            json!({ "janitor.clusterctl.io/ttl": "3s" }),
        ),
        (
            "cm-expires",
            json!({ "janitor.clusterctl.io/expires": past }),
        ),
        ("cm-plain", json!({})),
    ] {
        let cm: ConfigMap = serde_json::from_value(
            json!({ "metadata": { "name": name, "annotations": annotations } }),
        )
        .unwrap();
        cms.create(&pp, &cm).await.unwrap();
    }
    expected.insert("ConfigMap/cm-ttl".into());
    expected.insert("ConfigMap/cm-expires".into());
    // Ingresses (a kind the deployed janitor is given): one expired by
    // date, one plain.
    let ingresses: Api<Ingress> = env.api();
    for (name, annotations) in [
        (
            "ing-expires",
            json!({ "janitor.clusterctl.io/expires": past }),
        ),
        ("ing-plain", json!({})),
    ] {
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": annotations },
            "spec": { "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } } }
        }))
        .unwrap();
        ingresses.create(&pp, &ing).await.unwrap();
    }
    expected.insert("Ingress/ing-expires".into());
    // Namespaces: one expired, one not.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for (name, expires) in [
        (ttl_ns, past.clone()),
        (kept_ns, "2999-01-01T00:00:00Z".to_string()),
    ] {
        let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name,
            "labels": { "clusterctl.io/test": "janitor" },
            "annotations": { "janitor.clusterctl.io/expires": expires } } }))
        .unwrap();
        namespaces.create(&pp, &ns).await.unwrap();
    }
    expected.insert(format!("Namespace/{ttl_ns}"));
    // Past the 3 s TTL; then cm-redeployed is redeployed.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let redeployed = k8s_openapi::jiff::Timestamp::now().to_string();
    cms.patch(
        "cm-redeployed",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "janitor.clusterctl.io/last-deployed": redeployed } } })),
    )
    .await
    .unwrap();
    expected
}

fn rules() -> RuleSet {
    let mut r = Rules::default();
    r.replicasets.min_age = Duration::ZERO;
    r.jobs.ttl = Duration::ZERO;
    r.pods.ttl = Duration::ZERO;
    r.ttl.kinds = vec!["configmaps".into(), "ingresses".into()];
    RuleSet {
        default: r,
        namespaces: Default::default(),
    }
}

/// `Kind/name` of each live (not terminating) object of `K` in the test's
/// namespace.
async fn live<K>(env: &KubeEnv) -> Vec<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    env.api::<K>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .map(|o| {
            format!(
                "{}/{}",
                K::kind(&()),
                o.meta().name.clone().unwrap_or_default()
            )
        })
        .collect()
}

async fn present(env: &KubeEnv, ttl_ns: &str, kept_ns: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.extend(live::<ReplicaSet>(env).await);
    out.extend(live::<Deployment>(env).await);
    out.extend(live::<Job>(env).await);
    out.extend(live::<Pod>(env).await);
    out.extend(live::<ConfigMap>(env).await);
    out.extend(live::<Ingress>(env).await);
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for ns in [ttl_ns, kept_ns] {
        if let Some(n) = namespaces.get_opt(ns).await.unwrap()
            && n.metadata.deletion_timestamp.is_none()
        {
            out.insert(format!("Namespace/{ns}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_deletes_exactly_what_its_rules_select() {
    let env = KubeEnv::new("janitor").await;
    let ttl_ns = format!("{}-expired", env.ns);
    let kept_ns = format!("{}-kept", env.ns);
    let expected = fixture(&env, &ttl_ns, &kept_ns).await;
    assert_eq!(expected.len(), 240 + 2 + 1 + 2 + 1 + 1);
    let before = present(&env, &ttl_ns, &kept_ns).await;
    let scope = vec![env.ns.clone(), ttl_ns.clone(), kept_ns.clone()];
    let events = Events::new(env.client.clone(), "clusterctl-janitor", "test", false);
    let pace = Pace {
        max_per_second: 1000.0,
        concurrency: 8,
    };

    // A dry run: exactly the expected set, nothing deleted.
    let lister = Lister::new(env.client.clone(), scope.clone());
    let selection = plan(&lister, &rules(), k8s_openapi::jiff::Timestamp::now())
        .await
        .unwrap();
    let chosen: BTreeSet<String> = selection
        .delete
        .iter()
        .map(|c| format!("{}/{}", c.kind, c.name))
        .collect();
    assert_eq!(
        chosen.symmetric_difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    let report = execute(&env.client, &events, selection, pace, true).await;
    assert_eq!(report.delete.len(), expected.len());
    assert_eq!(
        present(&env, &ttl_ns, &kept_ns).await,
        before,
        "a dry run deleted something"
    );
    // Pages: 500 a page, so one page per kind and namespace here (seven
    // kinds: ReplicaSets, Deployments, Jobs, failed Pods, and the TTL rule's
    // Namespaces, ConfigMaps and Ingresses).
    assert!(lister.calls.load(std::sync::atomic::Ordering::Relaxed) <= 3 * 7);

    // A real run, with cm-expires replaced between the list and the delete.
    let selection = plan(
        &Lister::new(env.client.clone(), scope.clone()),
        &rules(),
        k8s_openapi::jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = env.api();
    let old = cms.get("cm-expires").await.unwrap();
    cms.delete("cm-expires", &DeleteParams::default())
        .await
        .unwrap();
    let mut again = old.clone();
    again.metadata.uid = None;
    again.metadata.resource_version = None;
    again.metadata.creation_timestamp = None;
    again.metadata.managed_fields = None;
    let replaced = cms.create(&PostParams::default(), &again).await.unwrap();
    let report = execute(&env.client, &events, selection, pace, false).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let cm = &report.summary["ConfigMap"];
    assert_eq!((cm.deleted, cm.errors), (1, 0), "{:?}", report.summary);
    assert_eq!(report.summary["ReplicaSet"].deleted, 240);
    let after = present(&env, &ttl_ns, &kept_ns).await;
    let mut want: BTreeSet<String> = before.difference(&expected).cloned().collect();
    want.insert("ConfigMap/cm-expires".into());
    assert_eq!(
        after.symmetric_difference(&want).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "deleted other than the selected set"
    );
    assert_eq!(
        cms.get("cm-expires").await.unwrap().metadata.uid,
        replaced.metadata.uid,
        "the replacement survives"
    );
    // An Event on each ReplicaSet's Deployment says what went and why.
    let notes = crate::component::events(&env, "JanitorDeleted").await;
    assert!(
        notes
            .iter()
            .any(|(n, by)| n.starts_with("deleted ReplicaSet")
                && n.contains("not among its newest 3")
                && by == "clusterctl-janitor"),
        "{notes:?}"
    );
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let _ = namespaces.delete(&kept_ns, &DeleteParams::default()).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_reports_a_dry_run_deletes_and_refuses_bad_rules() {
    let env = KubeEnv::new("janitor-cli").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_text()).unwrap();
    let past = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_hours(2))
    .to_string();
    let cms: Api<ConfigMap> = env.api();
    for (name, a) in [
        ("old", json!({ "janitor.clusterctl.io/expires": past })),
        ("keep", json!({})),
    ] {
        let cm: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": name, "annotations": a } }))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    // An expired Ingress: the deployed janitor is given ingresses too.
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": { "name": "old-ing", "annotations": { "janitor.clusterctl.io/expires": past } },
        "spec": { "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } } }
    }))
    .unwrap();
    let ingresses: Api<Ingress> = env.api();
    ingresses
        .create(&PostParams::default(), &ing)
        .await
        .unwrap();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterctl"))
            .arg("janitor")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--namespace", &env.ns, "--kinds", "configmaps,ingresses"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&["--dry-run", "-o", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dryRun"], true);
    let mut names: Vec<&str> = report["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["old", "old-ing"], "{out}");
    assert!(
        report["delete"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["reason"].as_str().unwrap().contains("TTL expired")),
        "{out}"
    );
    assert!(
        cms.get_opt("old").await.unwrap().is_some(),
        "a dry run deleted"
    );
    // A real run, as a table with a summary.
    let (code, out, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("ConfigMap") && out.contains("deleted"),
        "{out}"
    );
    assert!(
        // Deleted 1; kept "keep" and kube-root-ca.crt; no errors.
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["ConfigMap", "1", "2", "0", "0"]),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Ingress", "1", "0", "0", "0"]),
        "{out}"
    );
    assert!(cms.get_opt("old").await.unwrap().is_none());
    assert!(cms.get_opt("keep").await.unwrap().is_some());
    assert!(ingresses.get_opt("old-ing").await.unwrap().is_none());
    // One delete that fails (a fault only the test server can inject):
    // the others still go, and the exit code says so.
    if let Some(server) = env.local() {
        for name in ["stuck", "old2"] {
            let cm: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": name,
                "annotations": { "janitor.clusterctl.io/expires": past } } }))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        server.refuse_deletes_of("stuck");
        let (code, out, err) = run(&[]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains("1 of 2 deletes failed"), "{err}");
        assert!(
            out.contains("error: ConfigMap") && out.contains("stuck"),
            "{out}"
        );
        assert!(cms.get_opt("old2").await.unwrap().is_none());
        assert!(cms.get_opt("stuck").await.unwrap().is_some());
    }
    // A bad rules file, at its line; an unknown kind.
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, "jobs:\n  ttl: 1h\n  keep: 3\n").unwrap();
    let (code, _, err) = run(&["--rules", rules.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("rules.yaml:3:3: jobs.keep: unknown field `keep`"),
        "{err}"
    );
    let (code, _, err) = run(&["--kinds", "widgets"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("\"widgets\" is not a kind the janitor knows"),
        "{err}"
    );
    env.cleanup().await;
}
