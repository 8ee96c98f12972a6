//! From the cluster's objects (the runtime's caches) to the snapshot the
//! decision reads: pure conversions, each tested on its own.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::fit::ZONE_LABEL;
use super::model::{
    Controller, DaemonSetInfo, NodeInfo, PdbInfo, PodInfo, Requirement, Taint, Toleration,
};
use super::resources::{Resources, quantity};
use crate::controllers::runtime::slim::{SlimContainer, SlimPod};

/// The annotation that says whether a pod may be evicted for scale-down.
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// The annotation the kubelet puts on mirror pods.
pub const MIRROR: &str = "kubernetes.io/config.mirror";

fn resources(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let get = |k: &str, milli: bool| {
        map.and_then(|m| m.get(k))
            .and_then(|q| quantity(&q.0, milli))
            .unwrap_or(0)
    };
    Resources {
        cpu_m: get("cpu", true),
        memory: get("memory", false),
        pods: get("pods", false),
        ephemeral: get("ephemeral-storage", false),
    }
}

fn container_requests(cs: &[SlimContainer]) -> Vec<Resources> {
    cs.iter()
        .map(|c| resources(Some(&c.resources.requests)))
        .collect()
}

/// A pod's requests as the scheduler counts them: its containers summed,
/// or the largest init container when that is larger; one pod slot.
pub fn pod_requests(p: &SlimPod) -> Resources {
    let sum = container_requests(&p.spec.containers)
        .into_iter()
        .fold(Resources::default(), |a, b| a + b);
    let init = container_requests(&p.spec.init_containers);
    let max = |f: fn(&Resources) -> i64| init.iter().map(f).max().unwrap_or(0);
    Resources {
        cpu_m: sum.cpu_m.max(max(|r| r.cpu_m)),
        memory: sum.memory.max(max(|r| r.memory)),
        pods: 1,
        ephemeral: sum.ephemeral.max(max(|r| r.ephemeral)),
    }
}

fn toleration(t: &k8s_openapi::api::core::v1::Toleration) -> Toleration {
    Toleration {
        key: t.key.clone(),
        operator: t.operator.clone(),
        value: t.value.clone(),
        effect: t.effect.clone(),
    }
}

/// The zone of a pod's bound volumes (the first one with a zone).
pub fn volume_zone(
    p: &SlimPod,
    claims: &BTreeMap<(String, String), PersistentVolumeClaim>,
    volumes: &BTreeMap<String, PersistentVolume>,
) -> Option<String> {
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    p.spec.volumes.iter().find_map(|v| {
        let claim = claims.get(&(
            ns.clone(),
            v.persistent_volume_claim.as_ref()?.claim_name.clone(),
        ))?;
        let pv = volumes.get(claim.spec.as_ref()?.volume_name.as_ref()?)?;
        if let Some(z) = pv.metadata.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)) {
            return Some(z.clone());
        }
        pv.spec
            .as_ref()?
            .node_affinity
            .as_ref()?
            .required
            .as_ref()?
            .node_selector_terms
            .iter()
            .flat_map(|t| t.match_expressions.iter().flatten())
            .find(|e| e.key == ZONE_LABEL && e.operator == "In")
            .and_then(|e| e.values.as_ref()?.first().cloned())
    })
}

/// A pod as the decision sees it.
pub fn pod_info(
    p: &SlimPod,
    claims: &BTreeMap<(String, String), PersistentVolumeClaim>,
    volumes: &BTreeMap<String, PersistentVolume>,
) -> PodInfo {
    let annotations = p.metadata.annotations.clone().unwrap_or_default();
    let controller = if annotations.contains_key(MIRROR) {
        Controller::Mirror
    } else {
        match p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        {
            None => Controller::None,
            Some(o) if o.kind == "DaemonSet" => Controller::DaemonSet,
            Some(o) if o.kind == "Node" => Controller::Mirror,
            Some(_) => Controller::Replicated,
        }
    };
    let affinity = p
        .spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|sel| {
            sel.node_selector_terms
                .iter()
                .map(|t| {
                    t.match_expressions
                        .iter()
                        .flatten()
                        .map(|e| Requirement {
                            key: e.key.clone(),
                            operator: e.operator.clone(),
                            values: e.values.clone().unwrap_or_default(),
                        })
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let phase = p.status.phase.as_deref();
    PodInfo {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        node: p.spec.node_name.clone().filter(|n| !n.is_empty()),
        requests: pod_requests(p),
        labels: p.metadata.labels.clone().unwrap_or_default(),
        node_selector: p.spec.node_selector.clone(),
        affinity,
        tolerations: p.spec.tolerations.iter().map(toleration).collect(),
        volume_zone: volume_zone(p, claims, volumes),
        controller,
        local_storage: p.spec.volumes.iter().any(|v| {
            v.host_path.is_some()
                || v.empty_dir
                    .as_ref()
                    .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
        }),
        safe_to_evict: annotations.get(SAFE_TO_EVICT).map(|v| v == "true"),
        unschedulable: p.status.conditions.iter().any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        }),
        finished: matches!(phase, Some("Succeeded" | "Failed"))
            || p.metadata.deletion_timestamp.is_some(),
    }
}

/// An API timestamp as the decision's clock type.
fn chrono_of(t: k8s_openapi::jiff::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

/// A node as the decision sees it.
pub fn node_info(n: &Node) -> NodeInfo {
    let status = n.status.clone().unwrap_or_default();
    let spec = n.spec.clone().unwrap_or_default();
    NodeInfo {
        name: n.metadata.name.clone().unwrap_or_default(),
        provider_id: spec.provider_id.clone(),
        private_dns: status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == "InternalDNS")
            .or_else(|| {
                status
                    .addresses
                    .iter()
                    .flatten()
                    .find(|a| a.type_ == "Hostname")
            })
            .map(|a| a.address.clone()),
        labels: n.metadata.labels.clone().unwrap_or_default(),
        taints: spec
            .taints
            .iter()
            .flatten()
            .map(|t| Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
            })
            .collect(),
        allocatable: resources(status.allocatable.as_ref()),
        ready: status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        unschedulable: spec.unschedulable == Some(true),
        deleting: n.metadata.deletion_timestamp.is_some(),
        created: n
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| chrono_of(t.0)),
        ready_changed: status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(|t| chrono_of(t.0)),
    }
}

/// A PDB as the decision sees it (matchLabels and matchExpressions).
pub fn pdb_info(b: &PodDisruptionBudget) -> PdbInfo {
    let selector = b
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    PdbInfo {
        namespace: b.metadata.namespace.clone().unwrap_or_default(),
        name: b.metadata.name.clone().unwrap_or_default(),
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .iter()
            .flatten()
            .map(|e| Requirement {
                key: e.key.clone(),
                operator: e.operator.clone(),
                values: e.values.clone().unwrap_or_default(),
            })
            .collect(),
        disruptions_allowed: b
            .status
            .as_ref()
            .map(|s| i64::from(s.disruptions_allowed))
            .unwrap_or(0),
    }
}

/// A DaemonSet's pod as the decision sees it.
pub fn daemonset_info(d: &DaemonSet) -> DaemonSetInfo {
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let mut requests = pod
        .containers
        .iter()
        .map(|c| resources(c.resources.as_ref().and_then(|r| r.requests.as_ref())))
        .fold(Resources::default(), |a, b| a + b);
    requests.pods = 1;
    DaemonSetInfo {
        name: d.metadata.name.clone().unwrap_or_default(),
        requests,
        node_selector: pod.node_selector.clone().unwrap_or_default(),
        tolerations: pod.tolerations.iter().flatten().map(toleration).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slim(v: serde_json::Value) -> SlimPod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pods_become_what_the_decision_reads() {
        let none = (BTreeMap::new(), BTreeMap::new());
        type Row = (
            &'static str,
            serde_json::Value,
            Box<dyn Fn(&PodInfo) -> bool>,
        );
        let table: Vec<Row> = vec![
            (
                "requests sum, one pod slot",
                serde_json::json!({ "metadata": { "name": "p" }, "spec": { "containers": [
                { "resources": { "requests": { "cpu": "250m", "memory": "1Gi" } } },
                { "resources": { "requests": { "cpu": "250m", "memory": "512Mi" } } } ] } }),
                Box::new(|p| {
                    p.requests
                        == Resources {
                            cpu_m: 500,
                            memory: 1536 << 20,
                            pods: 1,
                            ephemeral: 0,
                        }
                }),
            ),
            (
                "a larger init container counts instead",
                serde_json::json!({ "metadata": { "name": "p" }, "spec": {
                "initContainers": [{ "resources": { "requests": { "cpu": "2" } } }],
                "containers": [{ "resources": { "requests": { "cpu": "500m" } } }] } }),
                Box::new(|p| p.requests.cpu_m == 2000),
            ),
            (
                "no owner: no controller",
                serde_json::json!({ "metadata": { "name": "p" } }),
                Box::new(|p| p.controller == Controller::None),
            ),
            (
                "a ReplicaSet controls it",
                serde_json::json!({ "metadata": { "name": "p", "ownerReferences": [
                { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true } ] } }),
                Box::new(|p| p.controller == Controller::Replicated),
            ),
            (
                "a DaemonSet's pod",
                serde_json::json!({ "metadata": { "name": "p", "ownerReferences": [
                { "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true } ] } }),
                Box::new(|p| p.controller == Controller::DaemonSet),
            ),
            (
                "a mirror pod",
                serde_json::json!({ "metadata": { "name": "p", "annotations": { "kubernetes.io/config.mirror": "x" } } }),
                Box::new(|p| p.controller == Controller::Mirror),
            ),
            (
                "emptyDir on disk is local storage",
                serde_json::json!({ "metadata": { "name": "p" }, "spec": { "volumes": [{ "name": "s", "emptyDir": {} }] } }),
                Box::new(|p| p.local_storage),
            ),
            (
                "emptyDir in memory is not",
                serde_json::json!({ "metadata": { "name": "p" }, "spec": { "volumes": [{ "name": "s", "emptyDir": { "medium": "Memory" } }] } }),
                Box::new(|p| !p.local_storage),
            ),
            (
                "hostPath is",
                serde_json::json!({ "metadata": { "name": "p" }, "spec": { "volumes": [{ "name": "h", "hostPath": { "path": "/x" } }] } }),
                Box::new(|p| p.local_storage),
            ),
            (
                "safe-to-evict annotations",
                serde_json::json!({ "metadata": { "name": "p", "annotations": { "cluster-autoscaler.kubernetes.io/safe-to-evict": "false" } } }),
                Box::new(|p| p.safe_to_evict == Some(false)),
            ),
            (
                "unschedulable by the scheduler",
                serde_json::json!({ "metadata": { "name": "p" }, "status": { "phase": "Pending",
                "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable" }] } }),
                Box::new(|p| p.unschedulable && !p.finished),
            ),
            (
                "finished pods",
                serde_json::json!({ "metadata": { "name": "p" }, "status": { "phase": "Succeeded" } }),
                Box::new(|p| p.finished),
            ),
            (
                "terminating pods",
                serde_json::json!({ "metadata": { "name": "p", "deletionTimestamp": "2026-12-02T12:00:00Z" } }),
                Box::new(|p| p.finished),
            ),
            (
                "required node affinity",
                serde_json::json!({ "metadata": { "name": "p" }, "spec": { "affinity": { "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                    { "matchExpressions": [{ "key": "disk", "operator": "In", "values": ["ssd"] }] } ] } } } } }),
                Box::new(|p| {
                    p.affinity
                        == vec![vec![Requirement {
                            key: "disk".into(),
                            operator: "In".into(),
                            values: vec!["ssd".into()],
                        }]]
                }),
            ),
        ];
        for (name, v, check) in table {
            let info = pod_info(&slim(v), &none.0, &none.1);
            assert!(check(&info), "{name}: {info:?}");
        }
    }

    #[test]
    fn a_claim_pins_its_pod_to_the_volume_zone() {
        let pod = slim(
            serde_json::json!({ "metadata": { "name": "db-0", "namespace": "shop" },
            "spec": { "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "data-db-0" } }] } }),
        );
        let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "data-db-0", "namespace": "shop" }, "spec": { "volumeName": "pv-1" } })).unwrap();
        let by_label: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "pv-1", "labels": { "topology.kubernetes.io/zone": "eu-west-1b" } } })).unwrap();
        let by_affinity: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "pv-1" }, "spec": { "nodeAffinity": { "required": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1c"] }] } ] } } } })).unwrap();
        let claims = BTreeMap::from([(("shop".to_string(), "data-db-0".to_string()), claim)]);
        for (pv, zone) in [(by_label, "eu-west-1b"), (by_affinity, "eu-west-1c")] {
            let pvs = BTreeMap::from([("pv-1".to_string(), pv)]);
            assert_eq!(volume_zone(&pod, &claims, &pvs).as_deref(), Some(zone));
        }
        assert_eq!(volume_zone(&pod, &claims, &BTreeMap::new()), None);
    }

    #[test]
    fn nodes_pdbs_and_daemonsets() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "ip-10-0-1-5.ec2.internal", "creationTimestamp": "2026-01-02T03:04:05Z",
                          "labels": { "topology.kubernetes.io/zone": "eu-west-1a" } },
            "spec": { "providerID": "aws:///eu-west-1a/i-0abc", "unschedulable": true,
                      "taints": [{ "key": "dedicated", "value": "gpu", "effect": "NoSchedule" }] },
            "status": { "allocatable": { "cpu": "1930m", "memory": "3Gi", "pods": "110", "ephemeral-storage": "18Gi" },
                        "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:35Z" }],
                        "addresses": [{ "type": "Hostname", "address": "h" }, { "type": "InternalDNS", "address": "ip-10-0-1-5.ec2.internal" }] },
        })).unwrap();
        let i = node_info(&n);
        assert_eq!(
            i.allocatable,
            Resources {
                cpu_m: 1930,
                memory: 3 << 30,
                pods: 110,
                ephemeral: 18 << 30
            }
        );
        assert!(i.ready && i.unschedulable && !i.deleting);
        assert_eq!(
            i.created.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-02T03:04:05+00:00")
        );
        assert_eq!(
            i.ready_changed.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-02T03:04:35+00:00")
        );
        assert_eq!(i.private_dns.as_deref(), Some("ip-10-0-1-5.ec2.internal"));
        assert_eq!(i.taints[0].value.as_deref(), Some("gpu"));

        let b: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web", "namespace": "shop" },
            "spec": { "selector": { "matchLabels": { "app": "web" }, "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["front"] }] } },
            "status": { "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3 },
        })).unwrap();
        let p = pdb_info(&b);
        assert_eq!(p.disruptions_allowed, 1);
        assert_eq!(p.match_expressions.len(), 1);

        let d: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "cilium" },
            "spec": { "selector": {}, "template": { "spec": {
                "nodeSelector": { "kubernetes.io/os": "linux" },
                "tolerations": [{ "operator": "Exists" }],
                "containers": [{ "name": "agent", "image": "x", "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } } }] } } },
        })).unwrap();
        let ds = daemonset_info(&d);
        assert_eq!(
            ds.requests,
            Resources {
                cpu_m: 100,
                memory: 128 << 20,
                pods: 1,
                ephemeral: 0
            }
        );
        assert_eq!(ds.tolerations[0].operator.as_deref(), Some("Exists"));
    }
}
