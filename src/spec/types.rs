//! The versioned spec types (`apiVersion: clusterctl.io/v1alpha1`): one
//! `Cluster` document and one or more `InstanceGroup` documents, modelled on
//! kops. Optional fields are filled in by [`super::defaults`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only API version this build reads.
pub const API_VERSION: &str = "clusterctl.io/v1alpha1";

/// Object metadata: only the name is meaningful.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object name (DNS-1123).
    pub name: String,
    /// Free-form labels, carried through unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The `Cluster` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `Cluster`.
    pub kind: String,
    /// The cluster name is a DNS subdomain such as `prod.example.com`.
    pub metadata: ObjectMeta,
    /// The cluster spec.
    pub spec: ClusterSpec,
}

/// Network topology: where nodes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every instance in a public subnet with a public IP.
    Public,
    /// Instances in private subnets behind a NAT gateway per zone; load
    /// balancers and NAT gateways in utility subnets.
    Private,
}

/// The pod network (CNI) installed with the addons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    /// Cilium, with Kubernetes host-scope IPAM (each node's pod range from
    /// `podCIDR`) and VXLAN between nodes.
    Cilium,
    /// None: the user installs one (nodes stay NotReady until then).
    None,
}

/// The kind of a subnet, as kops names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SubnetType {
    /// Routed to the internet gateway; instances get public IPs.
    Public,
    /// Routed through the zone's NAT gateway.
    Private,
    /// Public subnet for load balancers and NAT gateways in private topology.
    Utility,
}

/// One subnet in one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubnetSpec {
    /// Subnet name, unique in the cluster (defaults to `<type>-<zone>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Availability zone.
    pub zone: String,
    /// Subnet type.
    #[serde(rename = "type")]
    pub kind: SubnetType,
    /// CIDR; allocated deterministically inside networkCIDR when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
}

/// How the Kubernetes API is reached.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiAccessSpec {
    /// Public DNS name of the API (defaults to `api.<cluster>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_name: Option<String>,
    /// `Public` (internet-facing NLB) or `Internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerType>,
    /// Listener port (defaults to 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Load balancer scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadBalancerType {
    /// internet-facing
    Public,
    /// internal
    Internal,
}

/// The cluster spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Availability zones in the region.
    pub zones: Vec<String>,
    /// VPC CIDR (defaults to 10.0.0.0/16).
    #[serde(
        default,
        rename = "networkCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub network_cidr: Option<String>,
    /// The pods' addresses, outside the VPC (defaults to 100.96.0.0/11, as
    /// kops'); each node gets a /24 of it.
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// The Services' cluster IPs (defaults to 100.64.0.0/13, as kops').
    #[serde(
        default,
        rename = "serviceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidr: Option<String>,
    /// The pod network installed with the addons (defaults to cilium).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<Cni>,
    /// Network topology (defaults to public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
    /// Subnets; one per zone and type by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubnetSpec>,
    /// Kubernetes version, e.g. `1.33.2` (a bare number such as `1.33` is
    /// read as text so that validation can say what is wrong with it).
    #[serde(deserialize_with = "string_or_number")]
    pub kubernetes_version: String,
    /// Route53 hosted zone that holds the API record.
    pub dns_zone: String,
    /// API access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiAccessSpec>,
    /// EC2 key pair name for SSH (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_name: Option<String>,
    /// CIDRs allowed to SSH to instances (defaults to none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_access: Option<Vec<String>>,
    /// CIDRs allowed to reach the Kubernetes API (defaults to 0.0.0.0/0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_api_access: Option<Vec<String>>,
    /// State store, `s3://bucket/prefix`.
    pub state_store: String,
    /// Addons to install from the catalogue in `addons/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<Vec<String>>,
    /// Tags put on every AWS resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// In-cluster clusterctl components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentsSpec>,
}

/// Settings of the in-cluster clusterctl components.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentsSpec {
    /// Container image of the clusterctl binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Multi-AZ node autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_autoscaler: Option<NodeAutoscalerComponent>,
    /// RabbitMQ queue-driven pod autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_autoscaler: Option<SimpleComponent>,
    /// Janitor CronJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub janitor: Option<ScheduledComponent>,
    /// Node cleanup DaemonSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_cleanup: Option<NodeCleanupComponent>,
    /// Branch preview garbage collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewComponent>,
}

/// A component with only an on/off switch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SimpleComponent {
    /// Install it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Node autoscaler settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAutoscalerComponent {
    /// Install it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Loop interval, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_interval: Option<String>,
    /// Requested-utilization threshold below which a node may be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_utilization_threshold: Option<f64>,
}

/// A CronJob component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduledComponent {
    /// Install it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Five-field cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The janitor: how long finished Jobs are kept (`--job-ttl`), e.g.
    /// `7d`. Preview GC: the TTL of a preview that names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<String>,
}

/// Node cleanup settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeCleanupComponent {
    /// Install it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Interval between sweeps, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Disk usage (percent) above which images are pruned; stays below the
    /// kubelet's 85% image GC threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_threshold_percent: Option<u8>,
}

/// Preview environment settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreviewComponent {
    /// Install the preview garbage collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// DNS zone previews live under, e.g. `preview.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Five-field cron expression of the garbage collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_schedule: Option<String>,
    /// Time to live of a preview after its last deploy, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<String>,
}

/// The `InstanceGroup` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceGroup {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `InstanceGroup`.
    pub kind: String,
    /// The group name (DNS-1123 label).
    pub metadata: ObjectMeta,
    /// The group spec.
    pub spec: InstanceGroupSpec,
}

/// Instance group role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Runs the control plane (and etcd).
    ControlPlane,
    /// Runs workloads.
    Node,
}

/// Spot and mixed instance settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MixedInstancesPolicy {
    /// Instance types, in priority order.
    #[serde(default)]
    pub instances: Vec<String>,
    /// On-demand instances before any spot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_base: Option<u32>,
    /// Percentage of on-demand above the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_above_base: Option<u32>,
    /// Spot allocation strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_allocation_strategy: Option<String>,
}

/// Node autoscaler settings of one group.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupAutoscalerSpec {
    /// Let the node autoscaler manage this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Keep the per-zone ASGs of this group balanced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_zones: Option<bool>,
    /// Priority expander weight; higher is preferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// The instance group spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceGroupSpec {
    /// ControlPlane or Node.
    pub role: Role,
    /// EC2 instance type.
    pub machine_type: String,
    /// AMI id (`ami-…`) or `owner/name-pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Minimum size over all zones.
    pub min_size: u32,
    /// Maximum size over all zones.
    pub max_size: u32,
    /// Zones (defaults to all cluster zones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
    /// Root volume size in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume_size: Option<u32>,
    /// Root volume type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume_type: Option<String>,
    /// Spot maximum price (USD per hour); spot when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<String>,
    /// Mixed instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixed_instances_policy: Option<MixedInstancesPolicy>,
    /// Labels on the Kubernetes nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, String>,
    /// Taints, `key=value:Effect` or `key:Effect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<String>,
    /// Extra AWS tags on the group's instances.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cloud_labels: BTreeMap<String, String>,
    /// Node autoscaler settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<GroupAutoscalerSpec>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
        Raw::F(f) => f.to_string(),
    })
}
