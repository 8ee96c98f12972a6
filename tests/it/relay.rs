//! A TCP relay on loopback for the RabbitMQ tests: it forwards to an
//! upstream port, optionally from a source address of its own (so the
//! broker sees a consumer at 127.0.0.2), and counts the HTTP requests that
//! pass through (their request lines), for "one request per vhost".

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

/// A running relay; it stops when dropped.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The request lines seen so far (`GET /api/queues/a?...`).
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Relays 127.0.0.1:<new port> to `upstream`, connecting from `source`
    /// when given.
    pub async fn start(upstream: SocketAddr, source: Option<IpAddr>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                conns.spawn(async move {
                    let socket = TcpSocket::new_v4().unwrap();
                    if let Some(ip) = source {
                        socket.bind(SocketAddr::new(ip, 0)).unwrap();
                    }
                    let Ok(server) = socket.connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    });
                    // Client to server, noting request lines on the way.
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut line = Vec::new();
                    let mut at_line_start = true;
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        for &b in &buf[..n] {
                            if at_line_start || !line.is_empty() {
                                line.push(b);
                            }
                            at_line_start = b == b'\n';
                            if b == b'\n' {
                                let text = String::from_utf8_lossy(&line).trim().to_string();
                                if text.starts_with("GET /") || text.starts_with("POST /") {
                                    seen.lock().unwrap().push(text);
                                }
                                line.clear();
                            } else if line.len() > 4096 {
                                line.clear();
                            }
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                    let _ = down.await;
                });
            }
        });
        Relay {
            addr,
            requests,
            task,
        }
    }

    /// Request lines so far whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.split(' ').nth(1).is_some_and(|p| p.starts_with(prefix)))
            .count()
    }
}
