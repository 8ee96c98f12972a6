//! Busy consumers are stopped last: before a scale-down, the pod holding
//! unacked messages gets a higher `controller.kubernetes.io/pod-deletion-cost`
//! than the idle one. The consumers are real AMQP clients whose sockets come
//! from 127.0.0.2 and 127.0.0.3 (through relays bound to those addresses),
//! the `status.podIP` of two pods of the Deployment.
//!
//! The Deployment is paused, so on a real cluster its controller makes no
//! ReplicaSet and the test's own pods (never scheduled: their scheduler does
//! not exist) are the only ones its selector matches.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use amqprs::channel::{BasicConsumeArguments, BasicQosArguments, Channel};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::consumer::AsyncConsumer;
use amqprs::{BasicProperties, Deliver};
use clusterctl::controllers::queue_autoscaler::source::Source;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kube_env::{KubeEnv, eventually};
use crate::queue_autoscaler::deployment;
use crate::rabbitmq::Broker;
use crate::relay::Relay;

const COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Takes deliveries and never acknowledges them.
struct Holder;

#[async_trait::async_trait]
impl AsyncConsumer for Holder {
    async fn consume(&mut self, _: &Channel, _: Deliver, _: BasicProperties, _: Vec<u8>) {}
}

/// A consumer of `queue` connecting from `source` (prefetch 5, manual
/// acks); the connection and channel stay open while held.
async fn consumer(broker: &Broker, source: Ipv4Addr, queue: &str) -> (Relay, Connection, Channel) {
    let upstream = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), broker.amqp_port);
    let relay = Relay::start(upstream, Some(IpAddr::V4(source))).await;
    let conn = Connection::open(&OpenConnectionArguments::new(
        "127.0.0.1",
        relay.addr.port(),
        &broker.user,
        broker.password(),
    ))
    .await
    .unwrap();
    let channel = conn.open_channel(None).await.unwrap();
    channel
        .basic_qos(BasicQosArguments::new(0, 5, false))
        .await
        .unwrap();
    channel
        .basic_consume(
            Holder,
            BasicConsumeArguments::new(queue, &format!("test-{source}"))
                .manual_ack(true)
                .finish(),
        )
        .await
        .unwrap();
    (relay, conn, channel)
}

async fn pod(env: &KubeEnv, name: &str, ip: &str) {
    let pods: Api<Pod> = env.api();
    let p: Pod = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "worker" } },
        "spec": { "schedulerName": "clusterctl-test-no-scheduler",
                  "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "podIP": ip, "podIPs": [{ "ip": ip }] } })),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_gives_the_idle_consumer_the_lower_deletion_cost() {
    let Some(broker) = Broker::shared() else {
        return;
    };
    let env = KubeEnv::new("queue-consumers").await;
    // The busy consumer takes the five messages first; the idle one then
    // finds none.
    broker.publish("work", 5).await;
    let busy = consumer(broker, Ipv4Addr::new(127, 0, 0, 2), "work").await;
    let (code, _) = broker.api("GET", "/api/queues/%2F/work", None).await;
    assert_eq!(code, 200);
    eventually("the busy consumer holds five unacked messages", || async {
        let (_, body) = broker
            .api(
                "GET",
                "/api/queues/%2F/work?columns=messages_unacknowledged",
                None,
            )
            .await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["messages_unacknowledged"] == 5
    })
    .await;
    let idle = consumer(broker, Ipv4Addr::new(127, 0, 0, 3), "work").await;
    // The management API's consumer and channel statistics lag the
    // queue's: what the component reads must show both consumers and the
    // busy channel's five messages before it starts, or it would rank on
    // stale figures (as it would, for one pass, on a real broker).
    eventually(
        "the API lists both consumers and the busy channel's five",
        || async {
            let (_, consumers) = broker
                .api(
                    "GET",
                    "/api/consumers/%2F?columns=channel_details.name,channel_details.peer_host",
                    None,
                )
                .await;
            let consumers: serde_json::Value = serde_json::from_str(&consumers).unwrap();
            let channel_of = |ip: &str| {
                consumers.as_array().and_then(|all| {
                    all.iter()
                        .find(|c| c["channel_details"]["peer_host"] == ip)
                        .and_then(|c| c["channel_details"]["name"].as_str().map(str::to_string))
                })
            };
            let (Some(busy), Some(_)) = (channel_of("127.0.0.2"), channel_of("127.0.0.3")) else {
                return false;
            };
            let (_, channels) = broker
                .api(
                    "GET",
                    "/api/vhosts/%2F/channels?columns=name,messages_unacknowledged",
                    None,
                )
                .await;
            let channels: serde_json::Value = serde_json::from_str(&channels).unwrap();
            channels.as_array().is_some_and(|all| {
                all.iter()
                    .any(|c| c["name"] == busy.as_str() && c["messages_unacknowledged"] == 5)
            })
        },
    )
    .await;
    pod(&env, "worker-busy", "127.0.0.2").await;
    pod(&env, "worker-idle", "127.0.0.3").await;
    // Two replicas; five messages at ten a pod want one, after a short window.
    let mut d = deployment(
        "worker",
        &[
            ("queue", "work"),
            ("messages-per-pod", "10"),
            ("scale-down-window", "3s"),
        ],
    );
    let spec = d.spec.as_mut().unwrap();
    spec.replicas = Some(2);
    spec.paused = Some(true);
    spec.selector.match_labels = Some([("app".to_string(), "worker".to_string())].into());
    spec.template.metadata.as_mut().unwrap().labels =
        Some([("app".to_string(), "worker".to_string())].into());
    let deployments: Api<Deployment> = env.api();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();

    let handle =
        crate::queue_autoscaler::start(&env, broker, Source::new(Duration::from_secs(5))).await;
    eventually("the scale-down to one replica", || async {
        deployments
            .get("worker")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            == Some(1)
    })
    .await;
    let pods: Api<Pod> = env.api();
    let cost = |p: Pod| -> Option<i64> { p.metadata.annotations?.get(COST)?.parse().ok() };
    let busy_cost = cost(pods.get("worker-busy").await.unwrap());
    let idle_cost = cost(pods.get("worker-idle").await.unwrap());
    assert_eq!(
        busy_cost,
        Some(5),
        "the busy pod holds five unacked messages"
    );
    assert_eq!(idle_cost, Some(0), "the idle pod holds none");
    handle.stop().await.unwrap();
    drop((busy, idle));
    env.cleanup().await;
}
