//! Discovery, create and read: metadata the server sets, names, and the
//! Status errors of refused requests; cluster-scoped Nodes.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use serde_json::json;

use super::{cm, names, set};
use crate::kube_env::{KubeEnv, api_error};

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
