//! Conformance of the test API server, driven by the real `kube` client.
//! The same tests run against a real cluster when CLUSTERCTL_TEST_KUBECONFIG
//! is set; checks that only make sense on the test server (the request log)
//! are guarded by `env.local()`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::discovery::Discovery;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};

use crate::kube_env::{KubeEnv, api_error, eventually};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({ "metadata": { "name": name, "labels": labels }, "data": { "k": "v" } }),
    )
    .unwrap()
}

/// A pod no scheduler or kubelet will touch, so tests own its status.
fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "schedulerName": "clusterctl-test-no-scheduler",
            "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }],
        },
    }))
    .unwrap()
}

async fn set_running(api: &Api<Pod>, name: &str, ready: bool) {
    let status = json!({ "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn names<K: kube::Resource>(items: &[K]) -> BTreeSet<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn discovery_lists_served_resources() {
    let env = KubeEnv::new("discovery").await;
    let v = env.client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let d = Discovery::new(env.client.clone()).run().await.unwrap();
    let mut kinds = BTreeSet::new();
    for g in d.groups() {
        for (ar, _) in g.recommended_resources() {
            kinds.insert(format!("{}/{}", ar.api_version, ar.kind));
        }
    }
    for want in [
        "v1/Pod",
        "v1/Namespace",
        "apps/v1/Deployment",
        "batch/v1/CronJob",
        "coordination.k8s.io/v1/Lease",
        "policy/v1/PodDisruptionBudget",
        "networking.k8s.io/v1/Ingress",
        "rbac.authorization.k8s.io/v1/ClusterRole",
    ] {
        assert!(kinds.contains(want), "{want} missing from {kinds:?}");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn create_sets_metadata() {
    let env = KubeEnv::new("create-meta").await;
    let api: Api<ConfigMap> = env.api();
    let c = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let m = &c.metadata;
    assert!(m.uid.as_deref().is_some_and(|u| !u.is_empty()));
    assert!(m.creation_timestamp.is_some());
    assert!(m.resource_version.as_deref().is_some_and(|r| !r.is_empty()));
    assert_eq!(m.namespace.as_deref(), Some(env.ns.as_str()));
    let got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid, m.uid);
    assert_eq!(got.data.unwrap()["k"], "v");
    env.cleanup().await;
}

#[tokio::test]
async fn generate_name_creates_unique_names() {
    let env = KubeEnv::new("generate-name").await;
    let api: Api<ConfigMap> = env.api();
    let mut o = cm("", json!({}));
    o.metadata.name = None;
    o.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &o).await.unwrap();
    let b = api.create(&PostParams::default(), &o).await.unwrap();
    assert!(a.name_any().starts_with("gen-") && b.name_any().starts_with("gen-"));
    assert_ne!(a.name_any(), b.name_any());
    env.cleanup().await;
}

#[tokio::test]
async fn create_twice_is_409_already_exists() {
    let env = KubeEnv::new("already-exists").await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let s = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    env.cleanup().await;
}

#[tokio::test]
async fn get_missing_is_404_with_status_shape() {
    let env = KubeEnv::new("not-found").await;
    let api: Api<ConfigMap> = env.api();
    let s = api_error(api.get("nope").await);
    assert_eq!(s.code, 404);
    assert_eq!(s.reason, "NotFound");
    assert_eq!(s.message, "configmaps \"nope\" not found");
    assert!(s.is_failure());
    let d = s.details.unwrap();
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("nope", "configmaps"));
    env.cleanup().await;
}

#[tokio::test]
async fn create_in_missing_namespace_is_404() {
    let env = KubeEnv::new("missing-ns").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &format!("{}-absent", env.ns));
    let s = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    env.cleanup().await;
}

#[tokio::test]
async fn invalid_name_is_422() {
    let env = KubeEnv::new("invalid-name").await;
    let api: Api<ConfigMap> = env.api();
    let s = api_error(
        api.create(&PostParams::default(), &cm("Not_Valid", json!({})))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    env.cleanup().await;
}

#[tokio::test]
async fn stale_update_is_409_conflict() {
    let env = KubeEnv::new("stale-update").await;
    let api: Api<ConfigMap> = env.api();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut first = a.clone();
    first.data = Some([("k".to_string(), "first".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        a.metadata.resource_version
    );
    let mut second = a.clone();
    second.data = Some([("k".to_string(), "second".to_string())].into());
    let s = api_error(api.replace("a", &PostParams::default(), &second).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "first");
    env.cleanup().await;
}

#[tokio::test]
async fn generation_tracks_spec_changes_only() {
    let env = KubeEnv::new("generation").await;
    let api: Api<Deployment> = env.api();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "replicas": 0, "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] } } },
    })).unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    let g0 = created.metadata.generation.unwrap();
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } })),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(g0),
        "a label change leaves generation alone"
    );
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .unwrap();
    assert_eq!(
        scaled.metadata.generation,
        Some(g0 + 1),
        "a spec change bumps generation"
    );
    env.cleanup().await;
}

async fn seed_labelled(api: &Api<ConfigMap>) {
    for (name, labels) in [
        ("web-1", json!({ "app": "web", "tier": "frontend" })),
        (
            "web-2",
            json!({ "app": "web", "tier": "frontend", "canary": "true" }),
        ),
        ("api-1", json!({ "app": "api", "tier": "backend" })),
        ("db-1", json!({ "app": "db" })),
    ] {
        api.create(&PostParams::default(), &cm(name, labels))
            .await
            .unwrap();
    }
}

async fn select(api: &Api<ConfigMap>, sel: &str) -> BTreeSet<String> {
    names(
        &api.list(&ListParams::default().labels(sel))
            .await
            .unwrap()
            .items,
    )
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn label_selector_equality() {
    let env = KubeEnv::new("label-eq").await;
    let api: Api<ConfigMap> = env.api();
    seed_labelled(&api).await;
    assert_eq!(select(&api, "app=web").await, set(&["web-1", "web-2"]));
    assert_eq!(select(&api, "app==api").await, set(&["api-1"]));
    assert_eq!(
        select(&api, "app=web,tier=frontend").await,
        set(&["web-1", "web-2"])
    );
    assert_eq!(select(&api, "app!=web").await, set(&["api-1", "db-1"]));
    env.cleanup().await;
}

#[tokio::test]
async fn label_selector_set_based() {
    let env = KubeEnv::new("label-set").await;
    let api: Api<ConfigMap> = env.api();
    seed_labelled(&api).await;
    assert_eq!(
        select(&api, "app in (web,db)").await,
        set(&["web-1", "web-2", "db-1"])
    );
    assert_eq!(
        select(&api, "tier notin (frontend)").await,
        set(&["api-1", "db-1"])
    );
    env.cleanup().await;
}

#[tokio::test]
async fn label_selector_exists_and_not() {
    let env = KubeEnv::new("label-exists").await;
    let api: Api<ConfigMap> = env.api();
    seed_labelled(&api).await;
    assert_eq!(select(&api, "canary").await, set(&["web-2"]));
    assert_eq!(select(&api, "!tier").await, set(&["db-1"]));
    assert_eq!(select(&api, "app=web,!canary").await, set(&["web-1"]));
    env.cleanup().await;
}

#[tokio::test]
async fn field_selector_name_and_namespace() {
    let env = KubeEnv::new("field-name").await;
    let api: Api<ConfigMap> = env.api();
    seed_labelled(&api).await;
    let got = api
        .list(&ListParams::default().fields("metadata.name=api-1"))
        .await
        .unwrap();
    assert_eq!(names(&got.items), set(&["api-1"]));
    let all: Api<ConfigMap> = Api::all(env.client.clone());
    let got = all
        .list(
            &ListParams::default()
                .fields(&format!("metadata.namespace={}", env.ns))
                .labels("app"),
        )
        .await
        .unwrap();
    assert_eq!(got.items.len(), 4);
    let got = api
        .list(&ListParams::default().fields("metadata.name!=api-1"))
        .await
        .unwrap();
    assert!(!names(&got.items).contains("api-1"));
    env.cleanup().await;
}

#[tokio::test]
async fn field_selector_pod_phase_and_node() {
    let env = KubeEnv::new("field-pod").await;
    let api: Api<Pod> = env.api();
    for n in ["p1", "p2", "p3"] {
        api.create(&PostParams::default(), &pod(n, json!({})))
            .await
            .unwrap();
    }
    set_running(&api, "p1", true).await;
    let running = api
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap();
    assert_eq!(names(&running.items), set(&["p1"]));
    let pending = api
        .list(&ListParams::default().fields("status.phase!=Running"))
        .await
        .unwrap();
    assert_eq!(names(&pending.items), set(&["p2", "p3"]));
    let unbound = api
        .list(&ListParams::default().fields("spec.nodeName="))
        .await
        .unwrap();
    assert_eq!(unbound.items.len(), 3, "no pod is bound to a node");
    env.cleanup().await;
}

#[tokio::test]
async fn list_paginates_with_limit_and_continue() {
    let env = KubeEnv::new("paginate").await;
    let api: Api<ConfigMap> = env.api();
    for i in 0..25 {
        api.create(
            &PostParams::default(),
            &cm(&format!("cm-{i:02}"), json!({ "page": "yes" })),
        )
        .await
        .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    let mut lp = ListParams::default().labels("page=yes").limit(10);
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        for i in &page.items {
            assert!(seen.insert(i.name_any()), "{} seen twice", i.name_any());
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 25));
    env.cleanup().await;
}

#[tokio::test]
async fn watch_sees_added_modified_deleted() {
    let env = KubeEnv::new("watch-raw").await;
    let api: Api<ConfigMap> = env.api();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("w", json!({})))
        .await
        .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "v2" } })),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(o)) => kinds.push(("ADDED", o.name_any())),
            Some(WatchEvent::Modified(o)) => kinds.push(("MODIFIED", o.data.unwrap()["k"].clone())),
            Some(WatchEvent::Deleted(o)) => kinds.push(("DELETED", o.name_any())),
            Some(WatchEvent::Bookmark(_)) => {}
            Some(WatchEvent::Error(e)) => panic!("{e:?}"),
            None => break,
        }
    }
    assert_eq!(
        kinds,
        [
            ("ADDED", "w".to_string()),
            ("MODIFIED", "v2".to_string()),
            ("DELETED", "w".to_string())
        ]
    );
    env.cleanup().await;
}

#[tokio::test]
async fn watch_resumes_from_resource_version() {
    let env = KubeEnv::new("watch-resume").await;
    let api: Api<ConfigMap> = env.api();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    // Resuming after `a` replays exactly the later changes.
    let mut stream = api
        .watch(
            &WatchParams::default().timeout(10),
            &a.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(o)) => got.push(o.name_any()),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, ["b", "c"]);
    env.cleanup().await;
}

#[tokio::test]
async fn watch_with_label_selector_reports_leaving_as_deleted() {
    let env = KubeEnv::new("watch-selector").await;
    let api: Api<ConfigMap> = env.api();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("team=a").timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("x", json!({ "team": "b" })))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "a" } } })),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "c" } } })),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(_)) => got.push("ADDED"),
            Some(WatchEvent::Modified(_)) => got.push("MODIFIED"),
            Some(WatchEvent::Deleted(_)) => got.push("DELETED"),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, ["ADDED", "DELETED"]);
    env.cleanup().await;
}

#[tokio::test]
async fn watch_sends_bookmarks() {
    let env = KubeEnv::new("bookmarks").await;
    let api: Api<ConfigMap> = env.api();
    let c = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv: u64 = c.resource_version().unwrap().parse().unwrap_or(0);
    let wait = if env.local().is_some() { 15 } else { 90 };
    let mut stream = api
        .watch(
            &WatchParams::default().timeout(wait),
            &c.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let bm = loop {
        match tokio::time::timeout(Duration::from_secs(wait.into()), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Bookmark(b)) => break b,
            Some(_) => {}
            None => panic!("stream ended without a bookmark"),
        }
    };
    let brv: u64 = bm.metadata.resource_version.parse().unwrap_or(0);
    assert!(brv >= rv, "bookmark {brv} is behind {rv}");
    env.cleanup().await;
}

#[tokio::test]
async fn runtime_watcher_sees_pod_lifecycle() {
    let env = KubeEnv::new("watcher").await;
    let api: Api<Pod> = env.api();
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    // The first events are the initial list (empty).
    let mut log: Vec<String> = Vec::new();
    let mut created = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !log.iter().any(|l| l == "delete:p") {
        let ev = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .expect("watcher timed out")
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::InitDone => {
                if !created {
                    created = true;
                    api.create(&PostParams::default(), &pod("p", json!({ "a": "1" })))
                        .await
                        .unwrap();
                }
            }
            watcher::Event::Apply(p) => {
                let entry = format!(
                    "apply:{}:{}",
                    p.name_any(),
                    p.labels().get("a").cloned().unwrap_or_default()
                );
                if entry == "apply:p:1" && !log.contains(&entry) {
                    api.patch(
                        "p",
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "labels": { "a": "2" } } })),
                    )
                    .await
                    .unwrap();
                }
                if entry == "apply:p:2" && !log.contains(&entry) {
                    api.delete("p", &DeleteParams::default().grace_period(0))
                        .await
                        .unwrap();
                }
                log.push(entry);
            }
            watcher::Event::Delete(p) => log.push(format!("delete:{}", p.name_any())),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
    let want = ["apply:p:1", "apply:p:2", "delete:p"];
    let filtered: Vec<&String> = log.iter().filter(|l| want.contains(&l.as_str())).collect();
    assert_eq!(filtered, want, "{log:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn reflector_converges_after_1000_creates() {
    let env = KubeEnv::new("reflector").await;
    let api: Api<ConfigMap> = env.api();
    let (reader, writer) = reflector::store();
    let rf = reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(rf);
        while rf.try_next().await.is_ok() {}
    });
    reader.wait_until_ready().await.unwrap();
    let creates = futures::stream::iter(0..1000).map(|i| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &cm(&format!("r-{i:04}"), json!({ "batch": "r" })),
            )
            .await
            .map(|_| ())
        }
    });
    creates
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    eventually("the reflector holds 1000 objects", || {
        let n = reader.state().len();
        async move { n == 1000 }
    })
    .await;
    let mut names: Vec<String> = reader.state().iter().map(|o| o.name_any()).collect();
    names.sort();
    assert_eq!(names.first().map(String::as_str), Some("r-0000"));
    assert_eq!(names.last().map(String::as_str), Some("r-0999"));
    task.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let env = KubeEnv::new("finalizers").await;
    let api: Api<ConfigMap> = env.api();
    let mut o = cm("f", json!({}));
    o.metadata.finalizers = Some(vec!["clusterctl.io/hold".into()]);
    api.create(&PostParams::default(), &o).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp is set"
    );
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    eventually("the object is gone", || async {
        api.get_opt("f").await.unwrap().is_none()
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn namespace_deletion_removes_everything_in_it() {
    let env = KubeEnv::new("ns-delete").await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    let child = format!("{}-child", env.ns);
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": child } })).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &child);
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &child);
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    nss.delete(&child, &DeleteParams::default()).await.unwrap();
    eventually("the namespace and its content are gone", || async {
        nss.get_opt(&child).await.unwrap().is_none()
    })
    .await;
    let left = cms.list(&ListParams::default()).await.unwrap().items.len()
        + pods.list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(left, 0);
    env.cleanup().await;
}

fn owned_cm(name: &str, owner: &ConfigMap, finalizer: bool) -> ConfigMap {
    let mut o = cm(name, json!({}));
    o.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid().unwrap(),
    })).unwrap()]);
    if finalizer {
        o.metadata.finalizers = Some(vec!["clusterctl.io/hold".into()]);
    }
    o
}

#[tokio::test]
async fn cascading_delete_background() {
    let env = KubeEnv::new("cascade-bg").await;
    let api: Api<ConfigMap> = env.api();
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    for n in ["dep-1", "dep-2"] {
        api.create(&PostParams::default(), &owned_cm(n, &owner, false))
            .await
            .unwrap();
    }
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("owner and dependents are gone", || async {
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|c| !c.name_any().starts_with("dep-") && c.name_any() != "owner")
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn cascading_delete_foreground_waits_for_dependents() {
    let env = KubeEnv::new("cascade-fg").await;
    let api: Api<ConfigMap> = env.api();
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &owned_cm("held", &owner, true))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the dependent is being deleted", || async {
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    let o = api.get("owner").await.unwrap();
    assert!(o.metadata.deletion_timestamp.is_some());
    assert!(
        o.finalizers().iter().any(|f| f == "foregroundDeletion"),
        "{:?}",
        o.finalizers()
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    eventually("owner is gone after its dependent", || async {
        api.get_opt("owner").await.unwrap().is_none()
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn orphan_delete_keeps_dependents() {
    let env = KubeEnv::new("cascade-orphan").await;
    let api: Api<ConfigMap> = env.api();
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &owned_cm("dep", &owner, false))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("owner is gone", || async {
        api.get_opt("owner").await.unwrap().is_none()
    })
    .await;
    eventually("dependent lost its owner reference", || async {
        api.get("dep").await.unwrap().owner_references().is_empty()
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn delete_precondition_on_uid() {
    let env = KubeEnv::new("precondition").await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams::default().preconditions(kube::api::Preconditions {
        uid: Some("not-the-uid".into()),
        resource_version: None,
    });
    let s = api_error(api.delete("a", &dp).await);
    assert_eq!(s.code, 409);
    assert!(api.get_opt("a").await.unwrap().is_some());
    env.cleanup().await;
}

#[tokio::test]
async fn delete_collection_by_label() {
    let env = KubeEnv::new("delete-collection").await;
    let api: Api<ConfigMap> = env.api();
    seed_labelled(&api).await;
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=web"),
    )
    .await
    .unwrap();
    eventually("web configmaps are gone", || async {
        select(&api, "app").await == set(&["api-1", "db-1"])
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn merge_patch() {
    let env = KubeEnv::new("merge-patch").await;
    let api: Api<ConfigMap> = env.api();
    api.create(
        &PostParams::default(),
        &cm("a", json!({ "keep": "1", "drop": "1" })),
    )
    .await
    .unwrap();
    let p =
        json!({ "metadata": { "labels": { "drop": null, "new": "2" } }, "data": { "k2": "v2" } });
    let o = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    let labels = o.labels();
    assert_eq!(
        (
            labels.get("keep").map(String::as_str),
            labels.get("drop"),
            labels.get("new").map(String::as_str)
        ),
        (Some("1"), None, Some("2"))
    );
    assert_eq!(o.data.unwrap().len(), 2);
    env.cleanup().await;
}

#[tokio::test]
async fn json_patch() {
    let env = KubeEnv::new("json-patch").await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({ "x": "1" })))
        .await
        .unwrap();
    let p: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/data/k", "value": "v" },
        { "op": "replace", "path": "/data/k", "value": "patched" },
        { "op": "add", "path": "/metadata/labels/y", "value": "2" },
    ]))
    .unwrap();
    let o = api
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(p))
        .await
        .unwrap();
    assert_eq!(o.labels()["y"], "2");
    assert_eq!(o.data.unwrap()["k"], "patched");
    // A failing test operation rejects the whole patch.
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "test", "path": "/data/k", "value": "nope" }]))
            .unwrap();
    let s = api_error(
        api.patch("a", &PatchParams::default(), &Patch::<()>::Json(bad))
            .await,
    );
    assert_eq!(s.code, 422);
    env.cleanup().await;
}

#[tokio::test]
async fn strategic_merge_patch_of_labels() {
    let env = KubeEnv::new("strategic").await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({ "a": "1" })))
        .await
        .unwrap();
    let o = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "metadata": { "labels": { "b": "2" } } })),
        )
        .await
        .unwrap();
    assert_eq!(o.labels().len(), 2);
    env.cleanup().await;
}

#[tokio::test]
async fn server_side_apply_creates_then_updates() {
    let env = KubeEnv::new("ssa").await;
    let api: Api<ConfigMap> = env.api();
    let pp = PatchParams::apply("clusterctl-test").force();
    let doc = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "a": "1" } });
    let created = api
        .patch("applied", &pp, &Patch::Apply(&doc))
        .await
        .unwrap();
    assert_eq!(created.data.unwrap()["a"], "1");
    let doc2 = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "a": "2" } });
    let updated = api
        .patch("applied", &pp, &Patch::Apply(&doc2))
        .await
        .unwrap();
    assert_eq!(updated.data.unwrap()["a"], "2");
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    env.cleanup().await;
}

#[tokio::test]
async fn patch_with_stale_resource_version_is_409() {
    let env = KubeEnv::new("patch-conflict").await;
    let api: Api<ConfigMap> = env.api();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "new" } })),
    )
    .await
    .unwrap();
    let p = json!({ "metadata": { "resourceVersion": a.resource_version().unwrap() }, "data": { "k": "stale" } });
    let s = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Merge(&p))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    env.cleanup().await;
}

#[tokio::test]
async fn status_subresource_is_separate_from_spec() {
    let env = KubeEnv::new("status-sub").await;
    let api: Api<Pod> = env.api();
    let mut p = pod("p", json!({}));
    p.status = Some(serde_json::from_value(json!({ "phase": "Running" })).unwrap());
    let created = api.create(&PostParams::default(), &p).await.unwrap();
    assert_ne!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running"),
        "status is not set on create"
    );
    set_running(&api, "p", true).await;
    let got = api.get("p").await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Running"));
    // A main-resource patch cannot change status.
    let o = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "phase": "Failed" }, "metadata": { "labels": { "x": "1" } } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(o.status.unwrap().phase.as_deref(), Some("Running"));
    env.cleanup().await;
}

async fn pdb(api: &Api<PodDisruptionBudget>, min_available: i32) {
    let b: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": { "name": "budget" },
        "spec": { "minAvailable": min_available, "selector": { "matchLabels": { "app": "guarded" } } },
    })).unwrap();
    api.create(&PostParams::default(), &b).await.unwrap();
}

#[tokio::test]
async fn eviction_without_budget_deletes_the_pod() {
    let env = KubeEnv::new("evict-free").await;
    let api: Api<Pod> = env.api();
    api.create(&PostParams::default(), &pod("p", json!({ "app": "free" })))
        .await
        .unwrap();
    set_running(&api, "p", true).await;
    api.evict("p", &EvictParams::default()).await.unwrap();
    eventually("the evicted pod is gone or terminating", || async {
        api.get_opt("p")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn eviction_refused_with_429_when_budget_would_be_violated() {
    let env = KubeEnv::new("evict-refused").await;
    let pods: Api<Pod> = env.api();
    for n in ["g-1", "g-2"] {
        pods.create(&PostParams::default(), &pod(n, json!({ "app": "guarded" })))
            .await
            .unwrap();
        set_running(&pods, n, true).await;
    }
    pdb(&env.api(), 2).await;
    let s = api_error(pods.evict("g-1", &EvictParams::default()).await);
    assert_eq!(
        (s.code, s.reason.as_str()),
        (429, "TooManyRequests"),
        "{s:?}"
    );
    assert!(
        pods.get("g-1")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn eviction_allowed_within_budget() {
    let env = KubeEnv::new("evict-budget").await;
    let pods: Api<Pod> = env.api();
    for n in ["g-1", "g-2", "g-3"] {
        pods.create(&PostParams::default(), &pod(n, json!({ "app": "guarded" })))
            .await
            .unwrap();
        set_running(&pods, n, true).await;
    }
    pdb(&env.api(), 2).await;
    // The real server's disruption controller needs a moment to compute the budget.
    eventually("one eviction is allowed", || async {
        pods.evict("g-1", &EvictParams::default()).await.is_ok()
    })
    .await;
    eventually("g-1 is gone or terminating", || async {
        pods.get_opt("g-1")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    let s = api_error(pods.evict("g-2", &EvictParams::default()).await);
    assert_eq!(
        s.code, 429,
        "a second eviction would leave 1 < minAvailable 2"
    );
    env.cleanup().await;
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } },
                  "template": { "metadata": { "labels": { "app": name } },
                                "spec": { "schedulerName": "clusterctl-test-no-scheduler", "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] } } },
    })).unwrap()
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let env = KubeEnv::new("scale-deploy").await;
    let api: Api<Deployment> = env.api();
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let mut s = api.get_scale("web").await.unwrap();
    assert_eq!(s.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(
        s.status.as_ref().unwrap().selector.as_deref(),
        Some("app=web")
    );
    s.spec.as_mut().unwrap().replicas = Some(3);
    let after = api
        .replace_scale("web", &PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(3));
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    // A stale Scale is refused like any stale write.
    let s2 = api_error(api.replace_scale("web", &PostParams::default(), &s).await);
    assert_eq!(s2.code, 409);
    env.cleanup().await;
}

#[tokio::test]
async fn scale_subresource_patch_statefulset() {
    let env = KubeEnv::new("scale-sts").await;
    let api: Api<StatefulSet> = env.api();
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": { "replicas": 1, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } },
                  "template": { "metadata": { "labels": { "app": "db" } },
                                "spec": { "schedulerName": "clusterctl-test-no-scheduler", "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] } } },
    })).unwrap();
    api.create(&PostParams::default(), &sts).await.unwrap();
    api.patch_scale(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
    )
    .await
    .unwrap();
    assert_eq!(api.get("db").await.unwrap().spec.unwrap().replicas, Some(0));
    env.cleanup().await;
}

#[tokio::test]
async fn leases_serialise_leaders() {
    let env = KubeEnv::new("leases").await;
    let api: Api<Lease> = env.api();
    let l: Lease = serde_json::from_value(json!({
        "metadata": { "name": "leader" }, "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15 },
    })).unwrap();
    let created = api.create(&PostParams::default(), &l).await.unwrap();
    // Two candidates read the same version; only the first write wins.
    let mut a = created.clone();
    a.spec.as_mut().unwrap().holder_identity = Some("a-renewed".into());
    let mut b = created.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let won = api.replace("leader", &PostParams::default(), &a).await;
    let lost = api.replace("leader", &PostParams::default(), &b).await;
    assert!(won.is_ok());
    assert_eq!(api_error(lost).code, 409);
    assert_eq!(
        api.get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a-renewed")
    );
    env.cleanup().await;
}

#[tokio::test]
async fn cluster_scoped_nodes() {
    let env = KubeEnv::new("nodes").await;
    let api: Api<Node> = Api::all(env.client.clone());
    if env.local().is_none() {
        // Creating Nodes on a real cluster would confuse its controllers.
        env.cleanup().await;
        return;
    }
    let n: Node = serde_json::from_value(json!({ "metadata": { "name": "node-a", "labels": { "topology.kubernetes.io/zone": "eu-west-1a" } } })).unwrap();
    api.create(&PostParams::default(), &n).await.unwrap();
    api.patch(
        "node-a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "unschedulable": true } })),
    )
    .await
    .unwrap();
    let cordoned = api
        .list(&ListParams::default().fields("spec.unschedulable=true"))
        .await
        .unwrap();
    assert_eq!(names(&cordoned.items), set(&["node-a"]));
    api.patch_status(
        "node-a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "allocatable": { "cpu": "2" } } })),
    )
    .await
    .unwrap();
    assert_eq!(
        api.get("node-a")
            .await
            .unwrap()
            .status
            .unwrap()
            .allocatable
            .unwrap()["cpu"]
            .0,
        "2"
    );
    api.delete("node-a", &DeleteParams::default())
        .await
        .unwrap();
    assert!(api.get_opt("node-a").await.unwrap().is_none());
    env.cleanup().await;
}
