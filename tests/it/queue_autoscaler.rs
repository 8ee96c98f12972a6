//! The queue autoscaler against a real RabbitMQ broker (its management
//! API on loopback) and the test API server (or the real cluster of
//! CLUSTERCTL_TEST_KUBECONFIG).

use std::collections::BTreeMap;
use std::time::Duration;

use clusterctl::controllers::queue_autoscaler::component::QueueAutoscaler;
use clusterctl::controllers::queue_autoscaler::source::{Server, Servers, Source};
use clusterctl::controllers::runtime::{self, RuntimeArgs};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::kube_env::{KubeEnv, eventually};
use crate::rabbitmq::Broker;

pub fn deployment(name: &str, annotations: &[(&str, &str)]) -> Deployment {
    let a: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (format!("queue-autoscaler.clusterctl.io/{k}"), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": a },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                          "spec": { "schedulerName": "clusterctl-test-no-scheduler",
                                    "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] } },
        },
    }))
    .unwrap()
}

/// The queue autoscaler on the test's cluster, reading `broker` as the
/// `default` server, passing every half second.
pub async fn start(env: &KubeEnv, broker: &Broker, source: Source) -> runtime::Handle {
    let servers = BTreeMap::from([(
        "default".to_string(),
        Server::new(
            "default",
            &broker.management,
            &broker.user,
            broker.password(),
        )
        .with_amqp(&format!("amqp://127.0.0.1:{}", broker.amqp_port)),
    )]);
    start_with(env, servers, source).await
}

/// The queue autoscaler on the test's cluster, reading `servers`, passing
/// every half second.
pub async fn start_with(env: &KubeEnv, servers: Servers, source: Source) -> runtime::Handle {
    let mut args = RuntimeArgs::for_tests();
    args.lease_namespace = Some(env.ns.clone());
    args.interval = Some(Duration::from_millis(500));
    runtime::start(
        QueueAutoscaler::new(servers, source),
        args,
        env.config().await,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_scales_its_deployment_and_a_bad_target_gets_a_warning() {
    let Some(broker) = Broker::shared() else {
        return;
    };
    let env = KubeEnv::new("queue-autoscaler").await;
    let deployments: Api<Deployment> = env.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "consumer",
                &[
                    ("queue", "orders"),
                    ("messages-per-pod", "100"),
                    ("max", "20"),
                ],
            ),
        )
        .await
        .unwrap();
    // Each kind of bad input, on a target of its own.
    let bad: [(&str, &[(&str, &str)]); 5] = [
        (
            "broken",
            &[("queue", "orders"), ("messages-per-pod", "lots")],
        ),
        (
            "inverted",
            &[
                ("queue", "orders"),
                ("messages-per-pod", "100"),
                ("min", "5"),
                ("max", "2"),
            ],
        ),
        (
            "moody",
            &[
                ("queue", "orders"),
                ("messages-per-pod", "100"),
                ("mode", "vibes"),
            ],
        ),
        (
            "badpattern",
            &[
                ("queue", "orders(["),
                ("messages-per-pod", "100"),
                ("queue-regex", "true"),
            ],
        ),
        (
            "contested",
            &[("queue", "orders"), ("messages-per-pod", "100")],
        ),
    ];
    for (name, a) in bad {
        deployments
            .create(&PostParams::default(), &deployment(name, a))
            .await
            .unwrap();
    }
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": { "name": "contested" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "contested" },
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                          "target": { "type": "Utilization", "averageUtilization": 80 } } }],
        },
    }))
    .unwrap();
    env.api::<HorizontalPodAutoscaler>()
        .create(&PostParams::default(), &hpa)
        .await
        .unwrap();
    let source = Source::new(Duration::from_secs(5));
    let requests = source.requests.clone();
    let handle = start(&env, broker, source).await;

    broker.publish("orders", 1000).await;
    // When the management API first reports the backlog, count the passes
    // made so far; the scale must come within two passes after that.
    loop {
        let (_, body) = broker
            .api("GET", "/api/queues/%2F/orders?columns=messages_ready", None)
            .await;
        let ready = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["messages_ready"].as_u64());
        if ready == Some(1000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reported = crate::queue_autoscaler_vhosts::passes(handle.metrics_addr).await;
    let scaled_at = std::sync::Mutex::new(0.0);
    eventually("1,000 messages at 100 a pod: 10 replicas", || async {
        let done = deployments
            .get("consumer")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            == Some(10);
        if done {
            *scaled_at.lock().unwrap() =
                crate::queue_autoscaler_vhosts::passes(handle.metrics_addr).await;
        }
        done
    })
    .await;
    // Passes completed between the report and the scale being seen: the
    // one in flight at the report (it may have read the API just before),
    // and the two after it. The check polls every 100 ms, a fifth of a pass.
    let passes = *scaled_at.lock().unwrap() - reported;
    assert!(
        passes <= 3.0,
        "scaled {passes} passes after the management API reported the backlog"
    );
    // Each bad target is left alone, with a Warning that names its problem.
    for (name, _) in bad {
        assert_eq!(
            deployments.get(name).await.unwrap().spec.unwrap().replicas,
            Some(1),
            "{name}"
        );
    }
    let warnings = crate::component::events(&env, "InvalidAnnotations").await;
    for want in [
        "messages-per-pod: \"lots\" is not a number",
        "min: 5 is above max (2)",
        "mode: \"vibes\"",
        "\"orders([\" is not a regular expression",
    ] {
        assert!(
            warnings.iter().any(|(note, _)| note.contains(want)),
            "no Warning containing {want:?}: {warnings:?}"
        );
    }
    let conflicts = crate::component::events(&env, "HPAConflict").await;
    assert!(
        conflicts
            .iter()
            .any(|(note, _)| note.contains("HorizontalPodAutoscaler")),
        "{conflicts:?}"
    );
    let scaled = crate::component::events(&env, "Scaled").await;
    assert!(
        scaled.iter().any(
            |(note, by)| note.contains("-> 10 replicas") && by == "clusterctl-queue-autoscaler"
        ),
        "{scaled:?}"
    );
    // One request per poll: a single vhost and server.
    let before = requests.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polls = requests.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(polls >= 1, "{polls}");
    handle.stop().await.unwrap();
    env.cleanup().await;
}

#[test]
fn bad_servers_and_missing_credentials_exit_2_without_a_secret() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_clusterctl"));
        c.arg("queue-autoscaler").args(args);
        c.env_remove("CLUSTERCTL_RABBITMQ_USERNAME")
            .env_remove("CLUSTERCTL_RABBITMQ_PASSWORD");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--server", "nohost"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--server <NAME=URL>"), "{err}");
    let (code, err) = run(
        &["--server", "default=http://127.0.0.1:1"],
        &[("CLUSTERCTL_RABBITMQ_USERNAME", "u")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no password for RabbitMQ server default"),
        "{err}"
    );
    let (code, err) = run(
        &[
            "--server",
            "default=http://127.0.0.1:1",
            "--interval",
            "-3s",
        ],
        &[
            ("CLUSTERCTL_RABBITMQ_USERNAME", "u"),
            ("CLUSTERCTL_RABBITMQ_PASSWORD", "hunter2-secret"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--interval") && !err.contains("hunter2-secret"),
        "{err}"
    );
    let creds = [
        ("CLUSTERCTL_RABBITMQ_USERNAME", "u"),
        ("CLUSTERCTL_RABBITMQ_PASSWORD", "hunter2-secret"),
    ];
    // An AMQP endpoint for no server, or not amqp://.
    let (code, err) = run(
        &[
            "--server",
            "default=http://127.0.0.1:1",
            "--amqp",
            "other=amqp://h:5672",
        ],
        &creds,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--amqp <NAME=URL>") && err.contains("no --server named other"),
        "{err}"
    );
    let (code, err) = run(
        &[
            "--server",
            "default=http://127.0.0.1:1",
            "--amqp",
            "default=http://h:5672",
        ],
        &creds,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("amqp:// or amqps://"), "{err}");
    // A CA file that is not there.
    let (code, err) = run(
        &[
            "--server",
            "default=https://127.0.0.1:1",
            "--ca-file",
            "/nonexistent/ca.pem",
        ],
        &creds,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot read CA file /nonexistent/ca.pem"),
        "{err}"
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_queue_waits_out_the_window_goes_to_zero_and_one_message_wakes_it() {
    let Some(broker) = Broker::shared() else {
        return;
    };
    let env = KubeEnv::new("queue-autoscaler-zero").await;
    let deployments: Api<Deployment> = env.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "worker",
                &[
                    ("queue", "jobs"),
                    ("messages-per-pod", "100"),
                    ("min", "0"),
                    ("max", "20"),
                    ("scale-down-window", "4s"),
                ],
            ),
        )
        .await
        .unwrap();
    // The same queue, with a floor: it never goes below min.
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "floor",
                &[
                    ("queue", "jobs"),
                    ("messages-per-pod", "100"),
                    ("min", "2"),
                    ("max", "20"),
                    ("scale-down-window", "4s"),
                ],
            ),
        )
        .await
        .unwrap();
    let handle = start(&env, broker, Source::new(Duration::from_secs(5))).await;
    let replicas_of = |name: &'static str| {
        let deployments = deployments.clone();
        async move {
            deployments
                .get(name)
                .await
                .unwrap()
                .spec
                .unwrap()
                .replicas
                .unwrap_or(-1)
        }
    };
    let replicas = || replicas_of("worker");
    broker.publish("jobs", 300).await;
    eventually("300 messages: 3 replicas", || async {
        replicas().await == 3 && replicas_of("floor").await == 3
    })
    .await;

    // Drained: the replicas stay for the window, then go to zero (min 0).
    broker.purge("jobs").await;
    let drained = std::time::Instant::now();
    eventually("down to zero after the window", || async {
        replicas().await == 0
    })
    .await;
    // The window counts from the last reading that still wanted 3, taken
    // at most one poll (500 ms) before the purge returned.
    assert!(
        drained.elapsed() >= Duration::from_millis(3500),
        "scaled down after {:?}, inside the 4 s window",
        drained.elapsed()
    );
    assert_eq!(
        replicas_of("floor").await,
        2,
        "the floor went below its min"
    );
    // One message wakes it.
    broker.publish("jobs", 1).await;
    eventually("one message: one replica", || async {
        replicas().await == 1
    })
    .await;
    assert_eq!(replicas_of("floor").await, 2);
    handle.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_replicas_hold_and_scaling_resumes_when_it_returns() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let env = KubeEnv::new("queue-autoscaler-down").await;
    let deployments: Api<Deployment> = env.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "worker",
                &[
                    ("queue", "jobs"),
                    ("messages-per-pod", "100"),
                    ("min", "0"),
                    ("max", "20"),
                    ("scale-down-window", "1s"),
                ],
            ),
        )
        .await
        .unwrap();
    let handle = start(&env, &broker, Source::new(Duration::from_secs(2))).await;
    let replicas = || async {
        deployments
            .get("worker")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            .unwrap_or(-1)
    };
    broker.publish("jobs", 300).await;
    eventually("300 messages: 3 replicas", || async {
        replicas().await == 3
    })
    .await;

    // Down: nothing scales down (the window is 1 s), an Event and the
    // metric say why.
    broker.stop();
    eventually("a MetricsMissing Event", || async {
        !crate::component::events(&env, "MetricsMissing")
            .await
            .is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas().await, 3, "held while the broker is down");
    let (_, body) = crate::component::get(handle.metrics_addr, "/metrics").await;
    let held = crate::component::sample(
        &crate::component::parse_prometheus(&body),
        "clusterctl_queue_autoscaler_held",
        &[("name", "worker")],
    );
    assert_eq!(held, Some(1.0), "{body}");

    // Back: scaling resumes.
    broker.relaunch();
    broker.publish("jobs", 1000).await;
    eventually("scaling resumes: 10 replicas", || async {
        replicas().await == 10
    })
    .await;
    handle.stop().await.unwrap();
    env.cleanup().await;
}
