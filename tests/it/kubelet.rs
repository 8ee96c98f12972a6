//! Test helpers that stand in for what a cluster's nodes do.
//!
//! - [`FakeKubelet`] registers Nodes (capacity, zone, instance type, node
//!   group, `aws:///<zone>/<instance-id>`), keeps their Ready condition and
//!   node Lease fresh, marks the pods bound to them Running and Ready, and
//!   ends their graceful deletion (a delete with grace period 0), as a
//!   kubelet does. It can follow moto_server's instances. It works on the
//!   test API server and, unchanged, on a real cluster.
//! - [`Binder`] binds pending pods to Nodes where their requests, node
//!   selector and tolerations fit: the test API server has no scheduler
//!   (a real cluster's kube-scheduler does this itself).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// One fake node.
#[derive(Debug, Clone)]
pub struct FakeNode {
    /// Node name.
    pub name: String,
    /// Zone label.
    pub zone: String,
    /// Instance type label.
    pub instance_type: String,
    /// Node group label (`clusterctl.io/instancegroup`).
    pub node_group: String,
    /// EC2 instance id (for the providerID).
    pub instance_id: String,
    /// CPU capacity, e.g. "2".
    pub cpu: String,
    /// Memory capacity, e.g. "4Gi".
    pub memory: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Taints as `key=value:Effect`.
    pub taints: Vec<(String, String, String)>,
    /// How long it stays NotReady after registering (a real kubelet
    /// registers before its network and runtime are up).
    pub not_ready_for: Duration,
    /// When it registered (set by [`FakeKubelet::add`]).
    registered_at: Option<(std::time::Instant, chrono::DateTime<chrono::Utc>)>,
}

impl FakeNode {
    /// A 2-CPU, 4 GiB node.
    pub fn new(name: &str, zone: &str) -> FakeNode {
        FakeNode {
            name: name.into(),
            zone: zone.into(),
            instance_type: "t3.medium".into(),
            node_group: "nodes".into(),
            instance_id: {
                use sha2::Digest as _;
                format!(
                    "i-{}",
                    &hex::encode(sha2::Sha256::digest(name.as_bytes()))[..17]
                )
            },
            cpu: "2".into(),
            memory: "4Gi".into(),
            labels: BTreeMap::new(),
            taints: vec![],
            not_ready_for: Duration::ZERO,
            registered_at: None,
        }
    }

    fn object(&self) -> Node {
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), self.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("topology.kubernetes.io/zone".into(), self.zone.clone());
        labels.insert(
            "node.kubernetes.io/instance-type".into(),
            self.instance_type.clone(),
        );
        labels.insert(
            "clusterctl.io/instancegroup".into(),
            self.node_group.clone(),
        );
        labels.insert("clusterctl.io/fake-kubelet".into(), "true".into());
        let taints: Vec<_> = self
            .taints
            .iter()
            .map(|(k, v, e)| json!({ "key": k, "value": v, "effect": e }))
            .collect();
        serde_json::from_value(json!({
            "metadata": { "name": self.name, "labels": labels },
            "spec": {
                "providerID": format!("aws:///{}/{}", self.zone, self.instance_id),
                "taints": taints,
            },
        }))
        .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let res = json!({ "cpu": self.cpu, "memory": self.memory, "pods": "110" });
        let ready = match self.registered_at {
            Some((at, since)) if at.elapsed() < self.not_ready_for => json!({
                "type": "Ready", "status": "False", "reason": "KubeletNotReady",
                "message": "container runtime network not ready", "lastHeartbeatTime": now,
                "lastTransitionTime": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
            _ => json!({ "type": "Ready", "status": "True", "reason": "KubeletReady",
                         "message": "fake kubelet", "lastHeartbeatTime": now, "lastTransitionTime": now }),
        };
        json!({ "status": {
            "capacity": res, "allocatable": res,
            "conditions": [ready],
            "addresses": [{ "type": "InternalIP", "address": "10.0.0.1" }, { "type": "Hostname", "address": self.name }],
            "nodeInfo": { "kubeletVersion": "v1.33.0-fake", "architecture": "amd64", "operatingSystem": "linux",
                          "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                          "containerRuntimeVersion": "", "kubeProxyVersion": "" },
        }})
    }
}

/// A running fake kubelet; stops (and removes its Nodes) with [`FakeKubelet::stop`].
pub struct FakeKubelet {
    client: kube::Client,
    nodes: Arc<Mutex<BTreeMap<String, FakeNode>>>,
    task: tokio::task::JoinHandle<()>,
}

const LEASE_NS: &str = "kube-node-lease";

impl FakeKubelet {
    /// Starts one, syncing every 500 ms.
    pub async fn start(client: kube::Client) -> FakeKubelet {
        let namespaces = Api::<Namespace>::all(client.clone());
        if namespaces.get_opt(LEASE_NS).await.unwrap().is_none() {
            let ns: Namespace =
                serde_json::from_value(json!({ "metadata": { "name": LEASE_NS } })).unwrap();
            let _ = namespaces.create(&PostParams::default(), &ns).await;
        }
        let nodes: Arc<Mutex<BTreeMap<String, FakeNode>>> = Arc::default();
        let (c, n) = (client.clone(), nodes.clone());
        let task = tokio::spawn(async move {
            loop {
                let current: Vec<FakeNode> = n.lock().unwrap().values().cloned().collect();
                sync(&c, &current).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        FakeKubelet {
            client,
            nodes,
            task,
        }
    }

    /// Registers a node (Ready once its `not_ready_for` has passed).
    pub async fn add(&self, mut node: FakeNode) {
        node.registered_at = Some((std::time::Instant::now(), chrono::Utc::now()));
        register(&self.client, &node).await;
        self.nodes.lock().unwrap().insert(node.name.clone(), node);
    }

    /// Removes a node (as a terminated instance's node goes).
    pub async fn remove(&self, name: &str) {
        self.nodes.lock().unwrap().remove(name);
        let _ = Api::<Node>::all(self.client.clone())
            .delete(name, &DeleteParams::default())
            .await;
    }

    /// The nodes it runs, in full.
    pub fn nodes(&self) -> Vec<FakeNode> {
        self.nodes.lock().unwrap().values().cloned().collect()
    }

    /// The nodes it runs.
    pub fn names(&self) -> Vec<String> {
        self.nodes.lock().unwrap().keys().cloned().collect()
    }

    /// One Node per running instance of moto_server that carries `tag`
    /// (`key=value`), named `<prefix>-<instance-id>`; nodes of instances
    /// that are gone are removed. Returns the node names.
    pub async fn follow_instances(
        &self,
        ec2: &aws_sdk_ec2::Client,
        tag: (&str, &str),
        prefix: &str,
    ) -> Vec<String> {
        self.follow_instances_labelled(ec2, tag, prefix, &BTreeMap::new())
            .await
    }

    /// As [`FakeKubelet::follow_instances`], with `labels` on every node
    /// (the instance group's node labels, as its kubelet would register).
    pub async fn follow_instances_labelled(
        &self,
        ec2: &aws_sdk_ec2::Client,
        tag: (&str, &str),
        prefix: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let out = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name(format!("tag:{}", tag.0))
                    .values(tag.1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut running = BTreeMap::new();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let state = i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string());
            if state.as_deref() != Some("running") && state.as_deref() != Some("pending") {
                continue;
            }
            let id = i.instance_id().unwrap_or_default().to_string();
            let mut node = FakeNode::new(
                &format!("{prefix}-{id}"),
                i.placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or("us-east-1a"),
            );
            node.instance_id = id;
            node.labels.extend(labels.clone());
            // As a booting instance's kubelet: registered, NotReady a while.
            node.not_ready_for = Duration::from_secs(1);
            if let Some(t) = i.instance_type() {
                node.instance_type = t.as_str().to_string();
                // What the instance type offers (the kubelet reports it).
                let (cpu, mem) = match t.as_str() {
                    "t3.medium" => ("2", "4Gi"),
                    "m5.large" | "m5a.large" | "m6i.large" => ("2", "8Gi"),
                    "m6i.xlarge" | "m5.xlarge" => ("4", "16Gi"),
                    "m6i.2xlarge" | "m5.2xlarge" => ("8", "32Gi"),
                    _ => ("2", "4Gi"),
                };
                node.cpu = cpu.into();
                node.memory = mem.into();
            }
            running.insert(node.name.clone(), node);
        }
        let known = self.names();
        for name in known
            .iter()
            .filter(|n| n.starts_with(prefix) && !running.contains_key(*n))
        {
            self.remove(name).await;
        }
        for (name, node) in running {
            if !known.contains(&name) {
                self.add(node).await;
            }
        }
        self.names()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    /// Stops and removes its Nodes.
    pub async fn stop(self) {
        self.task.abort();
        for name in self.names() {
            let _ = Api::<Node>::all(self.client.clone())
                .delete(&name, &DeleteParams::default())
                .await;
            let _ = Api::<Lease>::namespaced(self.client.clone(), LEASE_NS)
                .delete(&name, &DeleteParams::default())
                .await;
        }
    }
}

async fn register(client: &kube::Client, node: &FakeNode) {
    let nodes = Api::<Node>::all(client.clone());
    if nodes.get_opt(&node.name).await.unwrap().is_none() {
        nodes
            .create(&PostParams::default(), &node.object())
            .await
            .unwrap();
    }
    let _ = nodes
        .patch_status(
            &node.name,
            &PatchParams::default(),
            &Patch::Merge(node.status()),
        )
        .await;
}

async fn sync(client: &kube::Client, nodes: &[FakeNode]) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let leases = Api::<Lease>::namespaced(client.clone(), LEASE_NS);
    for node in nodes {
        register(client, node).await;
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": node.name, "namespace": LEASE_NS },
            "spec": { "holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": now },
        });
        let _ = leases
            .patch(
                &node.name,
                &PatchParams::apply("fake-kubelet").force(),
                &Patch::Apply(&lease),
            )
            .await;
    }
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let Ok(pods) = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
    else {
        return;
    };
    for p in pods.items {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if !names.contains(&node.as_str()) {
            continue;
        }
        let (Some(ns), Some(name)) = (p.metadata.namespace.clone(), p.metadata.name.clone()) else {
            continue;
        };
        let api = Api::<Pod>::namespaced(client.clone(), &ns);
        if p.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let status = json!({ "status": {
                "phase": "Running", "podIP": "10.0.0.2", "startTime": now,
                "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": now }],
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        }
    }
}

/// Binds pending pods on the test API server (see the module doc).
pub struct Binder {
    task: tokio::task::JoinHandle<()>,
}

fn millicpu(q: &Quantity) -> i64 {
    let s = q.0.as_str();
    match s.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => (s.parse::<f64>().unwrap_or(0.0) * 1000.0) as i64,
    }
}

fn requested_millicpu(p: &Pod) -> i64 {
    p.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
                .map(millicpu)
                .sum()
        })
        .unwrap_or(0)
}

/// Whether `pod` fits `node`, with `used` millicpu already requested there.
pub fn fits(pod: &Pod, node: &Node, used: i64) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let tolerated = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| {
            spec.tolerations.iter().flatten().any(|tol| {
                let key_ok =
                    tol.key.as_deref().is_none_or(|k| k == t.key) || tol.key.as_deref() == Some("");
                let effect_ok = tol
                    .effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == t.effect);
                let value_ok = tol.operator.as_deref() == Some("Exists")
                    || tol.value.as_deref().unwrap_or_default()
                        == t.value.as_deref().unwrap_or_default();
                key_ok && effect_ok && value_ok
            })
        });
    let capacity = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref()?.get("cpu"))
        .map(millicpu)
        .unwrap_or(0);
    selected && tolerated && used + requested_millicpu(pod) <= capacity
}

impl Binder {
    /// Starts binding, every 200 ms. Refuses a real cluster (its scheduler
    /// binds, and it forbids changing `spec.nodeName`).
    pub fn start(env: &crate::kube_env::KubeEnv) -> Binder {
        assert!(
            env.local().is_some(),
            "the binder is for the test API server only"
        );
        let client = env.client.clone();
        let task = tokio::spawn(async move {
            loop {
                bind_pending(&client).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Binder { task }
    }

    /// Stops.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn bind_pending(client: &kube::Client) {
    let (Ok(nodes), Ok(pods)) = (
        Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await,
        Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await,
    ) else {
        return;
    };
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    for p in &pods.items {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *used.entry(n).or_default() += requested_millicpu(p);
        }
    }
    for p in pods.items.iter().filter(|p| {
        p.spec.as_ref().is_some_and(|s| s.node_name.is_none())
            && p.metadata.deletion_timestamp.is_none()
    }) {
        let Some(node) = nodes.items.iter().find(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true)
                && fits(p, n, used.get(&name).copied().unwrap_or(0))
        }) else {
            // As kube-scheduler does: say it does not fit.
            let unschedulable = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                    })
                });
            if !unschedulable {
                let api = Api::<Pod>::namespaced(
                    client.clone(),
                    p.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let status = json!({ "status": { "phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0 nodes are available (fake binder)" }] } });
                let _ = api
                    .patch_status(
                        p.metadata.name.as_deref().unwrap_or_default(),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await;
            }
            continue;
        };
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let api = Api::<Pod>::namespaced(
            client.clone(),
            p.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = json!({ "spec": { "nodeName": node_name } });
        if api
            .patch(
                p.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .is_ok()
        {
            *used.entry(node_name).or_default() += requested_millicpu(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_env::{KubeEnv, eventually};

    fn pod(name: &str, cpu: &str, extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10",
                                        "resources": { "requests": { "cpu": cpu } } }] },
        });
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    async fn node_of(api: &Api<Pod>, name: &str) -> Option<String> {
        api.get(name).await.unwrap().spec?.node_name
    }

    /// Runs on the test API server (with the binder) and unchanged on a
    /// real cluster (its scheduler binds).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fake_kubelet_runs_pods_and_ends_their_deletion() {
        let env = KubeEnv::new("fake-kubelet").await;
        let kubelet = FakeKubelet::start(env.client.clone()).await;
        let binder = env.local().map(|_| Binder::start(&env));
        let mut node = FakeNode::new(&format!("{}-n1", env.ns), "us-east-1a");
        node.labels
            .insert("clusterctl.io/test-node".into(), env.ns.clone());
        kubelet.add(node.clone()).await;
        let nodes = Api::<Node>::all(env.client.clone());
        let n = nodes.get(&node.name).await.unwrap();
        assert_eq!(
            n.spec.as_ref().unwrap().provider_id.as_deref(),
            Some(format!("aws:///us-east-1a/{}", node.instance_id).as_str())
        );
        let ready = n.status.unwrap().conditions.unwrap();
        assert!(
            ready
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
        eventually("the node Lease is renewed", || async {
            Api::<Lease>::namespaced(env.client.clone(), LEASE_NS)
                .get_opt(&node.name)
                .await
                .unwrap()
                .is_some()
        })
        .await;

        let pods: Api<Pod> = env.api();
        let p = pod(
            "p",
            "100m",
            json!({ "spec": { "nodeSelector": { "clusterctl.io/test-node": env.ns } } }),
        );
        pods.create(&PostParams::default(), &p).await.unwrap();
        eventually("the pod runs on the fake node", || async {
            let got = pods.get("p").await.unwrap();
            got.spec.and_then(|s| s.node_name).as_deref() == Some(node.name.as_str())
                && got.status.and_then(|s| s.phase).as_deref() == Some("Running")
        })
        .await;
        // Graceful deletion: terminating until the kubelet ends it.
        pods.delete("p", &DeleteParams::default().grace_period(30))
            .await
            .unwrap();
        eventually("the kubelet ends the pod's deletion", || async {
            pods.get_opt("p").await.unwrap().is_none()
        })
        .await;
        if let Some(b) = binder {
            b.stop();
        }
        kubelet.stop().await;
        eventually("the node is gone", || async {
            nodes.get_opt(&node.name).await.unwrap().is_none()
        })
        .await;
        env.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_binder_respects_requests_selectors_and_taints() {
        let env = KubeEnv::new("binder").await;
        if env.local().is_none() {
            // A real cluster's scheduler binds; the binder refuses to run.
            return env.cleanup().await;
        }
        let kubelet = FakeKubelet::start(env.client.clone()).await;
        let mut a = FakeNode::new("a", "us-east-1a");
        a.labels.insert("zone-name".into(), "a".into());
        let mut b = FakeNode::new("b", "us-east-1b");
        b.taints
            .push(("dedicated".into(), "x".into(), "NoSchedule".into()));
        kubelet.add(a).await;
        kubelet.add(b).await;
        let binder = Binder::start(&env);
        let pods: Api<Pod> = env.api();
        for p in [
            pod("big", "1500m", json!({})),
            pod(
                "tolerant",
                "1000m",
                json!({ "spec": { "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule" }] } }),
            ),
        ] {
            pods.create(&PostParams::default(), &p).await.unwrap();
        }
        eventually("both bound", || async {
            node_of(&pods, "big").await.is_some() && node_of(&pods, "tolerant").await.is_some()
        })
        .await;
        assert_eq!(node_of(&pods, "big").await.as_deref(), Some("a"));
        for p in [
            // a has 500m left and b is tainted: nowhere.
            pod("too-big", "1000m", json!({})),
            // Only b's zone, but it does not carry the label.
            pod(
                "selective",
                "100m",
                json!({ "spec": { "nodeSelector": { "zone-name": "b" } } }),
            ),
        ] {
            pods.create(&PostParams::default(), &p).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(node_of(&pods, "too-big").await, None);
        assert_eq!(node_of(&pods, "selective").await, None);
        binder.stop();
        kubelet.stop().await;
        env.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fake_kubelet_follows_moto_instances() {
        let Some(moto) = crate::moto::Moto::start() else {
            return;
        };
        let env = KubeEnv::new("kubelet-moto").await;
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1").await);
        let tag = format!("kubelet-{}", env.ns);
        let run = ec2
            .run_instances()
            .image_id("ami-0a1b2c3d4e5f60718")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
            .min_count(2)
            .max_count(2)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("test")
                            .value(&tag)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let ids: Vec<String> = run
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        let kubelet = FakeKubelet::start(env.client.clone()).await;
        let names = kubelet
            .follow_instances(&ec2, ("test", &tag), &env.ns)
            .await;
        assert_eq!(names.len(), 2, "{names:?}");
        let nodes = Api::<Node>::all(env.client.clone());
        for id in &ids {
            let n = nodes.get(&format!("{}-{id}", env.ns)).await.unwrap();
            let pid = n.spec.unwrap().provider_id.unwrap();
            assert!(
                pid.starts_with("aws:///us-east-1") && pid.ends_with(id.as_str()),
                "{pid}"
            );
        }
        ec2.terminate_instances()
            .instance_ids(&ids[0])
            .send()
            .await
            .unwrap();
        let names = kubelet
            .follow_instances(&ec2, ("test", &tag), &env.ns)
            .await;
        assert_eq!(names, [format!("{}-{}", env.ns, ids[1])]);
        assert!(
            nodes
                .get_opt(&format!("{}-{}", env.ns, ids[0]))
                .await
                .unwrap()
                .is_none()
        );
        kubelet.stop().await;
        env.cleanup().await;
    }
}
