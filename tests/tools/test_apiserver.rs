//! The project's test Kubernetes API server on its own, for people and
//! benchmarks: it writes a kubeconfig and serves until killed.
//!
//! ```sh
//! cargo run --example test-apiserver -- /tmp/test-apiserver.kubeconfig
//! kubectl --kubeconfig /tmp/test-apiserver.kubeconfig get ns
//! ```
//!
//! The first line on stdout is the server's URL, once it listens.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../it/apiserver/mod.rs"]
mod apiserver;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "test-apiserver.kubeconfig".into());
    let server = apiserver::ApiServer::start().await;
    std::fs::write(&path, server.kubeconfig()).expect("write the kubeconfig");
    println!("http://{}", server.addr());
    eprintln!(
        "test API server at http://{}; kubeconfig in {path}; SIGINT or SIGTERM stops it",
        server.addr()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
