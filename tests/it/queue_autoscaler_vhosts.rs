//! One management-API request per server and vhost per poll, however many
//! targets: 50 Deployments over two vhosts, counted by a relay in front of
//! the real broker's management API.

use std::collections::BTreeMap;
use std::time::Duration;

use clusterctl::controllers::queue_autoscaler::source::{Server, Source};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};

use crate::component::{get, parse_prometheus, sample};
use crate::kube_env::{KubeEnv, eventually};
use crate::queue_autoscaler::{deployment, start_with};
use crate::rabbitmq::Broker;
use crate::relay::Relay;

/// Passes the component has completed (from its /metrics).
pub(crate) async fn passes(addr: std::net::SocketAddr) -> f64 {
    let (_, text) = get(addr, "/metrics").await;
    sample(
        &parse_prometheus(&text),
        "clusterctl_loop_duration_seconds_count",
        &[],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_targets_over_two_vhosts_make_two_requests_a_poll() {
    let Some(broker) = Broker::shared() else {
        return;
    };
    for v in ["a", "b"] {
        broker.add_vhost(v).await;
    }
    // Queue i of vhost a or b holds i % 4 messages; one message a pod.
    for i in 0..50 {
        let vhost = if i % 2 == 0 { "a" } else { "b" };
        broker.publish_to(vhost, &format!("q{i}"), i % 4).await;
    }
    let env = KubeEnv::new("queue-vhosts").await;
    let deployments: Api<Deployment> = env.api();
    for i in 0..50 {
        let vhost = if i % 2 == 0 { "a" } else { "b" };
        let queue = format!("{vhost}/q{i}");
        deployments
            .create(
                &PostParams::default(),
                &deployment(
                    &format!("c{i}"),
                    &[("queue", &queue), ("messages-per-pod", "1"), ("max", "5")],
                ),
            )
            .await
            .unwrap();
    }
    let upstream = broker
        .management
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let relay = Relay::start(upstream, None).await;
    let servers = BTreeMap::from([(
        "default".to_string(),
        Server::new(
            "default",
            &format!("http://{}", relay.addr),
            &broker.user,
            broker.password(),
        )
        .with_amqp(&format!("amqp://127.0.0.1:{}", broker.amqp_port)),
    )]);
    // Wrong credentials: a clear error that holds no secret.
    let wrong = Server::new(
        "default",
        &broker.management,
        &broker.user,
        "not-the-password-x9",
    );
    let err = Source::new(Duration::from_secs(5))
        .queues(&wrong, "a")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the credentials were refused"), "{err}");
    assert!(
        !err.contains("not-the-password-x9") && !err.contains(broker.password()),
        "{err}"
    );
    let handle = start_with(&env, servers, Source::new(Duration::from_secs(5))).await;
    // Every target reads its own queue: those with 2 or 3 messages scale.
    eventually("each Deployment sized to its own queue", || async {
        let list = deployments.list(&Default::default()).await.unwrap();
        list.items.iter().all(|d| {
            let i: usize = d.metadata.name.as_ref().unwrap()[1..].parse().unwrap();
            let want = (i % 4).max(1) as i32;
            d.spec.as_ref().unwrap().replicas == Some(want)
        })
    })
    .await;
    // Over a few polls: two requests a poll, one per vhost.
    let (p0, r0) = (passes(handle.metrics_addr).await, relay.count("/api/"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (p1, r1) = (passes(handle.metrics_addr).await, relay.count("/api/"));
    let polls = p1 - p0;
    let requests = (r1 - r0) as f64;
    assert!(polls >= 4.0, "{polls} polls in 4 s");
    // The two samples are not taken at one instant: a poll either side.
    assert!(
        (requests - 2.0 * polls).abs() <= 2.0,
        "{requests} requests over {polls} polls (want 2 a poll, not 50)"
    );
    let paths: std::collections::BTreeSet<String> = relay
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|p| p.split('?').next().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        ["/api/queues/a", "/api/queues/b"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    handle.stop().await.unwrap();
    env.cleanup().await;
}
