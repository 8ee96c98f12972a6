//! The eviction subresource and PodDisruptionBudgets. The pods are on no
//! node, so an allowed eviction deletes them at once; a pod on a node would
//! only be marked terminating until its kubelet finished it, which the
//! checks accept too.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, PostParams};
use serde_json::json;

use super::{pod, set_running};
use crate::kube_env::{KubeEnv, api_error, eventually};

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
