//! The management API client: one pooled keep-alive HTTP client for all
//! servers, one request per server and vhost per poll, with a timeout.
//! Credentials are read once (files of a mounted Secret, or environment
//! variables) and never appear in logs, errors or Events: errors name the
//! server, the path and the HTTP status only.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use hyper_rustls::HttpsConnector;

use super::amqp::Amqp;
use super::consumers::{Consumer, parse_channels, parse_consumers};
use super::stats::{Queues, encode, parse_queues, queues_path};

/// One configured RabbitMQ server.
#[derive(Clone)]
pub struct Server {
    /// Its name (the `server` annotation).
    pub name: String,
    /// Base URL of the management API, e.g. `http://rabbitmq:15672`.
    pub url: String,
    /// Its AMQP endpoint, `amqp://host:port` or `amqps://…`: by default the
    /// management URL's host on 5672 (5671 for https).
    pub amqp: String,
    user: String,
    password: String,
    authorization: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("amqp", &self.amqp)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with a user and password.
    pub fn new(name: &str, url: &str, user: &str, password: &str) -> Server {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let url = url.trim_end_matches('/').to_string();
        Server {
            name: name.to_string(),
            amqp: default_amqp(&url),
            url,
            user: user.to_string(),
            password: password.to_string(),
            authorization: format!("Basic {token}"),
        }
    }

    /// Another AMQP endpoint than the default.
    pub fn with_amqp(mut self, url: &str) -> Server {
        self.amqp = url.trim_end_matches('/').to_string();
        self
    }

    /// The user (for the AMQP login).
    pub(super) fn user(&self) -> &str {
        &self.user
    }

    /// The password (for the AMQP login; never logged).
    pub(super) fn password(&self) -> &str {
        &self.password
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

/// The AMQP endpoint next to a management URL: same host, 5672 (or
/// amqps on 5671 for an https management URL).
fn default_amqp(management: &str) -> String {
    let tls = management.starts_with("https://");
    let host = management
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    if tls {
        format!("amqps://{host}:5671")
    } else {
        format!("amqp://{host}:5672")
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
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    amqp: Amqp,
    /// Requests made so far (for the metric and the tests).
    pub requests: Arc<std::sync::atomic::AtomicU64>,
}

impl Source {
    /// A client whose requests time out after `timeout`, trusting the
    /// system's CA certificates for https.
    pub fn new(timeout: Duration) -> Source {
        #[allow(clippy::expect_used)]
        Source::with_ca_file(timeout, None).expect("the system roots need no file")
    }

    /// A client that trusts only `ca_file`'s certificates for https and
    /// amqps (or the system's, without one).
    pub fn with_ca_file(timeout: Duration, ca_file: Option<&Path>) -> Result<Source, String> {
        let tls = super::tls::client_config(ca_file)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Source {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector),
            timeout,
            amqp: Amqp::new(timeout, tls.clone()),
            tls,
            requests: Default::default(),
        })
    }

    /// The exact ready count and consumers of a queue, by AMQP (a passive
    /// declare), for a queue the management API has not counted yet.
    pub async fn depth(
        &self,
        server: &Server,
        vhost: &str,
        queue: &str,
    ) -> Result<Option<(f64, f64)>, SourceError> {
        self.amqp.depth(server, vhost, queue).await
    }

    /// The TLS configuration (shared with AMQP).
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The queues of `vhost` on `server`.
    pub async fn queues(&self, server: &Server, vhost: &str) -> Result<Queues, SourceError> {
        let json = self.get(server, &queues_path(vhost)).await?;
        Ok(Queues::from(parse_queues(&json)))
    }

    /// The consumers of `vhost` and the unacked messages of its channels
    /// (two requests, made only before a scale-down).
    pub async fn consumers(
        &self,
        server: &Server,
        vhost: &str,
    ) -> Result<(Vec<Consumer>, BTreeMap<String, Option<f64>>), SourceError> {
        let v = encode(vhost);
        let consumers = self
            .get(
                server,
                &format!("/api/consumers/{v}?columns=queue.name,channel_details.name,channel_details.peer_host"),
            )
            .await?;
        let channels = self
            .get(
                server,
                &format!("/api/vhosts/{v}/channels?columns=name,messages_unacknowledged"),
            )
            .await?;
        Ok((parse_consumers(&consumers), parse_channels(&channels)))
    }

    async fn get(&self, server: &Server, path: &str) -> Result<serde_json::Value, SourceError> {
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
            .map_err(|e| err(format!("unreachable ({})", causes(&e))))?;
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
        serde_json::from_slice(&body).map_err(|e| err(format!("not JSON: {e}")))
    }
}

/// An error and its causes, once each, outermost first.
pub(super) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Servers by name.
pub type Servers = BTreeMap<String, Server>;
