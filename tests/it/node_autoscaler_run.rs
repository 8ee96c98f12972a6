//! The node autoscaler end to end on the runtime, with the in-memory node
//! groups standing in for AWS: the fake kubelet runs the nodes (and, on
//! the test API server, the binder schedules), and a small launcher plays
//! the Auto Scaling service, adding a node for each desired instance.

use std::sync::Arc;
use std::time::Duration;

use clusterctl::controllers::drain::DrainOptions;
use clusterctl::controllers::node_autoscaler::Settings;
use clusterctl::controllers::node_autoscaler::cloud::FakeNodeGroups;
use clusterctl::controllers::node_autoscaler::component::NodeAutoscaler;
use clusterctl::controllers::node_autoscaler::model::{Group, Instance, Template, ZoneAsg};
use clusterctl::controllers::node_autoscaler::resources::Resources;
use clusterctl::controllers::runtime::{self, RuntimeArgs};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::kube_env::{KubeEnv, eventually};
use crate::kubelet::{Binder, FakeKubelet, FakeNode};

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

fn node(env: &KubeEnv, zone: &str, k: usize) -> FakeNode {
    let mut n = FakeNode::new(&format!("{}-{}-{k}", env.ns, &zone[zone.len() - 1..]), zone);
    n.labels
        .insert("clusterctl.io/test-node".into(), env.ns.clone());
    n
}

/// Adds nodes for desired capacity above the instances, and stops the
/// kubelets of terminated instances (the ASG's and EC2's job).
async fn launch(groups: &FakeNodeGroups, kubelet: &FakeKubelet, env: &KubeEnv) {
    let mut to_add = Vec::new();
    let live: Vec<String> = groups
        .state
        .lock()
        .unwrap()
        .iter()
        .flat_map(|g| g.zones.iter())
        .flat_map(|a| a.instances.iter().map(|i| i.id.clone()))
        .collect();
    for n in kubelet.nodes() {
        if !live.contains(&n.instance_id) {
            kubelet.remove(&n.name).await;
        }
    }
    {
        let mut state = groups.state.lock().unwrap();
        for asg in state.iter_mut().flat_map(|g| g.zones.iter_mut()) {
            while (asg.instances.len() as i64) < asg.desired {
                let n = node(env, &asg.zone, asg.instances.len() + 100 * to_add.len() + 1);
                asg.instances.push(Instance {
                    id: n.instance_id.clone(),
                    private_dns: None,
                });
                to_add.push(n);
            }
        }
    }
    for n in to_add {
        kubelet.add(n).await;
    }
}

/// A pod with a controller (an owner no controller acts on, so that
/// neither the garbage collector nor a ReplicaSet controller removes it).
fn pod(env: &KubeEnv, name: &str, owner_uid: &str) -> Pod {
    sized(env, name, owner_uid, "1500m", "256Mi")
}

fn sized(env: &KubeEnv, name: &str, owner_uid: &str, cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "burst" },
                      "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "burst", "uid": owner_uid, "controller": true }] },
        "spec": {
            "nodeSelector": { "clusterctl.io/test-node": env.ns },
            "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10",
                             "resources": { "requests": { "cpu": cpu, "memory": memory } } }],
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pods_grow_every_zone_and_empty_nodes_go_again() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("clusterctl=info")
        .with_test_writer()
        .try_init();
    let env = KubeEnv::new("node-autoscaler-run").await;
    let kubelet = FakeKubelet::start(env.client.clone()).await;
    let binder = env.local().map(|_| Binder::start(&env));
    let mut zones = Vec::new();
    for z in ZONES {
        let n = node(&env, z, 0);
        zones.push(ZoneAsg {
            name: format!("nodes-{z}"),
            zone: z.into(),
            min: 1,
            max: 5,
            desired: 1,
            instances: vec![Instance {
                id: n.instance_id.clone(),
                private_dns: None,
            }],
        });
        kubelet.add(n).await;
    }
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("clusterctl.io/test-node".to_string(), env.ns.clone());
    let groups = Arc::new(FakeNodeGroups::default());
    *groups.state.lock().unwrap() = vec![Group {
        name: "nodes".into(),
        zones,
        template: Template {
            instance_type: "t3.medium".into(),
            allocatable: Resources {
                cpu_m: 2000,
                memory: 4 << 30,
                pods: 110,
                ephemeral: 20 << 30,
            },
            labels,
            taints: vec![],
        },
        priority: 0,
    }];
    let settings = Settings {
        scale_down_unneeded_time: Duration::from_secs(2),
        scale_down_delay_after_add: Duration::from_secs(2),
        max_empty_bulk_delete: 10,
        ..Settings::default()
    };
    let mut args = RuntimeArgs::for_tests();
    args.lease_namespace = Some(env.ns.clone());
    args.interval = Some(Duration::from_millis(500));
    let handle = runtime::start(
        NodeAutoscaler::new(
            groups.clone(),
            settings,
            DrainOptions {
                timeout: Duration::from_secs(20),
                poll: Duration::from_millis(200),
            },
        ),
        args,
        env.config().await,
    )
    .await
    .unwrap();

    // Three pods fill the three nodes; three more wait.
    let pods: Api<Pod> = env.api();
    let owner: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "burst" } })).unwrap();
    let owner = env
        .api::<k8s_openapi::api::core::v1::ConfigMap>()
        .create(&PostParams::default(), &owner)
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    for i in 0..6 {
        pods.create(
            &PostParams::default(),
            &pod(&env, &format!("burst-{i}"), &uid),
        )
        .await
        .unwrap();
    }
    eventually("every zone grows by one", || async {
        launch(&groups, &kubelet, &env).await;
        let state = groups.state.lock().unwrap().clone();
        state[0].zones.iter().all(|z| z.desired == 2)
    })
    .await;
    eventually("all six pods run", || async {
        launch(&groups, &kubelet, &env).await;
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
    let writes = groups.writes.lock().unwrap().clone();
    assert!(writes.iter().all(|w| w.starts_with("set ")), "{writes:?}");

    // A small pod joins one of the nodes (M, in zone Z).
    pods.create(
        &PostParams::default(),
        &sized(&env, "mover", &uid, "100m", "64Mi"),
    )
    .await
    .unwrap();
    let node_of = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
    eventually("the small pod runs", || async {
        pods.get("mover").await.ok().is_some_and(|p| {
            node_of(&p).is_some()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
    })
    .await;
    let nodes = Api::<Node>::all(env.client.clone());
    let zone_of = |n: &Node| {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("topology.kubernetes.io/zone").cloned())
    };
    let m = node_of(&pods.get("mover").await.unwrap()).unwrap();
    let z = zone_of(&nodes.get(&m).await.unwrap()).unwrap();
    // The burst pod on Z's other node stays; the others go.
    let mut kept = None;
    for p in pods.list(&Default::default()).await.unwrap().items {
        let (Some(name), Some(n)) = (p.metadata.name.clone(), node_of(&p)) else {
            continue;
        };
        if !name.starts_with("burst-") || n == m {
            continue;
        }
        if kept.is_none() && zone_of(&nodes.get(&n).await.unwrap()).as_deref() == Some(&z) {
            kept = Some((name, n));
        }
    }
    let (kept, kept_node) = kept.expect("a burst pod on the other node of the small pod's zone");

    // The pods go: the empty nodes are terminated, one per zone, back to
    // each ASG's minimum; in zone Z, M holds only the small pod, which fits
    // beside the kept burst pod: M is drained through the Eviction API and
    // terminated, and the kept pod's node stays.
    for i in 0..6 {
        let name = format!("burst-{i}");
        if name == kept {
            continue;
        }
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    eventually("back to one node per zone", || async {
        launch(&groups, &kubelet, &env).await;
        let state = groups.state.lock().unwrap().clone();
        state[0]
            .zones
            .iter()
            .all(|z| z.desired == 1 && z.instances.len() == 1)
    })
    .await;
    let terminated = groups
        .writes
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.starts_with("terminate "))
        .count();
    assert_eq!(terminated, 3, "{:?}", groups.writes.lock().unwrap());
    eventually("the small pod was evicted", || async {
        pods.get_opt("mover").await.unwrap().is_none()
    })
    .await;
    assert!(
        kubelet.names().contains(&kept_node),
        "the kept pod's node stays: {:?}",
        kubelet.names()
    );
    assert_eq!(
        node_of(&pods.get(&kept).await.unwrap()).as_deref(),
        Some(kept_node.as_str())
    );
    let ours =
        kube::api::ListParams::default().labels(&format!("clusterctl.io/test-node={}", env.ns));
    eventually("only the three remaining nodes are left", || async {
        launch(&groups, &kubelet, &env).await;
        nodes.list(&ours).await.unwrap().items.len() == 3
    })
    .await;
    handle.stop().await.unwrap();
    if let Some(b) = binder {
        b.stop();
    }
    kubelet.stop().await;
    env.cleanup().await;
}
