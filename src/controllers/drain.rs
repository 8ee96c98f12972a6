//! Draining a node: cordon it, evict its pods through the Eviction API (so
//! PodDisruptionBudgets hold), and wait until they are gone. A refusal
//! (429) is not retried blindly: the pod is tried again only after a pause,
//! and the drain gives up at its timeout, naming what was left. The node
//! autoscaler uses it now; rolling updates will.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, EvictParams, Patch, PatchParams};

/// Drain settings.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Pause before asking again after a refusal, and between checks.
    pub poll: Duration,
}

impl Default for DrainOptions {
    fn default() -> DrainOptions {
        DrainOptions {
            timeout: Duration::from_secs(600),
            poll: Duration::from_secs(5),
        }
    }
}

/// Why a drain did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The API failed.
    #[error("{what}")]
    Api {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Pods were still there at the timeout.
    #[error("the drain of {node} timed out after {timeout:?}; left: {left}")]
    Timeout {
        /// The node.
        node: String,
        /// The timeout.
        timeout: Duration,
        /// The pods left, and the last refusal of each.
        left: String,
    },
}

fn api(what: String) -> impl FnOnce(kube::Error) -> DrainError {
    move |source| DrainError::Api { what, source }
}

/// Marks a node unschedulable (or schedulable again).
pub async fn set_unschedulable(
    client: &kube::Client,
    node: &str,
    on: bool,
) -> Result<(), DrainError> {
    let patch = serde_json::json!({ "spec": { "unschedulable": on } });
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(api(format!("cordoning {node}")))
}

/// Cordons `node`, evicts `pods` (namespace, name) with `client` (one that
/// does not retry 429s), and waits until they are gone.
pub async fn drain(
    client: &kube::Client,
    node: &str,
    pods: &[(String, String)],
    opts: &DrainOptions,
) -> Result<(), DrainError> {
    set_unschedulable(client, node, true).await?;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut left: Vec<(String, String, String)> = pods
        .iter()
        .map(|(ns, n)| (ns.clone(), n.clone(), String::new()))
        .collect();
    let mut evicted: Vec<(String, String)> = Vec::new();
    loop {
        let mut still = Vec::new();
        for (ns, name, _) in left {
            let api = Api::<Pod>::namespaced(client.clone(), &ns);
            match api.evict(&name, &EvictParams::default()).await {
                Ok(_) => evicted.push((ns, name)),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(kube::Error::Api(s)) if s.code == 429 => {
                    tracing::info!(node, pod = %name, reason = %s.message, "eviction refused; will ask again");
                    still.push((ns, name, s.message.clone()));
                }
                Err(e) => return Err(api_err(&ns, &name, e)),
            }
        }
        // Wait for the evicted pods to go (their kubelet ends them).
        let mut gone_all = true;
        for (ns, name) in &evicted {
            let api = Api::<Pod>::namespaced(client.clone(), ns);
            let pod = api.get_opt(name).await.map_err(api_err_fn(ns, name))?;
            if pod.is_some_and(|p| p.spec.and_then(|s| s.node_name).as_deref() == Some(node)) {
                gone_all = false;
            }
        }
        if still.is_empty() && gone_all {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let mut names: Vec<String> = still
                .iter()
                .map(|(ns, n, why)| format!("{ns}/{n} ({why})"))
                .collect();
            if !gone_all {
                names.push("evicted pods still terminating".into());
            }
            return Err(DrainError::Timeout {
                node: node.to_string(),
                timeout: opts.timeout,
                left: names.join(", "),
            });
        }
        left = still;
        tokio::time::sleep(opts.poll).await;
    }
}

fn api_err(ns: &str, name: &str, e: kube::Error) -> DrainError {
    DrainError::Api {
        what: format!("evicting {ns}/{name}"),
        source: e,
    }
}

fn api_err_fn<'a>(ns: &'a str, name: &'a str) -> impl FnOnce(kube::Error) -> DrainError + 'a {
    move |e| DrainError::Api {
        what: format!("reading {ns}/{name}"),
        source: e,
    }
}
