//! The management API client: one pooled keep-alive HTTP client for all
//! servers, one request per server and vhost per poll, with a timeout.
//! Credentials are read once (files of a mounted Secret, or environment
//! variables) and never appear in logs, errors or Events: errors name the
//! server, the path and the HTTP status only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::stats::{QueueStats, parse_queues, queues_path};

/// One configured RabbitMQ server.
#[derive(Clone)]
pub struct Server {
    /// Its name (the `server` annotation).
    pub name: String,
    /// Base URL of the management API, e.g. `http://rabbitmq:15672`.
    pub url: String,
    authorization: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with a user and password.
    pub fn new(name: &str, url: &str, user: &str, password: &str) -> Server {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Server {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            authorization: format!("Basic {token}"),
        }
    }

    /// Credentials from `<dir>/<name>/username` and `.../password` (a
    /// mounted Secret), else `CLUSTERCTL_RABBITMQ_USERNAME` and
    /// `CLUSTERCTL_RABBITMQ_PASSWORD`.
    pub fn with_credentials(name: &str, url: &str, dir: Option<&Path>) -> Result<Server, String> {
        let from_file = |f: &str| {
            dir.and_then(|d| std::fs::read_to_string(d.join(name).join(f)).ok())
                .map(|s| s.trim().to_string())
        };
        let user = from_file("username")
            .or_else(|| std::env::var("CLUSTERCTL_RABBITMQ_USERNAME").ok())
            .ok_or_else(|| format!("no username for RabbitMQ server {name}"))?;
        let password = from_file("password")
            .or_else(|| std::env::var("CLUSTERCTL_RABBITMQ_PASSWORD").ok())
            .ok_or_else(|| format!("no password for RabbitMQ server {name}"))?;
        Ok(Server::new(name, url, &user, &password))
    }
}

/// Why a poll failed (never with credentials).
#[derive(Debug, Clone, thiserror::Error)]
#[error("RabbitMQ server {server}: GET {path}: {message}")]
pub struct SourceError {
    /// The server's name.
    pub server: String,
    /// The path asked.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The pooled client.
#[derive(Clone)]
pub struct Source {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    /// Requests made so far (for the metric and the tests).
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Source {
    /// A client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Source {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Source {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector),
            timeout,
            requests: Default::default(),
        }
    }

    /// The queues of `vhost` on `server`.
    pub async fn queues(
        &self,
        server: &Server,
        vhost: &str,
    ) -> Result<Vec<QueueStats>, SourceError> {
        let path = queues_path(vhost);
        let err = |message: String| SourceError {
            server: server.name.clone(),
            path: path.split('?').next().unwrap_or_default().to_string(),
            message,
        };
        let req = hyper::Request::get(format!("{}{path}", server.url))
            .header(hyper::header::AUTHORIZATION, &server.authorization)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| err(e.to_string()))?;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| err(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| err(format!("unreachable ({e})")))?;
        let status = resp.status();
        if status == hyper::StatusCode::UNAUTHORIZED {
            return Err(err("401: the credentials were refused".into()));
        }
        if !status.is_success() {
            return Err(err(format!("HTTP {status}")));
        }
        let body = tokio::time::timeout(self.timeout, resp.into_body().collect())
            .await
            .map_err(|_| err("the answer did not finish in time".into()))?
            .map_err(|e| err(e.to_string()))?
            .to_bytes();
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| err(format!("not JSON: {e}")))?;
        Ok(parse_queues(&json))
    }
}

/// Servers by name.
pub type Servers = BTreeMap<String, Server>;
