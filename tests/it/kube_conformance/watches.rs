//! Raw watches (events, resumption, selectors, bookmarks) and the `kube`
//! runtime's watcher and reflector on top of them. The watches select the
//! test's own objects by label: the cluster writes objects of its own into
//! the namespace (`kube-root-ca.crt`), whose events a client of ours must
//! not see, nor count on.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use super::{cm, ours, ours_and, pod};
use crate::kube_env::{KubeEnv, eventually};

#[tokio::test]
async fn watch_sees_added_modified_deleted() {
    let env = KubeEnv::new("watch-raw").await;
    let api: Api<ConfigMap> = env.api();
    let mine = ours_and(&env, "");
    let rv = api
        .list(&ListParams::default().labels(&mine))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels(&mine).timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("w", ours(&env, json!({}))))
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
            Some(WatchEvent::Modified(o)) => kinds.push((
                "MODIFIED",
                o.data.and_then(|d| d.get("k").cloned()).unwrap_or_default(),
            )),
            Some(WatchEvent::Deleted(o)) => kinds.push(("DELETED", o.name_any())),
            Some(WatchEvent::Bookmark(_)) => {}
            Some(WatchEvent::Error(e)) => panic!("{e:?}"),
            None => break,
        }
    }
    // The selector keeps other objects' events out; a ConfigMap without
    // finalizers goes in one DELETED.
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
        .create(&PostParams::default(), &cm("a", ours(&env, json!({}))))
        .await
        .unwrap();
    for n in ["b", "c"] {
        api.create(&PostParams::default(), &cm(n, ours(&env, json!({}))))
            .await
            .unwrap();
    }
    // Resuming after `a` replays exactly the later changes to our objects
    // (the cluster may have written its own in between).
    let mut stream = api
        .watch(
            &WatchParams::default()
                .labels(&ours_and(&env, ""))
                .timeout(10),
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
        .list(&ListParams::default().labels(&ours_and(&env, "")))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default()
                .labels(&ours_and(&env, "team=a"))
                .timeout(20),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    api.create(
        &PostParams::default(),
        &cm("x", ours(&env, json!({ "team": "b" }))),
    )
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
    // Events (ours or the cluster's) may come first; only the bookmark counts.
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
    let config = watcher::Config::default().labels(&ours_and(&env, ""));
    let mut events = watcher(api.clone(), config).boxed();
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
                    api.create(
                        &PostParams::default(),
                        &pod("p", ours(&env, json!({ "a": "1" }))),
                    )
                    .await
                    .unwrap();
                }
            }
            watcher::Event::Apply(p) if p.name_any() == "p" => {
                let a = p.labels().get("a").cloned().unwrap_or_default();
                let state = if p.metadata.deletion_timestamp.is_some() {
                    "terminating"
                } else {
                    "apply"
                };
                let entry = format!("{state}:p:{a}");
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
            watcher::Event::Delete(p) if p.name_any() == "p" => {
                log.push(format!("delete:{}", p.name_any()));
            }
            watcher::Event::Apply(_)
            | watcher::Event::Delete(_)
            | watcher::Event::Init
            | watcher::Event::InitApply(_) => {}
        }
    }
    // A client sees each state as an Apply, possibly more than once (any
    // write to the pod is one). Deleting a pod may first show as an update
    // that sets deletionTimestamp (a real API server sends one even for an
    // unscheduled pod deleted with grace period 0); then it is gone.
    log.dedup();
    let direct = ["apply:p:1", "apply:p:2", "delete:p"];
    let graceful = ["apply:p:1", "apply:p:2", "terminating:p:2", "delete:p"];
    assert!(log == direct || log == graceful, "{log:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn reflector_converges_after_1000_creates() {
    let env = KubeEnv::new("reflector").await;
    let api: Api<ConfigMap> = env.api();
    let (reader, writer) = reflector::store();
    // The reflector mirrors the test's own ConfigMaps, not the cluster's.
    let config = watcher::Config::default().labels(&ours_and(&env, "batch=r"));
    let rf = reflector(writer, watcher(api.clone(), config)).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(rf);
        while rf.try_next().await.is_ok() {}
    });
    reader.wait_until_ready().await.unwrap();
    let labels = ours(&env, json!({ "batch": "r" }));
    let creates = futures::stream::iter(0..1000).map(|i| {
        let api = api.clone();
        let o = cm(&format!("r-{i:04}"), labels.clone());
        async move { api.create(&PostParams::default(), &o).await.map(|_| ()) }
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
    names.dedup();
    assert_eq!(names.len(), 1000);
    assert_eq!(names.first().map(String::as_str), Some("r-0000"));
    assert_eq!(names.last().map(String::as_str), Some("r-0999"));
    task.abort();
    env.cleanup().await;
}
