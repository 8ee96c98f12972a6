//! What the node autoscaler decides from: a snapshot of the cluster and its
//! Auto Scaling groups, plain data (serde, so `simulate` reads a recorded
//! one), and the memory it keeps between passes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::resources::Resources;

/// A taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// A toleration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Toleration {
    /// Key (none: every key, with operator Exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Equal (default) or Exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect (none: every effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// One requirement of a required node affinity term.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist, Gt, Lt.
    pub operator: String,
    /// Values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A node as the autoscaler sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// `aws:///<zone>/<instance-id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Its InternalDNS / Hostname address (the fallback mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Allocatable.
    pub allocatable: Resources,
    /// Ready condition true.
    #[serde(default = "yes")]
    pub ready: bool,
    /// Cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// Being deleted.
    #[serde(default)]
    pub deleting: bool,
    /// When the Node was created (registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// When its Ready condition last changed (None: no Ready condition yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_changed: Option<DateTime<Utc>>,
}

impl NodeInfo {
    /// Whether the node is still starting at `now`: registered, not ready,
    /// never ready since it registered (no Ready condition, or one that has
    /// not changed since it was first set, within
    /// [`STATUS_DELAY_AFTER_CREATION`] of the registration), and registered
    /// less than `provision_time` ago. A kubelet registers its Node before
    /// the node is Ready (CNI, images); such a node is capacity on its way,
    /// as an instance that has not registered yet is, not an unready node.
    pub fn starting(&self, now: DateTime<Utc>, provision_time: chrono::Duration) -> bool {
        if self.ready {
            return false;
        }
        let Some(created) = self.created else {
            return false;
        };
        let never_ready = match self.ready_changed {
            None => true,
            Some(t) => t - created < STATUS_DELAY_AFTER_CREATION,
        };
        never_ready && now - created < provision_time
    }
}

/// How long after registering a kubelet may take to set the Ready
/// condition for the first time (cluster-autoscaler uses 2 minutes).
pub const STATUS_DELAY_AFTER_CREATION: chrono::Duration = chrono::Duration::minutes(2);

fn yes() -> bool {
    true
}

/// What controls a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Controller {
    /// No owner.
    None,
    /// A DaemonSet (never blocks, never moves).
    DaemonSet,
    /// A static pod mirrored from a node's kubelet.
    Mirror,
    /// A ReplicaSet, StatefulSet, Job or other controller.
    Replicated,
}

/// A pod as the autoscaler sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Requests (containers summed; init containers' maximum when larger).
    #[serde(default)]
    pub requests: Resources,
    /// Labels (PDB selection).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// nodeSelector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity: terms (any) of requirements (all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<Vec<Requirement>>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// The zone of a zonal volume it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_zone: Option<String>,
    /// Its controller.
    #[serde(default = "replicated")]
    pub controller: Controller,
    /// Uses local storage (emptyDir not in memory, hostPath).
    #[serde(default)]
    pub local_storage: bool,
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_to_evict: Option<bool>,
    /// PodScheduled=False with reason Unschedulable.
    #[serde(default)]
    pub unschedulable: bool,
    /// Succeeded, Failed, or being deleted: occupies nothing for long.
    #[serde(default)]
    pub finished: bool,
}

fn replicated() -> Controller {
    Controller::Replicated
}

/// A PodDisruptionBudget: which pods, and how many may go now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// matchLabels (an empty selector matches every pod of the namespace,
    /// as in policy/v1).
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// matchExpressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
    /// status.disruptionsAllowed.
    pub disruptions_allowed: i64,
}

/// A DaemonSet's pod, for the overhead on new nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetInfo {
    /// Name.
    pub name: String,
    /// Its pod's requests.
    pub requests: Resources,
    /// nodeSelector.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}

/// One instance of an Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Private DNS name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns: Option<String>,
}

/// One Auto Scaling group: a node group's share in one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneAsg {
    /// ASG name.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// MinSize.
    pub min: i64,
    /// MaxSize.
    pub max: i64,
    /// DesiredCapacity.
    pub desired: i64,
    /// Its instances (InService or Pending).
    #[serde(default)]
    pub instances: Vec<Instance>,
}

/// What a new node of a group looks like (scale from zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Instance type.
    pub instance_type: String,
    /// Allocatable (capacity less the kubelet's reservations).
    pub allocatable: Resources,
    /// Labels (from the node-template label tags and the well-known ones).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints (from the node-template taint tags).
    #[serde(default)]
    pub taints: Vec<Taint>,
}

/// A node group: an instance group's ASGs, one per zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The instance group.
    pub name: String,
    /// Its ASGs.
    pub zones: Vec<ZoneAsg>,
    /// Its new nodes.
    pub template: Template,
    /// Priority for the priority expander (higher wins).
    #[serde(default)]
    pub priority: i64,
}

/// A scaling activity that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedActivity {
    /// The ASG.
    pub asg: String,
    /// AWS's status message.
    pub message: String,
    /// When it ended.
    pub at: DateTime<Utc>,
}

/// What the autoscaler remembers between passes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Since when each node has been below the utilization threshold.
    #[serde(default)]
    pub unneeded_since: BTreeMap<String, DateTime<Utc>>,
    /// The last scale-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_up: Option<DateTime<Utc>>,
    /// The last scale-down that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_scale_down: Option<DateTime<Utc>>,
    /// ASGs backed off after a capacity failure, until when.
    #[serde(default)]
    pub backoff: BTreeMap<String, DateTime<Utc>>,
    /// Failed activities already acted on (ASG and time).
    #[serde(default)]
    pub seen_failures: BTreeMap<String, DateTime<Utc>>,
}

/// Everything one decision reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Now.
    pub now: DateTime<Utc>,
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
    /// Pods.
    #[serde(default)]
    pub pods: Vec<PodInfo>,
    /// PodDisruptionBudgets.
    #[serde(default)]
    pub pdbs: Vec<PdbInfo>,
    /// DaemonSets.
    #[serde(default)]
    pub daemonsets: Vec<DaemonSetInfo>,
    /// Node groups.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Recent failed scaling activities.
    #[serde(default)]
    pub failures: Vec<FailedActivity>,
    /// Memory from the last pass.
    #[serde(default)]
    pub memory: Memory,
}
