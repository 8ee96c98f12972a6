//! Deletion: finalizers, namespaces, garbage collection (background,
//! foreground, orphan), preconditions and collections.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{cm, ours_and, pod, seed_labelled, select, set};
use crate::kube_env::{KubeEnv, api_error, eventually};

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
    // Not on a node, so nothing waits for a kubelet to finish it.
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    nss.delete(&child, &DeleteParams::default()).await.unwrap();
    eventually("the namespace and its content are gone", || async {
        nss.get_opt(&child).await.unwrap().is_none()
    })
    .await;
    // Everything goes, the cluster's own objects (kube-root-ca.crt) too.
    let mut left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| format!("configmap/{}", c.name_any()))
        .collect();
    left.extend(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| format!("pod/{}", p.name_any())),
    );
    assert!(left.is_empty(), "{left:?}");
    env.cleanup().await;
}

/// A dependent of `owner`, optionally held back by a finalizer of the
/// test's own. Its owner reference blocks the owner's deletion, as a
/// controller's does: a foreground deletion waits only for dependents
/// whose reference has `blockOwnerDeletion` (a real garbage collector
/// deletes the owner at once otherwise).
fn owned_cm(name: &str, owner: &ConfigMap, finalizer: bool) -> ConfigMap {
    let mut o = cm(name, json!({}));
    o.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid().unwrap(),
        "blockOwnerDeletion": true,
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
    // `held` keeps a finalizer of ours, so the in-between state lasts until
    // the test lifts it: the garbage collector otherwise finishes within
    // milliseconds.
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
    let o = api
        .get_opt("owner")
        .await
        .unwrap()
        .expect("the owner waits for its blocking dependent");
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
    assert!(
        api.get_opt("held").await.unwrap().is_none(),
        "the dependent went first"
    );
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
    let dep = api.get("dep").await.unwrap();
    assert!(dep.metadata.deletion_timestamp.is_none(), "{dep:?}");
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
    seed_labelled(&env).await;
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&ours_and(&env, "app=web")),
    )
    .await
    .unwrap();
    eventually("web configmaps are gone", || async {
        select(&env, "").await == set(&["api-1", "db-1", "bare-1"])
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_pod_on_a_node_terminates_until_its_kubelet_deletes_it() {
    let env = KubeEnv::new("pod-graceful").await;
    let api: Api<Pod> = env.api();
    let mut p = pod("p", json!({}));
    // No kubelet runs for this node (on a real cluster either).
    p.spec.as_mut().unwrap().node_name = Some(format!("{}-node", env.ns));
    api.create(&PostParams::default(), &p).await.unwrap();
    api.delete("p", &DeleteParams::default().grace_period(30))
        .await
        .unwrap();
    let held = api.get("p").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(30));
    // A second ordinary delete changes nothing; the kubelet's grace-0
    // delete ends it.
    api.delete("p", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("p").await.unwrap().is_some());
    api.delete("p", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("the pod is gone", || async {
        api.get_opt("p").await.unwrap().is_none()
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn new_namespaces_get_the_root_ca_config_map() {
    let env = KubeEnv::new("root-ca").await;
    let api: Api<ConfigMap> = env.api();
    eventually("kube-root-ca.crt is published", || async {
        api.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some_and(|c| c.data.is_some_and(|d| d.contains_key("ca.crt")))
    })
    .await;
    env.cleanup().await;
}
