//! Label and field selectors on lists, and pagination. Every selection is
//! narrowed to the test's own objects ([`super::RUN_LABEL`]): a `!=`,
//! `notin` or `!key` selector rightly matches objects the cluster put into
//! the namespace (`kube-root-ca.crt`), which lack the key.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{cm, names, ours, ours_and, pod, seed_labelled, select, set, set_running};
use crate::kube_env::KubeEnv;

#[tokio::test]
async fn label_selector_equality() {
    let env = KubeEnv::new("label-eq").await;
    seed_labelled(&env).await;
    assert_eq!(select(&env, "app=web").await, set(&["web-1", "web-2"]));
    assert_eq!(select(&env, "app==api").await, set(&["api-1"]));
    assert_eq!(
        select(&env, "app=web,tier=frontend").await,
        set(&["web-1", "web-2"])
    );
    // `!=` also matches objects without the label.
    assert_eq!(
        select(&env, "app!=web").await,
        set(&["api-1", "db-1", "bare-1"])
    );
    env.cleanup().await;
}

#[tokio::test]
async fn label_selector_set_based() {
    let env = KubeEnv::new("label-set").await;
    seed_labelled(&env).await;
    assert_eq!(
        select(&env, "app in (web,db)").await,
        set(&["web-1", "web-2", "db-1"])
    );
    // `notin` also matches objects without the label.
    assert_eq!(
        select(&env, "tier notin (frontend)").await,
        set(&["api-1", "db-1", "bare-1"])
    );
    env.cleanup().await;
}

#[tokio::test]
async fn label_selector_exists_and_not() {
    let env = KubeEnv::new("label-exists").await;
    seed_labelled(&env).await;
    assert_eq!(select(&env, "canary").await, set(&["web-2"]));
    assert_eq!(select(&env, "!tier").await, set(&["db-1", "bare-1"]));
    assert_eq!(select(&env, "app=web,!canary").await, set(&["web-1"]));
    env.cleanup().await;
}

#[tokio::test]
async fn field_selector_name_and_namespace() {
    let env = KubeEnv::new("field-name").await;
    let api: Api<ConfigMap> = env.api();
    seed_labelled(&env).await;
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
                .labels(&ours_and(&env, "app")),
        )
        .await
        .unwrap();
    assert_eq!(names(&got.items), set(&["web-1", "web-2", "api-1", "db-1"]));
    let got = api
        .list(
            &ListParams::default()
                .fields("metadata.name!=api-1")
                .labels(&ours_and(&env, "")),
        )
        .await
        .unwrap();
    assert_eq!(
        names(&got.items),
        set(&["web-1", "web-2", "db-1", "bare-1"])
    );
    env.cleanup().await;
}

#[tokio::test]
async fn field_selector_pod_phase_and_node() {
    let env = KubeEnv::new("field-pod").await;
    let api: Api<Pod> = env.api();
    for n in ["p1", "p2", "p3"] {
        api.create(&PostParams::default(), &pod(n, ours(&env, json!({}))))
            .await
            .unwrap();
    }
    set_running(&api, "p1", true).await;
    let mine = ours_and(&env, "");
    let ours_with = |fields: &str| ListParams::default().labels(&mine).fields(fields);
    let running = api.list(&ours_with("status.phase=Running")).await.unwrap();
    assert_eq!(names(&running.items), set(&["p1"]));
    let pending = api.list(&ours_with("status.phase!=Running")).await.unwrap();
    assert_eq!(names(&pending.items), set(&["p2", "p3"]));
    let unbound = api.list(&ours_with("spec.nodeName=")).await.unwrap();
    assert_eq!(
        names(&unbound.items),
        set(&["p1", "p2", "p3"]),
        "no pod is bound to a node"
    );
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
    assert_eq!(seen.len(), 25);
    // A server may return short pages (the API allows it); 25 items in
    // pages of at most 10 take at least 3.
    assert!(pages >= 3, "{pages} pages");
    if env.local().is_some() {
        assert_eq!(pages, 3, "the test server fills every page");
    }
    env.cleanup().await;
}
