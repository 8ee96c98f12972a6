//! TLS and lag, against a real broker whose management API is served over
//! https (and AMQP over amqps) with certificates of a CA the test makes,
//! and whose statistics are collected once a minute, so the management API
//! has not counted a new queue for up to a minute. The controller trusts
//! the CA file, and reads the new queue's exact depth by AMQP (a passive
//! declare) instead of waiting.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clusterctl::controllers::queue_autoscaler::source::{Server, Source};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::kube_env::{KubeEnv, eventually};
use crate::queue_autoscaler::{deployment, start_with};
use crate::rabbitmq::Broker;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for localhost and 127.0.0.1, as PEM files
/// in `dir`: ca.pem, server.pem, server-key.pem.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "clusterctl test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_queue_the_api_has_not_counted_is_read_by_amqp() {
    let (https, amqps) = (free_port(), free_port());
    let mut certs = std::path::PathBuf::new();
    let Some(broker) = Broker::start_configured(|dir| {
        certificates(dir);
        certs = dir.to_path_buf();
        let d = dir.display();
        format!(
            "collect_statistics_interval = 60000\n\
             management.ssl.ip = 127.0.0.1\n\
             management.ssl.port = {https}\n\
             management.ssl.cacertfile = {d}/ca.pem\n\
             management.ssl.certfile = {d}/server.pem\n\
             management.ssl.keyfile = {d}/server-key.pem\n\
             listeners.ssl.1 = 127.0.0.1:{amqps}\n\
             ssl_options.cacertfile = {d}/ca.pem\n\
             ssl_options.certfile = {d}/server.pem\n\
             ssl_options.keyfile = {d}/server-key.pem\n\
             ssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n"
        )
    }) else {
        return;
    };
    let ca = certs.join("ca.pem");
    let server = Server::new(
        "default",
        &format!("https://localhost:{https}"),
        &broker.user,
        broker.password(),
    )
    .with_amqp(&format!("amqps://localhost:{amqps}"));

    // Without the CA the certificate is refused, and the error says so
    // (and holds no secret).
    let untrusting = Source::new(Duration::from_secs(5));
    let err = untrusting
        .queues(&server, "/")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(broker.password()), "{err}");
    // With it, the API answers over https.
    let source = Source::with_ca_file(Duration::from_secs(5), Some(&ca)).unwrap();
    source.queues(&server, "/").await.unwrap();

    let env = KubeEnv::new("queue-tls").await;
    let deployments: Api<Deployment> = env.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment("reader", &[("queue", "fresh"), ("messages-per-pod", "100")]),
        )
        .await
        .unwrap();
    broker.publish("fresh", 300).await;
    let handle = start_with(
        &env,
        BTreeMap::from([("default".to_string(), server.clone())]),
        source.clone(),
    )
    .await;
    eventually("300 messages at 100 a pod: 3 replicas", || async {
        deployments
            .get("reader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            == Some(3)
    })
    .await;
    // The management API has still not counted the queue: the depth came
    // from the broker by AMQP.
    let queues = source.queues(&server, "/").await.unwrap();
    let fresh = queues.iter().find(|q| q.name == "fresh");
    assert!(
        fresh.is_none_or(|q| q.ready.is_none()),
        "the API counted the queue already, so AMQP was not needed: {fresh:?}"
    );
    handle.stop().await.unwrap();
    env.cleanup().await;
}
