//! Where Kubernetes-facing tests run: the project's test API server, or a
//! real cluster when CLUSTERCTL_TEST_KUBECONFIG names a kubeconfig. Each
//! test works in a namespace of its own, deleted at the end.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::apiserver::ApiServer;

/// A client and a fresh namespace, on the test server or a real cluster.
pub struct KubeEnv {
    /// The client.
    pub client: Client,
    /// The test's namespace.
    pub ns: String,
    /// The test server, when not on a real cluster.
    pub server: Option<ApiServer>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl KubeEnv {
    /// Connects and creates the namespace `ct-<name>-<suffix>`.
    pub async fn new(name: &str) -> KubeEnv {
        let (client, server) = match std::env::var_os("CLUSTERCTL_TEST_KUBECONFIG") {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(&path)
                    .expect("read CLUSTERCTL_TEST_KUBECONFIG");
                let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .expect("kubeconfig");
                // As on the test server: see 429s (PDB refusals) at once.
                config.default_retry = false;
                (Client::try_from(config).expect("client"), None)
            }
            None => {
                let s = ApiServer::start().await;
                (s.client(), Some(s))
            }
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut short: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        short.make_ascii_lowercase();
        let ns = format!("ct-{short}-{:x}{n}", nanos % 0xfffff);
        let nsobj: Namespace = serde_json::from_value(json!({
            "metadata": { "name": ns, "labels": { "clusterctl.io/test": "conformance" } }
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &nsobj)
            .await
            .expect("create test namespace");
        KubeEnv { client, ns, server }
    }

    /// A namespaced API in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Whether this runs against the test server (for server-only checks).
    pub fn local(&self) -> Option<&ApiServer> {
        self.server.as_ref()
    }

    /// A `kube::Config` for this environment's cluster (to start a
    /// component on it).
    pub async fn config(&self) -> kube::Config {
        match &self.server {
            Some(s) => s.config(),
            None => {
                let path = std::env::var_os("CLUSTERCTL_TEST_KUBECONFIG").expect("kubeconfig");
                let kc = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .expect("kubeconfig")
            }
        }
    }

    /// The text of a kubeconfig for this environment's cluster (for
    /// subprocesses).
    pub fn kubeconfig_text(&self) -> String {
        match (&self.server, std::env::var_os("CLUSTERCTL_TEST_KUBECONFIG")) {
            (Some(s), _) => s.kubeconfig(),
            (None, Some(path)) => std::fs::read_to_string(path).expect("read kubeconfig"),
            (None, None) => unreachable!("a KubeEnv has a server or a kubeconfig"),
        }
    }

    /// A client that calls as `component` does (its User-Agent), so the
    /// test server checks its calls against the component's RBAC.
    pub async fn component_client(&self, component: &str) -> Client {
        clusterctl::controllers::runtime::client::clients(self.config().await, component)
            .expect("component client")
            .client
    }

    /// Deletes the namespace.
    pub async fn cleanup(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.ns, &DeleteParams::default())
            .await;
    }
}

/// Polls `check` until it returns true, for up to 30 s (the real server's
/// controllers act asynchronously).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The API error of a result, or a panic.
pub fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
