//! Checks that only make sense on the project's test API server: the
//! request log, seeding from fixtures, and pagination at scale.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::apiserver::ApiServer;

#[tokio::test]
async fn listing_10000_pods_with_limit_500_takes_20_calls() {
    let server = ApiServer::start().await;
    for i in 0..10_000 {
        server.seed(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("pod-{i:05}"), "namespace": "default", "labels": { "app": "bulk" } },
            "spec": { "containers": [{ "name": "c", "image": "pause" }] },
            "status": { "phase": "Running" },
        })).unwrap();
    }
    server.clear_requests();
    let api: Api<Pod> = Api::namespaced(server.client(), "default");
    let mut total = 0;
    let mut pages = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        total += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!((pages, total), (20, 10_000));
    let log = server.requests();
    assert_eq!(
        log.len(),
        20,
        "{:?}",
        log.iter().take(3).collect::<Vec<_>>()
    );
    assert!(log.iter().all(|r| r.method == "GET"
        && r.path == "/api/v1/namespaces/default/pods"
        && r.query.contains("limit=500")));
    assert_eq!(
        log.iter().filter(|r| r.query.contains("continue=")).count(),
        19
    );
}

#[tokio::test]
async fn request_log_records_method_path_and_query() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let _ = api.get_opt("x").await.unwrap();
    let _ = api
        .list(&ListParams::default().labels("a=b"))
        .await
        .unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("GET", "/api/v1/namespaces/default/configmaps/x")
    );
    assert!(
        log[1].query.contains("labelSelector=a%3Db"),
        "{}",
        log[1].query
    );
}

#[tokio::test]
async fn seeds_objects_from_yaml_fixtures() {
    let server = ApiServer::start().await;
    let seeded = server
        .seed_yaml(include_str!("../fixtures/kube/seed.yaml"))
        .unwrap();
    assert_eq!(seeded.len(), 4);
    let pods: Api<Pod> = Api::namespaced(server.client(), "shop");
    let running = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 2, "seeded status is kept");
    assert!(
        server.requests().iter().all(|r| r.method == "GET"),
        "seeding makes no requests"
    );
}

#[tokio::test]
async fn stale_watch_gets_410_gone() {
    let server = ApiServer::start().await;
    {
        let mut store = server_store(&server);
        store.compacted = 1_000;
    }
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = Box::pin(
        api.watch(&kube::api::WatchParams::default().timeout(5), "5")
            .await
            .unwrap(),
    );
    use futures::TryStreamExt;
    match stream.try_next().await.unwrap() {
        Some(kube::api::WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

fn server_store(server: &ApiServer) -> std::sync::MutexGuard<'_, crate::apiserver::store::Store> {
    server.store()
}

/// A component's call that its addon's RBAC does not allow is answered 403,
/// as a real API server would answer it, and is kept as a violation (which
/// fails the test when the server is dropped); allowed calls go through.
#[tokio::test]
async fn a_component_call_its_rbac_does_not_allow_is_refused_and_remembered() {
    let server = ApiServer::start().await;
    let config = server.config();
    let janitor = clusterctl::controllers::runtime::client::clients(config, "janitor")
        .unwrap()
        .client;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(janitor.clone(), "default");
    jobs.list(&ListParams::default()).await.unwrap();
    let err = jobs
        .patch(
            "x",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message
                    .contains("janitor may not patch jobs (batch) x in default"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    let violations = server.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    // The test's own client (no component) is not checked.
    Api::<k8s_openapi::api::batch::v1::Job>::namespaced(server.client(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(server.take_violations().is_empty());
}
