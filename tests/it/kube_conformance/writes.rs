//! Writes: optimistic concurrency, generation, the patch flavours and
//! server-side apply, the status and scale subresources, and Leases.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{cm, pod, set_running};
use crate::kube_env::{KubeEnv, api_error};

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

/// The applying managers are listed in managedFields (operation Apply); an
/// object only created is not applied by anyone, and a no-op apply writes
/// nothing. Addon pruning relies on this to delete only what it applied.
#[tokio::test]
async fn server_side_apply_records_its_manager_and_a_noop_apply_writes_nothing() {
    let env = KubeEnv::new("ssa-managers").await;
    let api: Api<ConfigMap> = env.api();
    let appliers = |o: &ConfigMap| -> Vec<String> {
        o.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|e| e.operation.as_deref() == Some("Apply"))
            .filter_map(|e| e.manager.clone())
            .collect()
    };
    let doc = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "a": "1" } });
    let pp = PatchParams::apply("clusterctl-conformance").force();
    let applied = api
        .patch("applied", &pp, &Patch::Apply(&doc))
        .await
        .unwrap();
    assert_eq!(appliers(&applied), ["clusterctl-conformance"]);
    let again = api
        .patch("applied", &pp, &Patch::Apply(&doc))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );
    assert_eq!(appliers(&again), ["clusterctl-conformance"]);
    let created = api
        .create(&PostParams::default(), &cm("created", json!({})))
        .await
        .unwrap();
    assert!(
        appliers(&created).is_empty(),
        "{:?}",
        created.metadata.managed_fields
    );
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

/// A Deployment whose pods no scheduler will place.
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
    // Read, modify, write, as a client does: the Deployment controller
    // writes status right after creation, which moves the resourceVersion
    // the Scale carries, so a 409 means read again and retry.
    let mut conflicts = 0;
    let after = loop {
        s.spec.as_mut().unwrap().replicas = Some(3);
        match api.replace_scale("web", &PostParams::default(), &s).await {
            Ok(after) => break after,
            Err(kube::Error::Api(e)) if e.code == 409 && conflicts < 10 => {
                conflicts += 1;
                s = api.get_scale("web").await.unwrap();
            }
            Err(e) => panic!("replacing the scale: {e:?}"),
        }
    };
    assert_eq!(after.spec.unwrap().replicas, Some(3));
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    // `s` holds the resourceVersion this write replaced: a stale Scale is
    // refused like any stale write.
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
