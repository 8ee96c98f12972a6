//! The desired-state model: the spec turned, once, into a graph of AWS
//! resources (type, label, AWS name, properties, references, tags). Every
//! target (Terraform files, the direct AWS target) reads this one model.

pub mod attrs;
mod build;
pub mod iam;
pub mod naming;
mod nodeup;

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::resource::Kind;

pub use build::{build, state_location};

/// Errors building the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The node bootstrap script template failed to render.
    #[error("rendering the user data of instance group {group}: {source}")]
    UserData {
        /// The instance group.
        group: String,
        /// The tera error.
        #[source]
        source: tera::Error,
    },
    /// The addons could not be rendered.
    #[error(transparent)]
    Addons(#[from] crate::addons::AddonError),
}

/// A reference to another resource of the model. It serialises as
/// `<type>.<label>`, which is also its Terraform address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref {
    /// Resource type.
    pub kind: Kind,
    /// Terraform label.
    pub label: String,
}

impl Ref {
    /// The Terraform address `type.label`.
    pub fn address(&self) -> String {
        format!("{}.{}", self.kind, self.label)
    }
}

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.address())
    }
}

/// Where an instance image comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Image {
    /// A fixed AMI id.
    Ami {
        /// `ami-…`
        id: String,
    },
    /// The newest AMI of an owner whose name matches a pattern.
    Lookup {
        /// Terraform label of the `aws_ami` data source.
        label: String,
        /// Owner account id or alias.
        owner: String,
        /// Name pattern.
        name: String,
    },
}

/// A security group rule's peer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulePeer {
    /// Source/destination CIDRs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// Source security group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group: Option<Ref>,
}

/// Spot settings of an ASG with a mixed instances policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixedInstances {
    /// Instance types in priority order.
    pub instance_types: Vec<String>,
    /// On-demand base capacity.
    pub on_demand_base: u32,
    /// Percentage of on-demand above base.
    pub on_demand_above_base: u32,
    /// Spot allocation strategy.
    pub spot_allocation_strategy: String,
    /// Spot maximum price, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_max_price: Option<String>,
}

/// The properties of one resource, by type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Props {
    /// `aws_vpc`
    Vpc {
        /// CIDR block.
        cidr: String,
    },
    /// `aws_internet_gateway`
    InternetGateway {
        /// The VPC.
        vpc: Ref,
    },
    /// `aws_subnet`
    Subnet {
        /// The VPC.
        vpc: Ref,
        /// Availability zone.
        zone: String,
        /// CIDR block.
        cidr: String,
        /// Public, Private or Utility.
        subnet_type: String,
        /// Give instances public IPs.
        map_public_ip: bool,
    },
    /// `aws_route_table`
    RouteTable {
        /// The VPC.
        vpc: Ref,
    },
    /// `aws_route`
    Route {
        /// The route table.
        route_table: Ref,
        /// Destination CIDR.
        destination: String,
        /// Internet gateway target.
        #[serde(skip_serializing_if = "Option::is_none")]
        gateway: Option<Ref>,
        /// NAT gateway target.
        #[serde(skip_serializing_if = "Option::is_none")]
        nat_gateway: Option<Ref>,
    },
    /// `aws_route_table_association`
    RouteTableAssociation {
        /// The subnet.
        subnet: Ref,
        /// The route table.
        route_table: Ref,
    },
    /// `aws_eip`
    Eip {},
    /// `aws_nat_gateway`
    NatGateway {
        /// Elastic IP.
        eip: Ref,
        /// Utility subnet it sits in.
        subnet: Ref,
    },
    /// `aws_security_group`
    SecurityGroup {
        /// The VPC.
        vpc: Ref,
        /// Description.
        description: String,
    },
    /// `aws_security_group_rule`
    SecurityGroupRule {
        /// The group the rule belongs to.
        security_group: Ref,
        /// `ingress` or `egress`.
        direction: String,
        /// `tcp`, `udp`, `icmp` or `-1`.
        protocol: String,
        /// First port.
        from_port: i32,
        /// Last port.
        to_port: i32,
        /// The peer.
        peer: RulePeer,
    },
    /// `aws_iam_role`
    IamRole {
        /// Trust policy JSON.
        assume_role_policy: String,
    },
    /// `aws_iam_role_policy`
    IamRolePolicy {
        /// The role.
        role: Ref,
        /// Policy JSON.
        policy: String,
    },
    /// `aws_iam_instance_profile`
    IamInstanceProfile {
        /// The role.
        role: Ref,
    },
    /// `aws_launch_template`
    LaunchTemplate {
        /// Image.
        image: Image,
        /// Instance type.
        instance_type: String,
        /// Instance profile.
        instance_profile: Ref,
        /// Security groups.
        security_groups: Vec<Ref>,
        /// SSH key pair.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_name: Option<String>,
        /// Public IP on the primary interface.
        associate_public_ip: bool,
        /// Root device name.
        root_device: String,
        /// Root volume size, GiB.
        root_volume_size: u32,
        /// Root volume type.
        root_volume_type: String,
        /// IMDSv2 hop limit: 1 on every instance, so that no pod outside
        /// the host network reaches the instance role's credentials.
        metadata_hop_limit: u8,
        /// Spot price for a plain spot group (no mixed policy).
        #[serde(skip_serializing_if = "Option::is_none")]
        spot_max_price: Option<String>,
        /// Tags for the instances and volumes launched.
        instance_tags: BTreeMap<String, String>,
        /// The cloud-init script (no secrets).
        #[serde(skip)]
        user_data: String,
    },
    /// `aws_autoscaling_group`
    AutoscalingGroup {
        /// Launch template.
        launch_template: Ref,
        /// Subnet(s); one zone per ASG.
        subnets: Vec<Ref>,
        /// Zone of the ASG.
        zone: String,
        /// Instance group.
        instance_group: String,
        /// Minimum size.
        min_size: u32,
        /// Maximum size.
        max_size: u32,
        /// API target groups (control plane).
        target_groups: Vec<Ref>,
        /// Replace instances the load balancer finds unhealthy, not only
        /// those EC2 does (control planes: a broken API gets replaced).
        elb_health_check: bool,
        /// Spot/mixed instances.
        #[serde(skip_serializing_if = "Option::is_none")]
        mixed_instances: Option<MixedInstances>,
    },
    /// `aws_lb` (network load balancer)
    LoadBalancer {
        /// Internal scheme.
        internal: bool,
        /// Subnets.
        subnets: Vec<Ref>,
    },
    /// `aws_lb_target_group`
    TargetGroup {
        /// The VPC.
        vpc: Ref,
        /// Port.
        port: u16,
        /// Targets see the client's address (AWS's default for instance
        /// targets). Off for the internal endpoint: with it on, a control
        /// plane cannot reach itself through the load balancer (hairpin).
        preserve_client_ip: bool,
    },
    /// `aws_lb_listener`
    Listener {
        /// The load balancer.
        load_balancer: Ref,
        /// Port.
        port: u16,
        /// Target group.
        target_group: Ref,
    },
    /// `aws_route53_record`
    DnsRecord {
        /// Hosted zone name (looked up by name).
        zone_name: String,
        /// Terraform label of the `aws_route53_zone` data source.
        zone_label: String,
        /// Record name.
        record_name: String,
        /// `A` (alias) or `TXT`.
        record_type: String,
        /// Alias target for `A`.
        #[serde(skip_serializing_if = "Option::is_none")]
        alias: Option<Ref>,
        /// Values for `TXT`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        values: Vec<String>,
    },
    /// `aws_s3_object`
    S3Object {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Content.
        #[serde(skip)]
        content: String,
        /// SHA-256 of the content.
        sha256: String,
    },
}

/// One AWS resource of the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// Terraform type (`aws_vpc`, …) and label.
    #[serde(rename = "address")]
    pub id: Ref,
    /// The label alone (for templates).
    pub label: String,
    /// AWS name (Name tag, or the resource's own name field).
    pub name: String,
    /// Tags (empty for types without tags).
    pub tags: BTreeMap<String, String>,
    /// Type-specific properties.
    #[serde(flatten)]
    pub props: Props,
}

impl Props {
    /// The kind of resource these properties describe.
    pub fn kind(&self) -> Kind {
        match self {
            Props::Vpc { .. } => Kind::Vpc,
            Props::InternetGateway { .. } => Kind::InternetGateway,
            Props::Subnet { .. } => Kind::Subnet,
            Props::RouteTable { .. } => Kind::RouteTable,
            Props::Route { .. } => Kind::Route,
            Props::RouteTableAssociation { .. } => Kind::RouteTableAssociation,
            Props::Eip {} => Kind::Eip,
            Props::NatGateway { .. } => Kind::NatGateway,
            Props::SecurityGroup { .. } => Kind::SecurityGroup,
            Props::SecurityGroupRule { .. } => Kind::SecurityGroupRule,
            Props::IamRole { .. } => Kind::IamRole,
            Props::IamRolePolicy { .. } => Kind::IamRolePolicy,
            Props::IamInstanceProfile { .. } => Kind::IamInstanceProfile,
            Props::LaunchTemplate { .. } => Kind::LaunchTemplate,
            Props::AutoscalingGroup { .. } => Kind::AutoscalingGroup,
            Props::LoadBalancer { .. } => Kind::LoadBalancer,
            Props::TargetGroup { .. } => Kind::TargetGroup,
            Props::Listener { .. } => Kind::Listener,
            Props::DnsRecord { .. } => Kind::DnsRecord,
            Props::S3Object { .. } => Kind::S3Object,
        }
    }
}

impl Resource {
    /// The resources this one refers to.
    pub fn deps(&self) -> Vec<&Ref> {
        match &self.props {
            Props::Vpc { .. } | Props::Eip {} | Props::IamRole { .. } | Props::S3Object { .. } => {
                vec![]
            }
            Props::InternetGateway { vpc }
            | Props::RouteTable { vpc }
            | Props::SecurityGroup { vpc, .. } => vec![vpc],
            Props::TargetGroup { vpc, .. } | Props::Subnet { vpc, .. } => vec![vpc],
            Props::Route {
                route_table,
                gateway,
                nat_gateway,
                ..
            } => {
                let mut v = vec![route_table];
                v.extend(gateway.iter().chain(nat_gateway.iter()));
                v
            }
            Props::RouteTableAssociation {
                subnet,
                route_table,
            } => vec![subnet, route_table],
            Props::NatGateway { eip, subnet } => vec![eip, subnet],
            Props::SecurityGroupRule {
                security_group,
                peer,
                ..
            } => {
                let mut v = vec![security_group];
                v.extend(peer.security_group.iter());
                v
            }
            Props::IamRolePolicy { role, .. } | Props::IamInstanceProfile { role } => vec![role],
            Props::LaunchTemplate {
                instance_profile,
                security_groups,
                ..
            } => {
                let mut v = vec![instance_profile];
                v.extend(security_groups.iter());
                v
            }
            Props::AutoscalingGroup {
                launch_template,
                subnets,
                target_groups,
                ..
            } => {
                let mut v = vec![launch_template];
                v.extend(subnets.iter().chain(target_groups.iter()));
                v
            }
            Props::LoadBalancer { subnets, .. } => subnets.iter().collect(),
            Props::Listener {
                load_balancer,
                target_group,
                ..
            } => vec![load_balancer, target_group],
            Props::DnsRecord { alias, .. } => alias.iter().collect(),
        }
    }
}

/// The whole desired state of one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    /// Cluster name.
    pub cluster_name: String,
    /// Region.
    pub region: String,
    /// State store bucket.
    pub state_bucket: String,
    /// Key prefix of this cluster in the state store (`<prefix>/<cluster>`).
    pub state_prefix: String,
    /// Zones.
    pub zones: Vec<String>,
    /// Resources, each after everything it refers to.
    pub resources: Vec<Resource>,
    /// Rendered addons (channel and manifests), keyed by path under `addons/`.
    #[serde(skip)]
    pub addons: BTreeMap<String, String>,
}

impl Model {
    /// The image lookups of the model's launch templates, as `owner/name`.
    pub fn image_lookups(&self) -> std::collections::BTreeSet<String> {
        self.resources
            .iter()
            .filter_map(|r| match &r.props {
                Props::LaunchTemplate {
                    image: Image::Lookup { owner, name, .. },
                    ..
                } => Some(format!("{owner}/{name}")),
                _ => None,
            })
            .collect()
    }

    /// Replaces each image lookup by the AMI `ids` holds for its
    /// `owner/name`; returns the lookups `ids` lacks (left as they were).
    pub fn pin_images(&mut self, ids: &BTreeMap<String, String>) -> Vec<String> {
        let mut missing = Vec::new();
        for r in &mut self.resources {
            let Props::LaunchTemplate { image, .. } = &mut r.props else {
                continue;
            };
            let Image::Lookup { owner, name, .. } = image else {
                continue;
            };
            let key = format!("{owner}/{name}");
            match ids.get(&key) {
                Some(id) => *image = Image::Ami { id: id.clone() },
                None if !missing.contains(&key) => missing.push(key),
                None => {}
            }
        }
        missing
    }

    /// The DNS zones the model's records are in, sorted, each once.
    pub fn dns_zones(&self) -> std::collections::BTreeSet<&str> {
        self.resources
            .iter()
            .filter_map(|r| match &r.props {
                Props::DnsRecord { zone_name, .. } => Some(zone_name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Resources of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> + '_ {
        self.resources.iter().filter(move |r| r.id.kind == kind)
    }

    /// Resource counts by type, sorted by type.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.resources {
            *m.entry(r.id.kind.tf_type()).or_insert(0) += 1;
        }
        m
    }

    /// The same cluster with no resources: what a destroy plans towards.
    pub fn emptied(&self) -> Model {
        Model {
            resources: vec![],
            ..self.clone()
        }
    }

    /// The resource at `r`.
    pub fn get(&self, r: &Ref) -> Option<&Resource> {
        self.resources.iter().find(|x| &x.id == r)
    }
}
