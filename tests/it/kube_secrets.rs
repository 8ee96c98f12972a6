//! Conformance of the test API server for Secrets, as bootstrap-token
//! rotation uses them; the same tests run against a real cluster when
//! CLUSTERCTL_TEST_KUBECONFIG is set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kube_env::KubeEnv;

fn text(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8(b.0.clone()).unwrap())
}

#[tokio::test]
async fn string_data_is_folded_into_data_on_every_write() {
    let env = KubeEnv::new("secret-stringdata").await;
    let api = env.api::<Secret>();
    let s: Secret = serde_json::from_value(json!({
        "metadata": { "name": "s" },
        "type": "Opaque",
        "data": { "kept": "a2VwdA==" },
        "stringData": { "plain": "hello" },
    }))
    .unwrap();
    let made = api.create(&PostParams::default(), &s).await.unwrap();
    assert!(made.string_data.is_none(), "{made:?}");
    assert_eq!(text(&made, "plain").as_deref(), Some("hello"));
    assert_eq!(text(&made, "kept").as_deref(), Some("kept"));
    let got = api.get("s").await.unwrap();
    assert!(got.string_data.is_none());
    assert_eq!(text(&got, "plain").as_deref(), Some("hello"));

    // A patch's stringData wins over data and lands in data too.
    let patched = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "plain": "again" } })),
        )
        .await
        .unwrap();
    assert!(patched.string_data.is_none());
    assert_eq!(text(&patched, "plain").as_deref(), Some("again"));
    assert_eq!(text(&patched, "kept").as_deref(), Some("kept"));
    env.cleanup().await;
}

#[tokio::test]
async fn secrets_are_selected_by_type() {
    let env = KubeEnv::new("secret-type").await;
    let api = env.api::<Secret>();
    for (name, ty) in [
        ("bootstrap-token-abcdef", "bootstrap.kubernetes.io/token"),
        ("plain", "Opaque"),
    ] {
        let s = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            type_: Some(ty.into()),
            string_data: Some(BTreeMap::from([
                ("token-id".to_string(), "abcdef".to_string()),
                ("token-secret".to_string(), "0123456789abcdef".to_string()),
            ])),
            ..Default::default()
        };
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    let tokens = api
        .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await
        .unwrap();
    let names: Vec<_> = tokens
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["bootstrap-token-abcdef"]);
    env.cleanup().await;
}

#[tokio::test]
async fn rbac_names_may_hold_colons() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
    let env = KubeEnv::new("rbac-names").await;
    let role: Role =
        serde_json::from_value(json!({ "metadata": { "name": "system:test-role" } })).unwrap();
    env.api::<Role>()
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    // Cluster-scoped: named after the namespace, and removed again.
    let name = format!("clusterctl-test:{}", env.ns);
    let cr: ClusterRole = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    let api = kube::Api::<ClusterRole>::all(env.client.clone());
    api.create(&PostParams::default(), &cr).await.unwrap();
    assert_eq!(
        api.get(&name).await.unwrap().metadata.name.as_deref(),
        Some(name.as_str())
    );
    api.delete(&name, &Default::default()).await.unwrap();
    // Other kinds keep DNS-1123 names.
    let bad: Secret = serde_json::from_value(json!({ "metadata": { "name": "a:b" } })).unwrap();
    let err = crate::kube_env::api_error(
        env.api::<Secret>()
            .create(&PostParams::default(), &bad)
            .await,
    );
    assert_eq!(err.code, 422);
    env.cleanup().await;
}
