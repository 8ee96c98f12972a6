//! The exact depth of a queue by AMQP, for when the management API has not
//! counted it yet (it lags the broker by seconds and omits the counts of a
//! new queue). A passive `queue.declare` answers with the queue's ready
//! messages and consumers, from the broker itself; it never creates a
//! queue. One connection per server and vhost, opened when first needed,
//! kept, and opened again after a failure; one short-lived channel per
//! declare (the broker closes the channel when the queue does not exist).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::QueueDeclareArguments;
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::tls::TlsAdaptor;
use tokio::sync::Mutex;

use super::source::{Server, SourceError};

/// AMQP connections by (server, vhost).
#[derive(Clone)]
pub struct Amqp {
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    connections: Arc<Mutex<HashMap<(String, String), Connection>>>,
}

impl Amqp {
    /// No connection yet.
    pub fn new(timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Amqp {
        Amqp {
            timeout,
            tls,
            connections: Default::default(),
        }
    }

    fn endpoint(server: &Server) -> Result<(bool, String, u16), String> {
        let uri: http::Uri = server
            .amqp
            .parse()
            .map_err(|e| format!("AMQP URL {}: {e}", server.amqp))?;
        let tls = match uri.scheme_str() {
            Some("amqp") => false,
            Some("amqps") => true,
            _ => return Err(format!("AMQP URL {}: not amqp:// or amqps://", server.amqp)),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("AMQP URL {}: no host", server.amqp))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 5671 } else { 5672 });
        Ok((tls, host, port))
    }

    async fn open(&self, server: &Server, vhost: &str) -> Result<Connection, String> {
        let (tls, host, port) = Amqp::endpoint(server)?;
        let mut args = OpenConnectionArguments::new(&host, port, server.user(), server.password());
        args.virtual_host(vhost)
            .connection_name("clusterctl-queue-autoscaler")
            .heartbeat(30);
        if tls {
            args.tls_adaptor(TlsAdaptor::new(
                tokio_rustls::TlsConnector::from(self.tls.clone()),
                host.clone(),
            ));
        }
        let conn = tokio::time::timeout(self.timeout, Connection::open(&args))
            .await
            .map_err(|_| format!("no AMQP answer within {:?}", self.timeout))?
            .map_err(|e| redact(&e.to_string(), server))?;
        Ok(conn)
    }

    /// The ready count and consumers of `queue` in `vhost` on `server`;
    /// `None` when the queue does not exist.
    pub async fn depth(
        &self,
        server: &Server,
        vhost: &str,
        queue: &str,
    ) -> Result<Option<(f64, f64)>, SourceError> {
        let err = |message: String| SourceError {
            server: server.name.clone(),
            path: format!("{} (AMQP, vhost {vhost})", server.amqp),
            message,
        };
        let key = (server.name.clone(), vhost.to_string());
        let mut conns = self.connections.lock().await;
        let conn = match conns.get(&key) {
            Some(c) if c.is_open() => c.clone(),
            _ => {
                conns.remove(&key);
                let c = self.open(server, vhost).await.map_err(err)?;
                conns.insert(key.clone(), c.clone());
                c
            }
        };
        drop(conns);
        let answer = tokio::time::timeout(self.timeout, async {
            let channel = conn.open_channel(None).await?;
            let got = channel
                .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
                .await;
            // The broker has closed the channel when the queue is missing.
            let _ = channel.close().await;
            got
        })
        .await;
        match answer {
            Err(_) => {
                self.connections.lock().await.remove(&key);
                Err(err(format!("no AMQP answer within {:?}", self.timeout)))
            }
            Ok(Ok(Some((_, ready, consumers)))) => {
                Ok(Some((f64::from(ready), f64::from(consumers))))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => {
                let text = e.to_string();
                if text.contains("NOT_FOUND") || text.contains("404") {
                    return Ok(None);
                }
                if !conn.is_open() {
                    self.connections.lock().await.remove(&key);
                }
                Err(err(redact(&text, server)))
            }
        }
    }
}

/// An AMQP library error, without the password should it ever hold it.
fn redact(text: &str, server: &Server) -> String {
    if server.password().is_empty() {
        text.to_string()
    } else {
        text.replace(server.password(), "<redacted>")
    }
}
