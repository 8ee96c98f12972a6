//! The one way a component gets its Kubernetes clients.

use std::path::Path;
use std::time::Duration;

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No configuration was found or it does not load.
    #[error("{0}")]
    Config(String),
    /// The client could not be built.
    #[error("building the Kubernetes client")]
    Build(#[source] kube::Error),
}

/// The clients of a component.
#[derive(Clone)]
pub struct Clients {
    /// Reads, watches and writes; retries 429/503/504 as kube does.
    pub client: kube::Client,
    /// For requests whose 429 means something (an eviction a
    /// PodDisruptionBudget refuses): never retried.
    pub no_retry: kube::Client,
}

/// The configuration: `kubeconfig` when given, else `$KUBECONFIG` or
/// `~/.kube/config`, else the in-cluster service account.
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config, ClientError> {
    match kubeconfig {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ClientError::Config(format!(
                    "cannot read kubeconfig {}: {}",
                    path.display(),
                    crate::io_reason(&e)
                ))
            })?;
            let kc = kube::config::Kubeconfig::from_yaml(&text)
                .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
        }
        None => kube::Config::infer().await.map_err(|e| {
            ClientError::Config(format!(
                "no Kubernetes configuration (--kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster): {e}"
            ))
        }),
    }
}

/// Clients for `component` from `config`, with a user agent
/// `clusterctl/<version> (<component>)` and request timeouts.
pub fn clients(mut config: kube::Config, component: &str) -> Result<Clients, ClientError> {
    let agent = format!("clusterctl/{} ({component})", env!("CARGO_PKG_VERSION"));
    if let Ok(v) = http::HeaderValue::from_str(&agent) {
        config.headers.push((http::header::USER_AGENT, v));
    }
    config.connect_timeout = Some(Duration::from_secs(10));
    // Watches hold a request open for up to 5 minutes (kube's default
    // watch timeout is 290 s); reads longer than that are stuck.
    config.read_timeout = Some(Duration::from_secs(295));
    config.write_timeout = Some(Duration::from_secs(30));
    let mut strict = config.clone();
    strict.default_retry = false;
    Ok(Clients {
        client: kube::Client::try_from(config).map_err(ClientError::Build)?,
        no_retry: kube::Client::try_from(strict).map_err(ClientError::Build)?,
    })
}
