//! A Kubernetes API server for the tests: real HTTP on 127.0.0.1, an
//! in-memory, stateful store with the semantics controllers rely on, and a
//! request log. It is not a mock per test: it keeps objects and answers as
//! the real server does, so the real `kube` client is exercised end to end.
//!
//! Approximations (the real server is right where they differ):
//! - strategic merge patch is applied as a JSON merge patch;
//! - server-side apply creates the object or JSON-merges the applied
//!   configuration into it, without field ownership or conflicts;
//! - pagination continues from the last key, over the current state rather
//!   than a snapshot at the first page's resourceVersion;
//! - deletion is immediate (no graceful termination of pods); garbage
//!   collection and namespace termination run synchronously after each change;
//! - PodDisruptionBudget allowances are computed at eviction time from the
//!   pods' Ready condition rather than read from the budget's status.

pub mod http;
pub mod rbac;
pub mod selectors;
pub mod store;
pub mod types;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use store::Store;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// The client's User-Agent header (empty when absent): which component
    /// made the call.
    pub user_agent: String,
}

/// State shared by the connections.
pub struct Shared {
    /// Objects and history.
    pub store: Mutex<Store>,
    requests: Mutex<Vec<RequestRecord>>,
    /// How often watches with allowWatchBookmarks get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Lease writes naming this holder are refused (500), as an API server
    /// that cannot be reached by one replica would.
    pub refuse_lease_holder: Mutex<Option<String>>,
    /// Deletes of objects with these names are refused (500): a fault for
    /// "one failed delete does not stop the pass".
    pub refuse_delete_names: Mutex<Vec<String>>,
    /// Component calls its addon's RBAC does not allow (see `rbac`).
    violations: Mutex<Vec<String>>,
}

impl Shared {
    /// `{ "<user agent>": { "<METHOD>": n } }` over the request log: what
    /// the standalone server answers on `/debug/requests` (benchmarks
    /// count a component's calls with it; a real API server has no such
    /// path).
    fn request_counts(&self) -> Value {
        let mut counts: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, u64>,
        > = Default::default();
        for r in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            *counts
                .entry(r.user_agent.clone())
                .or_default()
                .entry(r.method.clone())
                .or_default() += 1;
        }
        serde_json::to_value(counts).unwrap_or_default()
    }

    fn violation(&self, msg: String) {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }

    fn record(&self, method: &str, path: &str, query: &str, user_agent: &str) {
        let r = RequestRecord {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            user_agent: user_agent.to_string(),
        };
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
    }
}

/// A running test API server; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        let violations = self
            .shared
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A component call its RBAC would refuse fails the test that made it.
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "calls the components' RBAC does not allow:\n  {}",
                violations.join("\n  ")
            );
        }
    }
}

impl ApiServer {
    /// Starts a server on an ephemeral port of 127.0.0.1 with the
    /// `default` and `kube-system` namespaces.
    pub async fn start() -> ApiServer {
        Self::start_with(Duration::from_secs(1)).await
    }

    /// Starts a server whose watches send bookmarks every `bookmark_interval`.
    pub async fn start_with(bookmark_interval: Duration) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
            bookmark_interval,
            addr,
            refuse_lease_holder: Mutex::new(None),
            refuse_delete_names: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| http::handle(s.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let server = ApiServer { shared, task };
        server.seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n")
            .expect("seed namespaces");
        server
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A `kube::Config` for this server.
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(format!("http://{}", self.addr()).parse().expect("url"));
        config.default_namespace = "default".into();
        config.read_timeout = Some(Duration::from_secs(300));
        config
    }

    /// A `kube::Client` for this server.
    pub fn client(&self) -> kube::Client {
        let mut config = self.config();
        // kube retries 429s (up to 15 times, minutes in all) by default;
        // an eviction refused by a PodDisruptionBudget must surface at once.
        config.default_retry = false;
        kube::Client::try_from(config).expect("client")
    }

    /// A kubeconfig file's text pointing at this server (for subprocesses).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://{0}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\nusers:\n- name: test\n  user: {{}}\n",
            self.addr()
        )
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refuses (500) every Lease write whose holder is `identity` (None:
    /// accept all again).
    pub fn refuse_lease_writes_of(&self, identity: Option<&str>) {
        *self
            .shared
            .refuse_lease_holder
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = identity.map(str::to_string);
    }

    /// Refuses (500) every delete of an object named `name`.
    pub fn refuse_deletes_of(&self, name: &str) {
        self.shared
            .refuse_delete_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
    }

    /// The component calls refused by their RBAC so far, forgotten (a test
    /// of the check itself takes them, so that dropping the server passes).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .shared
                .violations
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Inserts the objects of a multi-document YAML fixture directly (kept
    /// as given, status included; no requests are logged).
    pub fn seed_yaml(&self, yaml: &str) -> Result<Vec<Value>, String> {
        use serde::Deserialize;
        let mut out = Vec::new();
        for doc in serde_norway::Deserializer::from_str(yaml) {
            let v = serde_norway::Value::deserialize(doc).map_err(|e| e.to_string())?;
            if v.is_null() {
                continue;
            }
            let obj = serde_json::to_value(v).map_err(|e| e.to_string())?;
            out.push(self.seed(obj)?);
        }
        Ok(out)
    }

    /// Inserts one object directly.
    pub fn seed(&self, obj: Value) -> Result<Value, String> {
        self.shared
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seed(obj)
            .map_err(|e| e.message)
    }
}

impl ApiServer {
    /// Direct access to the store (for tests of the server itself).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}
