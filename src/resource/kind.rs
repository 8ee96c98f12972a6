//! Every resource type clusterctl manages, in one table: its Terraform
//! type, its rank in creation order and the attributes that cannot change
//! in place. Adding a type starts here; the compiler then points at every
//! exhaustive `match` that must learn it (model properties, the cloud
//! area that owns it, the fake).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resource type. It serialises as its Terraform type (`aws_vpc`, …), so
/// saved plans and JSON output read as Terraform users expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::EnumIter)]
pub enum Kind {
    /// `aws_vpc`
    Vpc,
    /// `aws_internet_gateway`
    InternetGateway,
    /// `aws_subnet`
    Subnet,
    /// `aws_route_table`
    RouteTable,
    /// `aws_route`
    Route,
    /// `aws_route_table_association`
    RouteTableAssociation,
    /// `aws_eip`
    Eip,
    /// `aws_nat_gateway`
    NatGateway,
    /// `aws_security_group`
    SecurityGroup,
    /// `aws_security_group_rule`
    SecurityGroupRule,
    /// `aws_iam_role`
    IamRole,
    /// `aws_iam_role_policy`
    IamRolePolicy,
    /// `aws_iam_instance_profile`
    IamInstanceProfile,
    /// `aws_launch_template`
    LaunchTemplate,
    /// `aws_autoscaling_group`
    AutoscalingGroup,
    /// `aws_lb`
    LoadBalancer,
    /// `aws_lb_target_group`
    TargetGroup,
    /// `aws_lb_listener`
    Listener,
    /// `aws_route53_record`
    DnsRecord,
    /// `aws_s3_object`
    S3Object,
}

/// What a kind is: one row of the table.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// The Terraform type.
    pub tf_type: &'static str,
    /// Creation order: a kind is created after every kind of a lower rank
    /// and deleted before them.
    pub rank: u8,
    /// Attributes whose change replaces the resource.
    pub immutable: Immutable,
}

/// Which attributes force a replacement.
#[derive(Debug, Clone, Copy)]
pub enum Immutable {
    /// These attributes.
    Attrs(&'static [&'static str]),
    /// Everything but tags (the type has no update call at all).
    AllButTags,
}

impl Kind {
    /// Every kind, in declaration order (derived, so a new variant is
    /// never missing from it).
    pub fn all() -> impl Iterator<Item = Kind> {
        <Kind as strum::IntoEnumIterator>::iter()
    }

    /// The kind's row of the table.
    pub const fn info(self) -> KindInfo {
        use Immutable::{AllButTags, Attrs};
        let (tf_type, rank, immutable) = match self {
            Kind::Vpc => ("aws_vpc", 0, Attrs(&["cidr_block"])),
            Kind::Eip => ("aws_eip", 0, Attrs(&[])),
            Kind::IamRole => ("aws_iam_role", 0, Attrs(&["name"])),
            Kind::S3Object => ("aws_s3_object", 0, Attrs(&["bucket", "key"])),
            Kind::InternetGateway => ("aws_internet_gateway", 1, Attrs(&["vpc"])),
            Kind::Subnet => (
                "aws_subnet",
                1,
                Attrs(&["vpc", "availability_zone", "cidr_block"]),
            ),
            Kind::RouteTable => ("aws_route_table", 1, Attrs(&["vpc"])),
            Kind::SecurityGroup => (
                "aws_security_group",
                1,
                Attrs(&["name", "description", "vpc"]),
            ),
            Kind::IamRolePolicy => ("aws_iam_role_policy", 1, Attrs(&["name", "role"])),
            Kind::IamInstanceProfile => ("aws_iam_instance_profile", 1, Attrs(&["name"])),
            Kind::NatGateway => ("aws_nat_gateway", 2, Attrs(&["eip", "subnet"])),
            Kind::SecurityGroupRule => ("aws_security_group_rule", 2, AllButTags),
            Kind::RouteTableAssociation => ("aws_route_table_association", 2, AllButTags),
            Kind::LoadBalancer => ("aws_lb", 2, Attrs(&["name", "internal"])),
            Kind::TargetGroup => (
                "aws_lb_target_group",
                2,
                Attrs(&["name", "vpc", "port", "protocol"]),
            ),
            Kind::Route => ("aws_route", 3, AllButTags),
            Kind::Listener => ("aws_lb_listener", 3, Attrs(&["load_balancer", "port"])),
            Kind::LaunchTemplate => ("aws_launch_template", 3, Attrs(&["name"])),
            Kind::DnsRecord => ("aws_route53_record", 3, Attrs(&["zone", "name", "type"])),
            Kind::AutoscalingGroup => ("aws_autoscaling_group", 4, Attrs(&["name"])),
        };
        KindInfo {
            tf_type,
            rank,
            immutable,
        }
    }

    /// The Terraform type.
    pub const fn tf_type(self) -> &'static str {
        self.info().tf_type
    }

    /// Creation order (deletion runs the other way).
    pub const fn rank(self) -> u8 {
        self.info().rank
    }

    /// A change of `attr` cannot be made in place.
    pub fn forces_replacement(self, attr: &str) -> bool {
        match self.info().immutable {
            Immutable::Attrs(a) => a.contains(&attr),
            Immutable::AllButTags => !attr.starts_with("tags."),
        }
    }

    /// A change of `attr` needs new instances (running instances keep the
    /// launch template version they started with).
    pub fn needs_new_instances(self, attr: &str) -> bool {
        self == Kind::LaunchTemplate && !attr.starts_with("tags.") && attr != "name"
    }

    /// The kind of a Terraform type.
    pub fn from_tf_type(s: &str) -> Option<Kind> {
        Kind::all().find(|k| k.tf_type() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tf_type())
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.tf_type() == *other
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.tf_type())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = String::deserialize(d)?;
        Kind::from_tf_type(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown resource type {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_types_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for k in Kind::all() {
            assert!(seen.insert(k.tf_type()), "{k} twice");
            assert_eq!(Kind::from_tf_type(k.tf_type()), Some(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.tf_type()));
            assert_eq!(serde_json::from_str::<Kind>(&json).ok(), Some(k));
        }
        assert!(serde_json::from_str::<Kind>("\"aws_nothing\"").is_err());
    }

    #[test]
    fn replacement_rules() {
        assert!(Kind::Vpc.forces_replacement("cidr_block"));
        assert!(!Kind::Vpc.forces_replacement("enable_dns_support"));
        assert!(Kind::Route.forces_replacement("destination"));
        assert!(!Kind::Route.forces_replacement("tags.Name"));
        assert!(Kind::LaunchTemplate.needs_new_instances("instance_type"));
        assert!(!Kind::LaunchTemplate.needs_new_instances("tags.Name"));
        assert!(!Kind::AutoscalingGroup.needs_new_instances("max_size"));
        // Every reference is created after what it refers to.
        assert!(Kind::Vpc.rank() < Kind::Subnet.rank());
        assert!(Kind::LaunchTemplate.rank() < Kind::AutoscalingGroup.rank());
    }
}
