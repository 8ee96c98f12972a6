//! The node autoscaler end to end against moto_server's Auto Scaling
//! groups: `examples/ha.yaml` applied by clusterctl (its `nodes` group has
//! one ASG per zone, min 1 and max 10 each), the fake kubelet following
//! moto's instances, and, on the test API server, the binder scheduling.
//! Two replicas run; only the leader acts.

use std::collections::BTreeMap;
use std::time::Duration;

use clusterctl::controllers::drain::DrainOptions;
use clusterctl::controllers::node_autoscaler::Settings;
use clusterctl::controllers::node_autoscaler::cloud::{AwsNodeGroups, NodeGroups};
use clusterctl::controllers::node_autoscaler::component::NodeAutoscaler;
use clusterctl::controllers::runtime::{self, RuntimeArgs};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::component::{get, parse_prometheus, sample};
use crate::kube_env::{KubeEnv, eventually};
use crate::kubelet::{Binder, FakeKubelet};

const REGION: &str = "eu-west-1";

fn pod(name: &str, cpu: &str, app: &str, owner_uid: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": app },
                      "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid, "controller": true }] },
        "spec": {
            "nodeSelector": { "workload": "general" },
            "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10",
                             "resources": { "requests": { "cpu": cpu, "memory": "256Mi" } } }],
        },
    }))
    .unwrap()
}

/// An owner no controller acts on, and `n` 3-CPU pods it controls (one
/// fits an m6i.xlarge node); returns the pods' API and the owner's uid.
async fn burst(env: &KubeEnv, n: usize) -> (Api<Pod>, String) {
    let owner: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "owner" } })).unwrap();
    let uid = env
        .api::<ConfigMap>()
        .create(&PostParams::default(), &owner)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let pods: Api<Pod> = env.api();
    for i in 0..n {
        pods.create(
            &PostParams::default(),
            &pod(&format!("burst-{i}"), "3", "burst", &uid),
        )
        .await
        .unwrap();
    }
    (pods, uid)
}

/// `examples/ha.yaml` applied to moto by clusterctl.
pub(crate) fn apply_ha(moto: &crate::moto::Moto) {
    let out = moto
        .clusterctl(&["apply", "-f", "examples/ha.yaml", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Nodes for the `nodes` group's running instances (with its node labels).
async fn follow(
    kubelet: &FakeKubelet,
    clients: &clusterctl::cloud::Clients,
    env: &KubeEnv,
) -> Vec<String> {
    let labels = BTreeMap::from([("workload".to_string(), "general".to_string())]);
    kubelet
        .follow_instances_labelled(
            &clients.ec2,
            ("clusterctl.io/instancegroup", "nodes"),
            &env.ns,
            &labels,
        )
        .await
}

/// A node autoscaler replica named `name` for ha.example.com.
async fn autoscaler(
    env: &KubeEnv,
    clients: &clusterctl::cloud::Clients,
    settings: Settings,
    name: &str,
) -> runtime::Handle {
    let mut args = RuntimeArgs::for_tests();
    args.lease_namespace = Some(env.ns.clone());
    args.pod_name = Some(name.into());
    args.interval = Some(Duration::from_millis(500));
    let component = NodeAutoscaler::new(
        std::sync::Arc::new(AwsNodeGroups::new(clients, "ha.example.com")),
        settings,
        DrainOptions {
            timeout: Duration::from_secs(20),
            poll: Duration::from_millis(200),
        },
    );
    runtime::start(component, args, env.config().await)
        .await
        .unwrap()
}

async fn desired(groups: &AwsNodeGroups) -> Vec<i64> {
    groups.groups().await.unwrap()[0]
        .zones
        .iter()
        .map(|z| z.desired)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_moto_asgs_zones_grow_evenly_and_shrink_around_a_guarded_pod() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    crate::direct::account(&moto, REGION).await;
    apply_ha(&moto);
    let env = KubeEnv::new("node-autoscaler-moto").await;
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config(REGION).await, true);
    let groups = AwsNodeGroups::new(&clients, "ha.example.com");
    assert_eq!(desired(&groups).await, [1, 1, 1]);

    let kubelet = FakeKubelet::start(env.client.clone()).await;
    let binder = env.local().map(|_| Binder::start(&env));
    let follow = || follow(&kubelet, &clients, &env);
    assert_eq!(follow().await.len(), 3);

    let settings = Settings {
        scale_down_unneeded_time: Duration::from_secs(2),
        scale_down_delay_after_add: Duration::from_secs(2),
        ..Settings::default()
    };
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        replicas.push(autoscaler(&env, &clients, settings.clone(), name).await);
    }

    // m6i.xlarge nodes (4 CPUs): one 3-CPU pod each. Three run at once;
    // three wait, and each zone grows by one.
    let (pods, uid) = burst(&env, 6).await;
    eventually("every zone's ASG grows by one", || async {
        follow().await;
        desired(&groups).await == [2, 2, 2]
    })
    .await;
    eventually("all six pods run on the new nodes", || async {
        follow().await;
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
            == 6
    })
    .await;
    // Nodes registered but not Ready yet were counted as on their way.
    assert_eq!(
        desired(&groups).await,
        [2, 2, 2],
        "no node more than needed"
    );

    // A pod guarded by a PodDisruptionBudget keeps its node.
    let guarded_node = pods
        .get("burst-0")
        .await
        .unwrap()
        .spec
        .unwrap()
        .node_name
        .unwrap();
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": { "name": "guard" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "guarded" } } },
    }))
    .unwrap();
    env.api::<PodDisruptionBudget>()
        .create(&PostParams::default(), &pdb)
        .await
        .unwrap();
    let mut guarded = pod("guarded", "100m", "guarded", &uid);
    guarded.spec.as_mut().unwrap().node_name = Some(guarded_node.clone());
    pods.create(&PostParams::default(), &guarded).await.unwrap();

    // The burst ends: one node per zone goes, never the guarded one.
    for i in 0..6 {
        pods.delete(
            &format!("burst-{i}"),
            &DeleteParams::default().grace_period(0),
        )
        .await
        .unwrap();
    }
    eventually("back to one instance per zone", || async {
        follow().await;
        desired(&groups).await == [1, 1, 1]
    })
    .await;
    let nodes = Api::<Node>::all(env.client.clone());
    assert!(
        nodes.get_opt(&guarded_node).await.unwrap().is_some(),
        "the guarded pod's node stays"
    );
    assert!(pods.get_opt("guarded").await.unwrap().is_some());

    // Exactly one replica decided anything.
    let mut acted = Vec::new();
    for h in &replicas {
        let (_, body) = get(h.metrics_addr, "/metrics").await;
        let samples = parse_prometheus(&body);
        let decisions: f64 = samples
            .iter()
            .filter(|(n, _, _)| n == "clusterctl_node_autoscaler_decisions_total")
            .map(|(_, _, v)| v)
            .sum();
        acted.push(decisions > 0.0);
        assert!(sample(&samples, "clusterctl_leader", &[]).is_some());
    }
    assert_eq!(acted.iter().filter(|a| **a).count(), 1, "{acted:?}");
    for h in replicas {
        h.stop().await.unwrap();
    }
    if let Some(b) = binder {
        b.stop();
    }
    kubelet.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_capacity_is_noticed_in_the_next_pass_and_another_zone_grows() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("clusterctl=info")
        .with_test_writer()
        .try_init();
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    crate::direct::account(&moto, REGION).await;
    apply_ha(&moto);
    let env = KubeEnv::new("node-autoscaler-capacity").await;
    // AWS through a proxy that has no capacity in eu-west-1a.
    let proxy = crate::proxy::Proxy::start(
        &moto.endpoint,
        crate::proxy::Options {
            no_capacity_for: Some("nodes-eu-west-1a.ha.example.com"),
            ..Default::default()
        },
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&proxy.endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await;
    let clients = clusterctl::cloud::Clients::from_sdk(&config, true);
    let groups = AwsNodeGroups::new(&clients, "ha.example.com");
    let kubelet = FakeKubelet::start(env.client.clone()).await;
    let binder = env.local().map(|_| Binder::start(&env));
    let follow = || follow(&kubelet, &clients, &env);
    follow().await;
    let handle = autoscaler(&env, &clients, Settings::default(), "a").await;
    let (pods, _) = burst(&env, 6).await;
    // eu-west-1a never launches; the pod meant for it goes to another zone.
    eventually(
        "all six pods run, none in the zone without capacity",
        || async {
            follow().await;
            pods.list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count()
                == 6
        },
    )
    .await;
    let d = desired(&groups).await;
    assert_eq!(d[0], 1, "eu-west-1a stays where it was: {d:?}");
    assert_eq!(d[1] + d[2], 5, "{d:?}");
    handle.stop().await.unwrap();
    if let Some(b) = binder {
        b.stop();
    }
    kubelet.stop().await;
    env.cleanup().await;
}
