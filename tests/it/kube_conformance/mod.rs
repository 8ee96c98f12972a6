//! Conformance of the test API server, driven by the real `kube` client.
//! The same tests run against a real cluster when CLUSTERCTL_TEST_KUBECONFIG
//! is set; checks that only make sense on the test server (the request log)
//! are guarded by `env.local()`.
//!
//! The tests assert what the API promises, not what one server happens to
//! do. A namespace is not empty when created: kube-controller-manager puts a
//! `kube-root-ca.crt` ConfigMap into every new one (the test server does
//! too), and other controllers may add more. So tests select their own
//! objects by [`RUN_LABEL`], ignore events about objects they did not
//! create, and retry read-modify-write cycles on conflict, as real clients
//! do.

mod basics;
mod deletion;
mod evictions;
mod selectors;
mod watches;
mod writes;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::kube_env::KubeEnv;

/// The label on the objects a test selects by, valued with the test's
/// namespace: objects the cluster's controllers create do not carry it.
const RUN_LABEL: &str = "clusterctl.io/test-run";

/// `labels` (a JSON object) plus this test's [`RUN_LABEL`].
fn ours(env: &KubeEnv, mut labels: Value) -> Value {
    labels[RUN_LABEL] = Value::String(env.ns.clone());
    labels
}

/// A label selector for this test's objects that also meet `sel` (if any).
fn ours_and(env: &KubeEnv, sel: &str) -> String {
    let run = format!("{RUN_LABEL}={}", env.ns);
    if sel.is_empty() {
        run
    } else {
        format!("{run},{sel}")
    }
}

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

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// ConfigMaps for the selector tests, all carrying [`RUN_LABEL`]; `bare-1`
/// has no other label, so negative selectors (`!=`, `notin`, `!key`) have
/// an object of the test's own that lacks the key.
async fn seed_labelled(env: &KubeEnv) {
    let api: Api<ConfigMap> = env.api();
    for (name, labels) in [
        ("web-1", json!({ "app": "web", "tier": "frontend" })),
        (
            "web-2",
            json!({ "app": "web", "tier": "frontend", "canary": "true" }),
        ),
        ("api-1", json!({ "app": "api", "tier": "backend" })),
        ("db-1", json!({ "app": "db" })),
        ("bare-1", json!({})),
    ] {
        api.create(&PostParams::default(), &cm(name, ours(env, labels)))
            .await
            .unwrap();
    }
}

/// The names of this test's ConfigMaps that `sel` selects.
async fn select(env: &KubeEnv, sel: &str) -> BTreeSet<String> {
    let api: Api<ConfigMap> = env.api();
    names(
        &api.list(&ListParams::default().labels(&ours_and(env, sel)))
            .await
            .unwrap()
            .items,
    )
}
