//! Slim objects for caches of many: a Pod that decodes only what the
//! components read (placement, requests, volumes' kinds, phase and
//! conditions, owners). The watch decodes straight into it, so the rest of
//! a Pod is never allocated: `k8s_openapi`'s full Pod costs several KB per
//! object even when stripped (see `scripts/bench controller`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Pod with the fields components read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimPod {
    /// Metadata (strip it with [`super::cache::strip_meta`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: SlimPodSpec,
    /// Status.
    #[serde(default)]
    pub status: SlimPodStatus,
}

/// The spec's scheduling and storage fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodSpec {
    /// The node it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Containers (requests only).
    #[serde(default)]
    pub containers: Vec<SlimContainer>,
    /// Init containers (requests only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<SlimContainer>,
    /// nodeSelector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Box<Affinity>>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Volumes (their kinds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<SlimVolume>,
}

/// A container's requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimContainer {
    /// Resources.
    #[serde(default)]
    pub resources: SlimResources,
}

/// Requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimResources {
    /// Requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
}

/// A volume: which kind it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimVolume {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// An emptyDir (its medium).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<SlimEmptyDir>,
    /// A hostPath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<SlimHostPath>,
    /// A claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<SlimClaim>,
}

/// emptyDir's medium.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimEmptyDir {
    /// "" (disk) or Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
}

/// hostPath's path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimHostPath {
    /// Path.
    #[serde(default)]
    pub path: String,
}

/// A claim's name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimClaim {
    /// Claim name.
    #[serde(default)]
    pub claim_name: String,
}

/// Phase and conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimPodStatus {
    /// Phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Reason (Evicted, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SlimCondition>,
}

/// A condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimCondition {
    /// Type (Ready, PodScheduled, …).
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False, Unknown.
    pub status: String,
    /// Reason (Unschedulable, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Strips a slim pod's metadata (managedFields, large annotations).
pub fn strip_slim_pod(p: &mut SlimPod) {
    super::cache::strip_meta(&mut p.metadata);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pod_decodes_into_the_slim_one() {
        let full = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "namespace": "n", "labels": { "app": "a" },
                          "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true }] },
            "spec": {
                "nodeName": "node-1",
                "nodeSelector": { "disk": "ssd" },
                "containers": [{ "name": "c", "image": "i", "env": [{ "name": "A", "value": "1" }],
                                 "resources": { "requests": { "cpu": "100m", "memory": "1Gi" }, "limits": { "memory": "2Gi" } } }],
                "tolerations": [{ "key": "k", "operator": "Exists" }],
                "volumes": [{ "name": "scratch", "emptyDir": {} }, { "name": "data", "persistentVolumeClaim": { "claimName": "data-0" } }],
                "serviceAccountName": "sa",
            },
            "status": { "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes" }] },
        });
        let p: SlimPod = serde_json::from_value(full).unwrap();
        assert_eq!(p.spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(p.spec.containers[0].resources.requests["cpu"].0, "100m");
        assert_eq!(
            p.spec.volumes[1]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data-0"
        );
        assert!(p.spec.volumes[0].empty_dir.is_some());
        assert_eq!(
            p.status.conditions[0].reason.as_deref(),
            Some("Unschedulable")
        );
        assert_eq!(
            p.metadata.owner_references.as_ref().unwrap()[0].kind,
            "ReplicaSet"
        );
    }
}
