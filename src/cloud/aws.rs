//! The AWS implementation of [`Cloud`], over the SDK. Discovery makes one
//! paginated, tag-filtered Describe call per resource type (never one call
//! per resource); resources are matched to the model by type and Name tag,
//! so resources the Terraform target made are recognised too.
//!
//! Implemented so far: the network layer (VPC, internet gateway, subnets,
//! route tables, routes, associations, Elastic IPs, NAT gateways) and
//! security groups with their rules. The other types report
//! [`CloudError::Unsupported`] when asked to change.

use std::collections::HashMap;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};

use super::{Actual, Cloud, CloudError, IdMap, call_error as err, ec2_tags};
use crate::model::naming::{TAG_CLUSTER, ownership_tag, tf_label};
use crate::model::{Model, Props, Resource};
use crate::plan::AttrChange;
use crate::plan::attrs::{Attrs, list, tags as tag_attrs};

/// The SDK-backed cloud.
#[derive(Debug)]
pub struct AwsCloud {
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    route53: aws_sdk_route53::Client,
    attempts: super::AttemptCounter,
    cluster: String,
    bucket: String,
    prefix: String,
}

fn tag_spec(kind: ResourceType, r: &Resource) -> TagSpecification {
    let tags: Vec<Tag> = r
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

/// Model addresses by (type, AWS name), and by attribute signature for rules.
struct Names(HashMap<(String, String), String>);

impl Names {
    fn of(model: &Model) -> Names {
        Names(
            model
                .resources
                .iter()
                .map(|r| ((r.id.kind.to_string(), r.name.clone()), r.id.address()))
                .collect(),
        )
    }
    fn address(&self, kind: &str, name: &str) -> String {
        self.0
            .get(&(kind.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("{kind}.{}", tf_label(name)))
    }
}

impl AwsCloud {
    /// A cloud for `cluster` over these clients, with its state objects at
    /// `s3://bucket/prefix/`.
    pub fn new(clients: &super::Clients, cluster: &str, bucket: &str, prefix: &str) -> AwsCloud {
        AwsCloud {
            ec2: clients.ec2.clone(),
            s3: clients.s3.clone(),
            iam: clients.iam.clone(),
            autoscaling: clients.autoscaling.clone(),
            elb: clients.elb.clone(),
            route53: clients.route53.clone(),
            attempts: clients.attempts.clone(),
            cluster: cluster.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
    }

    /// The availability zones of the region that are available to this
    /// account (one DescribeAvailabilityZones call).
    pub async fn available_zones(&self) -> Result<Vec<String>, CloudError> {
        let r = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| super::call_error("DescribeAvailabilityZones", "zones", e))?;
        let mut zones: Vec<String> = r
            .availability_zones()
            .iter()
            .filter(|z| z.state() == Some(&aws_sdk_ec2::types::AvailabilityZoneState::Available))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        zones.sort();
        Ok(zones)
    }

    /// Architecture and root device of the AMIs among `ids` that exist.
    pub async fn describe_images(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, super::compute::ImageInfo>, CloudError> {
        super::compute::describe_images(&self.ec2, ids).await
    }

    /// The architectures each of `types` supports.
    pub async fn architectures(
        &self,
        types: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CloudError> {
        super::compute::architectures(&self.ec2, types).await
    }

    /// The (instance type, zone) pairs among `types` × `zones` that EC2 offers.
    pub async fn offered_instance_types(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Result<std::collections::HashSet<(String, String)>, CloudError> {
        super::compute::offered_instance_types(&self.ec2, types, zones).await
    }

    /// The public hosted zones the model's DNS records need that do not exist.
    pub async fn missing_dns_zones(
        &self,
        model: &crate::model::Model,
    ) -> Result<Vec<String>, CloudError> {
        super::edge::missing_zones(&self.edge(), model).await
    }

    /// Resolves the model's image lookups to AMI ids (see
    /// [`super::compute::resolve_images`]).
    pub async fn resolve_images(
        &self,
        model: &mut crate::model::Model,
    ) -> Result<std::collections::BTreeMap<String, String>, CloudError> {
        super::compute::resolve_images(&self.ec2, model).await
    }

    /// The state objects the model manages (not lock, serial, pki/, secrets/).
    async fn discover_objects(&self, names: &Names) -> Result<Vec<Actual>, CloudError> {
        let wanted: std::collections::HashSet<String> = names
            .0
            .keys()
            .filter(|(k, _)| k == "aws_s3_object")
            .map(|(_, n)| n.clone())
            .collect();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let prefix = format!("{}/", self.prefix);
        loop {
            let r = match self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => {
                    return Ok(out);
                }
                Err(e) => return Err(err("ListObjectsV2", "aws_s3_object", e)),
            };
            for o in r.contents() {
                let Some(key) = o.key() else { continue };
                let rel = key.trim_start_matches(&prefix);
                let managed = wanted.contains(key)
                    || ["config", "cluster-completed.spec", "clusterctl-version"].contains(&rel)
                    || rel.starts_with("instancegroup/")
                    || rel.starts_with("addons/");
                if !managed {
                    continue;
                }
                let mut a = Attrs::new();
                a.insert("bucket".into(), self.bucket.clone());
                a.insert("key".into(), key.into());
                a.insert(
                    "content".into(),
                    format!("md5:{}", o.e_tag().unwrap_or_default().trim_matches('"')),
                );
                out.push(Actual {
                    address: format!("aws_s3_object.{}", tf_label(key)),
                    kind: "aws_s3_object".into(),
                    name: key.into(),
                    id: key.into(),
                    attrs: a,
                    owned: true,
                });
            }
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Roles, their inline policies and instance profiles, found by the
    /// cluster's name suffix (IAM names are account-wide); ownership from tags.
    async fn discover_iam(
        &self,
        model: &Model,
        by_id: &mut HashMap<String, String>,
    ) -> Result<Vec<Actual>, CloudError> {
        let mut out = Vec::new();
        let owner = ownership_tag(&self.cluster);
        let suffix = format!(".{}", self.cluster);
        let wanted = |n: &str| {
            n.ends_with(&suffix)
                || model
                    .resources
                    .iter()
                    .any(|m| m.id.kind == "aws_iam_role" && m.name == n)
        };
        let mut marker: Option<String> = None;
        let mut roles = Vec::new();
        loop {
            let r = self
                .iam
                .list_roles()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| err("ListRoles", "aws_iam_role", e))?;
            roles.extend(r.roles().iter().filter(|x| wanted(x.role_name())).cloned());
            match r.marker() {
                Some(m) if r.is_truncated() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for role in roles {
            let name = role.role_name().to_string();
            let tags = self
                .iam
                .list_role_tags()
                .role_name(&name)
                .send()
                .await
                .map_err(|e| err("ListRoleTags", &name, e))?;
            let tags: std::collections::BTreeMap<String, String> = tags
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            let owned = tags.get(&owner).is_some_and(|v| v == "owned");
            let doc = role
                .assume_role_policy_document()
                .map(percent_decode)
                .unwrap_or_default();
            let mut a = Attrs::new();
            a.insert("name".into(), name.clone());
            a.insert(
                "assume_role_policy".into(),
                crate::plan::attrs::canonical_json(&doc),
            );
            tag_attrs(&mut a, "tags", &tags);
            let address = format!("aws_iam_role.{}", tf_label(&name));
            by_id.insert(name.clone(), address.clone());
            out.push(Actual {
                address: address.clone(),
                kind: "aws_iam_role".into(),
                name: name.clone(),
                id: name.clone(),
                attrs: a,
                owned,
            });
            let pols = self
                .iam
                .list_role_policies()
                .role_name(&name)
                .send()
                .await
                .map_err(|e| err("ListRolePolicies", &name, e))?;
            for p in pols.policy_names() {
                let got = self
                    .iam
                    .get_role_policy()
                    .role_name(&name)
                    .policy_name(p)
                    .send()
                    .await
                    .map_err(|e| err("GetRolePolicy", p, e))?;
                let mut a = Attrs::new();
                a.insert("name".into(), p.clone());
                a.insert("role".into(), address.clone());
                a.insert(
                    "policy".into(),
                    crate::plan::attrs::canonical_json(&percent_decode(got.policy_document())),
                );
                out.push(Actual {
                    address: format!("aws_iam_role_policy.{}", tf_label(p)),
                    kind: "aws_iam_role_policy".into(),
                    name: p.clone(),
                    id: format!("{name}|{p}"),
                    attrs: a,
                    owned,
                });
            }
        }
        let mut marker: Option<String> = None;
        loop {
            let r = self
                .iam
                .list_instance_profiles()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| err("ListInstanceProfiles", "aws_iam_instance_profile", e))?;
            for p in r.instance_profiles() {
                let name = p.instance_profile_name();
                if !name.ends_with(&suffix) {
                    continue;
                }
                let mut a = Attrs::new();
                a.insert("name".into(), name.into());
                if let Some(role) = p.roles().first() {
                    a.insert(
                        "role".into(),
                        by_id
                            .get(role.role_name())
                            .cloned()
                            .unwrap_or_else(|| role.role_name().to_string()),
                    );
                }
                // moto lists no profile tags: the model's tags are taken as they are.
                if let Some(m) = model
                    .resources
                    .iter()
                    .find(|m| m.id.kind == "aws_iam_instance_profile" && m.name == name)
                {
                    tag_attrs(&mut a, "tags", &m.tags);
                }
                out.push(Actual {
                    address: format!("aws_iam_instance_profile.{}", tf_label(name)),
                    kind: "aws_iam_instance_profile".into(),
                    name: name.into(),
                    id: name.into(),
                    attrs: a,
                    owned: true,
                });
            }
            match r.marker() {
                Some(m) if r.is_truncated() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    fn edge(&self) -> super::edge::Edge<'_> {
        super::edge::Edge {
            elb: &self.elb,
            r53: &self.route53,
            cluster: &self.cluster,
        }
    }

    /// SDK attempts so far (retries included).
    pub fn attempts(&self) -> u64 {
        self.attempts.get()
    }

    /// SDK operations so far, and how many extra attempts (retries) they took.
    pub fn retries(&self) -> (u64, u64) {
        (self.attempts.operations(), self.attempts.retries())
    }

    fn owned_filter(&self) -> Filter {
        Filter::builder()
            .name(format!("tag:{TAG_CLUSTER}"))
            .values(&self.cluster)
            .build()
    }

    fn actual(&self, kind: &str, names: &Names, id: &str, t: &[Tag], attrs: Attrs) -> Actual {
        let tags = ec2_tags(t);
        let name = tags.get("Name").cloned().unwrap_or_else(|| id.to_string());
        let owned = tags
            .get(&ownership_tag(&self.cluster))
            .is_some_and(|v| v == "owned");
        let mut a = attrs;
        tag_attrs(&mut a, "tags", &tags);
        Actual {
            address: names.address(kind, &name),
            kind: kind.to_string(),
            name,
            id: id.to_string(),
            attrs: a,
            owned,
        }
    }
}

#[async_trait::async_trait]
impl Cloud for AwsCloud {
    async fn discover(&self, model: &Model) -> Result<Vec<Actual>, CloudError> {
        let names = Names::of(model);
        let mut out: Vec<Actual> = Vec::new();
        let mut by_id: HashMap<String, String> = HashMap::new();

        let vpcs = self
            .ec2
            .describe_vpcs()
            .filters(self.owned_filter())
            .send()
            .await
            .map_err(|e| err("DescribeVpcs", "aws_vpc", e))?;
        for v in vpcs.vpcs() {
            let id = v.vpc_id().unwrap_or_default();
            let mut a = Attrs::new();
            a.insert(
                "cidr_block".into(),
                v.cidr_block().unwrap_or_default().into(),
            );
            for (attr, name) in [
                (
                    aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
                    "enable_dns_hostnames",
                ),
                (
                    aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
                    "enable_dns_support",
                ),
            ] {
                let r = self
                    .ec2
                    .describe_vpc_attribute()
                    .vpc_id(id)
                    .attribute(attr)
                    .send()
                    .await
                    .map_err(|e| err("DescribeVpcAttribute", id, e))?;
                let on = match name {
                    "enable_dns_hostnames" => r.enable_dns_hostnames().and_then(|x| x.value()),
                    _ => r.enable_dns_support().and_then(|x| x.value()),
                };
                a.insert(name.into(), on.unwrap_or(false).to_string());
            }
            let act = self.actual("aws_vpc", &names, id, v.tags(), a);
            by_id.insert(id.into(), act.address.clone());
            out.push(act);
        }
        let addr = |by_id: &HashMap<String, String>, id: &str| {
            by_id.get(id).cloned().unwrap_or_else(|| id.to_string())
        };

        let igws = self
            .ec2
            .describe_internet_gateways()
            .filters(self.owned_filter())
            .send()
            .await
            .map_err(|e| err("DescribeInternetGateways", "aws_internet_gateway", e))?;
        for g in igws.internet_gateways() {
            let mut a = Attrs::new();
            if let Some(vpc) = g.attachments().first().and_then(|x| x.vpc_id()) {
                a.insert("vpc".into(), addr(&by_id, vpc));
            }
            let act = self.actual(
                "aws_internet_gateway",
                &names,
                g.internet_gateway_id().unwrap_or_default(),
                g.tags(),
                a,
            );
            by_id.insert(act.id.clone(), act.address.clone());
            out.push(act);
        }

        let subnets = self
            .ec2
            .describe_subnets()
            .filters(self.owned_filter())
            .send()
            .await
            .map_err(|e| err("DescribeSubnets", "aws_subnet", e))?;
        let mut subnet_names: HashMap<String, String> = HashMap::new();
        for s in subnets.subnets() {
            let mut a = Attrs::new();
            a.insert("vpc".into(), addr(&by_id, s.vpc_id().unwrap_or_default()));
            a.insert(
                "availability_zone".into(),
                s.availability_zone().unwrap_or_default().into(),
            );
            a.insert(
                "cidr_block".into(),
                s.cidr_block().unwrap_or_default().into(),
            );
            a.insert(
                "map_public_ip_on_launch".into(),
                s.map_public_ip_on_launch().unwrap_or(false).to_string(),
            );
            let act = self.actual(
                "aws_subnet",
                &names,
                s.subnet_id().unwrap_or_default(),
                s.tags(),
                a,
            );
            by_id.insert(act.id.clone(), act.address.clone());
            subnet_names.insert(act.id.clone(), act.name.clone());
            out.push(act);
        }

        let eips = self
            .ec2
            .describe_addresses()
            .filters(self.owned_filter())
            .send()
            .await
            .map_err(|e| err("DescribeAddresses", "aws_eip", e))?;
        for e in eips.addresses() {
            let act = self.actual(
                "aws_eip",
                &names,
                e.allocation_id().unwrap_or_default(),
                e.tags(),
                Attrs::new(),
            );
            by_id.insert(act.id.clone(), act.address.clone());
            out.push(act);
        }

        let nats = self
            .ec2
            .describe_nat_gateways()
            .filter(self.owned_filter())
            .filter(
                Filter::builder()
                    .name("state")
                    .values("pending")
                    .values("available")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err("DescribeNatGateways", "aws_nat_gateway", e))?;
        for n in nats.nat_gateways() {
            let mut a = Attrs::new();
            if let Some(alloc) = n
                .nat_gateway_addresses()
                .first()
                .and_then(|x| x.allocation_id())
            {
                a.insert("eip".into(), addr(&by_id, alloc));
            }
            a.insert(
                "subnet".into(),
                addr(&by_id, n.subnet_id().unwrap_or_default()),
            );
            let act = self.actual(
                "aws_nat_gateway",
                &names,
                n.nat_gateway_id().unwrap_or_default(),
                n.tags(),
                a,
            );
            by_id.insert(act.id.clone(), act.address.clone());
            out.push(act);
        }

        let rts = self
            .ec2
            .describe_route_tables()
            .filters(self.owned_filter())
            .send()
            .await
            .map_err(|e| err("DescribeRouteTables", "aws_route_table", e))?;
        for rt in rts.route_tables() {
            let rt_id = rt.route_table_id().unwrap_or_default();
            let mut a = Attrs::new();
            a.insert("vpc".into(), addr(&by_id, rt.vpc_id().unwrap_or_default()));
            let act = self.actual("aws_route_table", &names, rt_id, rt.tags(), a);
            let (rt_addr, rt_name, owned) = (act.address.clone(), act.name.clone(), act.owned);
            by_id.insert(rt_id.into(), rt_addr.clone());
            out.push(act);
            for route in rt.routes() {
                let Some(dest) = route.destination_cidr_block() else {
                    continue;
                };
                let gw = route.gateway_id().filter(|g| *g != "local");
                if gw.is_none() && route.nat_gateway_id().is_none() {
                    continue;
                }
                let mut a = Attrs::new();
                a.insert("route_table".into(), rt_addr.clone());
                a.insert("destination".into(), dest.into());
                if let Some(g) = gw {
                    a.insert("gateway".into(), addr(&by_id, g));
                }
                if let Some(n) = route.nat_gateway_id() {
                    a.insert("nat_gateway".into(), addr(&by_id, n));
                }
                let label = format!(
                    "route-{}-{}",
                    tf_label(&rt_name),
                    dest.replace('.', "-").replace('/', "--")
                );
                out.push(Actual {
                    address: format!("aws_route.{label}"),
                    kind: "aws_route".into(),
                    name: rt_name.clone(),
                    id: format!("{rt_id}|{dest}"),
                    attrs: a,
                    owned,
                });
            }
            let public = rt_name == self.cluster;
            for assoc in rt.associations() {
                let Some(subnet) = assoc.subnet_id() else {
                    continue;
                };
                let sname = subnet_names
                    .get(subnet)
                    .cloned()
                    .unwrap_or_else(|| subnet.to_string());
                let label = if public {
                    tf_label(&sname)
                } else {
                    format!("private-{}", tf_label(&sname))
                };
                let mut a = Attrs::new();
                a.insert("subnet".into(), addr(&by_id, subnet));
                a.insert("route_table".into(), rt_addr.clone());
                out.push(Actual {
                    address: format!("aws_route_table_association.{label}"),
                    kind: "aws_route_table_association".into(),
                    name: tf_label(&sname),
                    id: assoc
                        .route_table_association_id()
                        .unwrap_or_default()
                        .into(),
                    attrs: a,
                    owned,
                });
            }
        }

        let sgs = self
            .ec2
            .describe_security_groups()
            .filters(self.owned_filter())
            .send()
            .await
            .map_err(|e| err("DescribeSecurityGroups", "aws_security_group", e))?;
        let mut sg_ids = Vec::new();
        for g in sgs.security_groups() {
            let mut a = Attrs::new();
            a.insert("name".into(), g.group_name().unwrap_or_default().into());
            a.insert(
                "description".into(),
                g.description().unwrap_or_default().into(),
            );
            a.insert("vpc".into(), addr(&by_id, g.vpc_id().unwrap_or_default()));
            let mut act = self.actual(
                "aws_security_group",
                &names,
                g.group_id().unwrap_or_default(),
                g.tags(),
                a,
            );
            act.name = g.group_name().unwrap_or_default().to_string();
            act.address = names.address("aws_security_group", &act.name);
            by_id.insert(act.id.clone(), act.address.clone());
            sg_ids.push((act.id.clone(), act.owned));
            out.push(act);
        }
        if !sg_ids.is_empty() {
            let rules = self
                .ec2
                .describe_security_group_rules()
                .filters(
                    Filter::builder()
                        .name("group-id")
                        .set_values(Some(sg_ids.iter().map(|(i, _)| i.clone()).collect()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err("DescribeSecurityGroupRules", "aws_security_group_rule", e))?;
            out.extend(match_rules(
                model,
                rules.security_group_rules(),
                &by_id,
                &sg_ids,
            ));
        }
        out.extend(self.discover_iam(model, &mut by_id).await?);
        out.extend(self.discover_objects(&names).await?);
        out.extend(super::compute::discover_lts(&self.ec2, &self.cluster, &mut by_id).await?);
        out.extend(super::edge::discover(&self.edge(), model, &mut by_id).await?);
        out.extend(super::compute::discover_asgs(&self.autoscaling, &self.cluster, &by_id).await?);
        Ok(out)
    }

    async fn create(&self, r: &Resource, ids: &IdMap) -> Result<String, CloudError> {
        let address = r.id.address();
        let a = address.as_str();
        match &r.props {
            Props::Vpc { cidr } => {
                let id = self
                    .ec2
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(tag_spec(ResourceType::Vpc, r))
                    .send()
                    .await
                    .map_err(|e| err("CreateVpc", a, e))?
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .unwrap_or_default()
                    .to_string();
                for hostnames in [false, true] {
                    let b = aws_sdk_ec2::types::AttributeBooleanValue::builder()
                        .value(true)
                        .build();
                    let req = self.ec2.modify_vpc_attribute().vpc_id(&id);
                    let req = if hostnames {
                        req.enable_dns_hostnames(b)
                    } else {
                        req.enable_dns_support(b)
                    };
                    req.send()
                        .await
                        .map_err(|e| err("ModifyVpcAttribute", a, e))?;
                }
                Ok(id)
            }
            Props::InternetGateway { vpc } => {
                let vpc_id = ids.resolve(a, vpc)?;
                let id = self
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(tag_spec(ResourceType::InternetGateway, r))
                    .send()
                    .await
                    .map_err(|e| err("CreateInternetGateway", a, e))?
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default()
                    .to_string();
                self.ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(&id)
                    .vpc_id(vpc_id)
                    .send()
                    .await
                    .map_err(|e| err("AttachInternetGateway", a, e))?;
                Ok(id)
            }
            Props::Subnet {
                vpc,
                zone,
                cidr,
                map_public_ip,
                ..
            } => {
                let id = self
                    .ec2
                    .create_subnet()
                    .vpc_id(ids.resolve(a, vpc)?)
                    .availability_zone(zone)
                    .cidr_block(cidr)
                    .tag_specifications(tag_spec(ResourceType::Subnet, r))
                    .send()
                    .await
                    .map_err(|e| err("CreateSubnet", a, e))?
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_string();
                if *map_public_ip {
                    self.ec2
                        .modify_subnet_attribute()
                        .subnet_id(&id)
                        .map_public_ip_on_launch(
                            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                                .value(true)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| err("ModifySubnetAttribute", a, e))?;
                }
                Ok(id)
            }
            Props::RouteTable { vpc } => Ok(self
                .ec2
                .create_route_table()
                .vpc_id(ids.resolve(a, vpc)?)
                .tag_specifications(tag_spec(ResourceType::RouteTable, r))
                .send()
                .await
                .map_err(|e| err("CreateRouteTable", a, e))?
                .route_table()
                .and_then(|t| t.route_table_id())
                .unwrap_or_default()
                .to_string()),
            Props::Route {
                route_table,
                destination,
                gateway,
                nat_gateway,
            } => {
                let rt = ids.resolve(a, route_table)?;
                let mut req = self
                    .ec2
                    .create_route()
                    .route_table_id(&rt)
                    .destination_cidr_block(destination);
                if let Some(g) = gateway {
                    req = req.gateway_id(ids.resolve(a, g)?);
                }
                if let Some(n) = nat_gateway {
                    req = req.nat_gateway_id(ids.resolve(a, n)?);
                }
                match req.send().await {
                    Ok(_) => {}
                    // A crashed run may have made it already.
                    Err(e)
                        if aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                            == Some("RouteAlreadyExists") => {}
                    Err(e) => return Err(err("CreateRoute", a, e)),
                }
                Ok(format!("{rt}|{destination}"))
            }
            Props::RouteTableAssociation {
                subnet,
                route_table,
            } => Ok(self
                .ec2
                .associate_route_table()
                .subnet_id(ids.resolve(a, subnet)?)
                .route_table_id(ids.resolve(a, route_table)?)
                .send()
                .await
                .map_err(|e| err("AssociateRouteTable", a, e))?
                .association_id()
                .unwrap_or_default()
                .to_string()),
            Props::Eip {} => Ok(self
                .ec2
                .allocate_address()
                .domain(aws_sdk_ec2::types::DomainType::Vpc)
                .tag_specifications(tag_spec(ResourceType::ElasticIp, r))
                .send()
                .await
                .map_err(|e| err("AllocateAddress", a, e))?
                .allocation_id()
                .unwrap_or_default()
                .to_string()),
            Props::NatGateway { eip, subnet } => Ok(self
                .ec2
                .create_nat_gateway()
                .allocation_id(ids.resolve(a, eip)?)
                .subnet_id(ids.resolve(a, subnet)?)
                .client_token(crate::plan::attrs::digest(&address))
                .tag_specifications(tag_spec(ResourceType::Natgateway, r))
                .send()
                .await
                .map_err(|e| err("CreateNatGateway", a, e))?
                .nat_gateway()
                .and_then(|n| n.nat_gateway_id())
                .unwrap_or_default()
                .to_string()),
            Props::SecurityGroup { vpc, description } => {
                let id = self
                    .ec2
                    .create_security_group()
                    .group_name(&r.name)
                    .description(description)
                    .vpc_id(ids.resolve(a, vpc)?)
                    .tag_specifications(tag_spec(ResourceType::SecurityGroup, r))
                    .send()
                    .await
                    .map_err(|e| err("CreateSecurityGroup", a, e))?
                    .group_id()
                    .unwrap_or_default()
                    .to_string();
                // Rules are managed one by one: drop the default allow-all egress.
                let all = IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build();
                let _ = self
                    .ec2
                    .revoke_security_group_egress()
                    .group_id(&id)
                    .ip_permissions(all)
                    .send()
                    .await;
                Ok(id)
            }
            Props::SecurityGroupRule {
                security_group,
                direction,
                protocol,
                from_port,
                to_port,
                peer,
            } => {
                let sg = ids.resolve(a, security_group)?;
                let mut perm = IpPermission::builder()
                    .ip_protocol(protocol)
                    .from_port(*from_port)
                    .to_port(*to_port);
                if protocol == "-1" {
                    perm = IpPermission::builder().ip_protocol("-1");
                }
                for c in &peer.cidrs {
                    perm = perm.ip_ranges(IpRange::builder().cidr_ip(c).build());
                }
                if let Some(src) = &peer.security_group {
                    perm = perm.user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id(ids.resolve(a, src)?)
                            .build(),
                    );
                }
                let perm = perm.build();
                let code =
                    |e: &dyn aws_sdk_ec2::error::ProvideErrorMetadata| e.code().map(str::to_string);
                let res: Result<String, (Option<String>, CloudError)> = if direction == "egress" {
                    match self
                        .ec2
                        .authorize_security_group_egress()
                        .group_id(&sg)
                        .ip_permissions(perm)
                        .send()
                        .await
                    {
                        Ok(o) => Ok(o
                            .security_group_rules()
                            .iter()
                            .filter_map(|x| x.security_group_rule_id())
                            .collect::<Vec<_>>()
                            .join(",")),
                        Err(e) => Err((code(&e), err("AuthorizeSecurityGroupEgress", a, e))),
                    }
                } else {
                    match self
                        .ec2
                        .authorize_security_group_ingress()
                        .group_id(&sg)
                        .ip_permissions(perm)
                        .send()
                        .await
                    {
                        Ok(o) => Ok(o
                            .security_group_rules()
                            .iter()
                            .filter_map(|x| x.security_group_rule_id())
                            .collect::<Vec<_>>()
                            .join(",")),
                        Err(e) => Err((code(&e), err("AuthorizeSecurityGroupIngress", a, e))),
                    }
                };
                match res {
                    Ok(ids) => Ok(ids),
                    // A crashed run may have made it already.
                    Err((Some(c), _)) if c == "InvalidPermission.Duplicate" => Ok(String::new()),
                    Err((_, e)) => Err(e),
                }
            }
            Props::IamRole { assume_role_policy } => {
                let tags: Vec<aws_sdk_iam::types::Tag> = r
                    .tags
                    .iter()
                    .filter_map(|(k, v)| {
                        aws_sdk_iam::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .ok()
                    })
                    .collect();
                match self
                    .iam
                    .create_role()
                    .role_name(&r.name)
                    .assume_role_policy_document(assume_role_policy)
                    .set_tags(Some(tags))
                    .send()
                    .await
                {
                    Ok(_) => Ok(r.name.clone()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_entity_already_exists_exception()) =>
                    {
                        Ok(r.name.clone())
                    }
                    Err(e) => Err(err("CreateRole", a, e)),
                }
            }
            Props::IamRolePolicy { role, policy } => {
                let role_name = ids.resolve(a, role)?;
                self.iam
                    .put_role_policy()
                    .role_name(&role_name)
                    .policy_name(&r.name)
                    .policy_document(policy)
                    .send()
                    .await
                    .map_err(|e| err("PutRolePolicy", a, e))?;
                Ok(format!("{role_name}|{}", r.name))
            }
            Props::IamInstanceProfile { role } => {
                let role_name = ids.resolve(a, role)?;
                match self
                    .iam
                    .create_instance_profile()
                    .instance_profile_name(&r.name)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_entity_already_exists_exception()) => {}
                    Err(e) => return Err(err("CreateInstanceProfile", a, e)),
                }
                match self
                    .iam
                    .add_role_to_instance_profile()
                    .instance_profile_name(&r.name)
                    .role_name(&role_name)
                    .send()
                    .await
                {
                    Ok(_) => Ok(r.name.clone()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_limit_exceeded_exception()) =>
                    {
                        Ok(r.name.clone())
                    }
                    Err(e) => Err(err("AddRoleToInstanceProfile", a, e)),
                }
            }
            Props::LaunchTemplate {
                instance_profile,
                security_groups,
                ..
            } => {
                let profile = ids.resolve(a, instance_profile)?;
                let sgs = security_groups
                    .iter()
                    .map(|g| ids.resolve(a, g))
                    .collect::<Result<Vec<_>, _>>()?;
                let data = super::compute::lt_data(r, &profile, sgs)?;
                let tags: Vec<Tag> = r
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect();
                let spec = TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(tags))
                    .build();
                match self
                    .ec2
                    .create_launch_template()
                    .launch_template_name(&r.name)
                    .launch_template_data(data)
                    .tag_specifications(spec)
                    .send()
                    .await
                {
                    Ok(o) => Ok(o
                        .launch_template()
                        .and_then(|l| l.launch_template_id())
                        .unwrap_or_default()
                        .to_string()),
                    // A crashed run made it already: use it.
                    Err(e)
                        if aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                            .is_some_and(|c| c.contains("AlreadyExists")) =>
                    {
                        let got = self
                            .ec2
                            .describe_launch_templates()
                            .launch_template_names(&r.name)
                            .send()
                            .await
                            .map_err(|e| err("DescribeLaunchTemplates", a, e))?;
                        Ok(got
                            .launch_templates()
                            .first()
                            .and_then(|l| l.launch_template_id())
                            .unwrap_or_default()
                            .to_string())
                    }
                    Err(e) => Err(err("CreateLaunchTemplate", a, e)),
                }
            }
            Props::AutoscalingGroup {
                launch_template,
                subnets,
                min_size,
                max_size,
                target_groups,
                ..
            } => {
                // moto (and a crashed run) may leave a group by this name: never overwrite it.
                let existing = self
                    .autoscaling
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(&r.name)
                    .send()
                    .await
                    .map_err(|e| err("DescribeAutoScalingGroups", a, e))?;
                if !existing.auto_scaling_groups().is_empty() {
                    return Ok(r.name.clone());
                }
                let lt_id = ids.resolve(a, launch_template)?;
                let subnet_ids = subnets
                    .iter()
                    .map(|x| ids.resolve(a, x))
                    .collect::<Result<Vec<_>, _>>()?;
                let tgs = target_groups
                    .iter()
                    .map(|x| ids.resolve(a, x))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut req = self
                    .autoscaling
                    .create_auto_scaling_group()
                    .auto_scaling_group_name(&r.name)
                    .min_size(*min_size as i32)
                    .max_size(*max_size as i32)
                    .vpc_zone_identifier(subnet_ids.join(","))
                    .set_tags(Some(super::compute::asg_tags(r)));
                if !tgs.is_empty() {
                    req = req.set_target_group_arns(Some(tgs));
                }
                req = match super::compute::mixed_policy(r, &lt_id) {
                    Some(m) => req.mixed_instances_policy(m),
                    None => req.launch_template(
                        aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                            .launch_template_id(&lt_id)
                            .version("$Latest")
                            .build(),
                    ),
                };
                req.send()
                    .await
                    .map_err(|e| err("CreateAutoScalingGroup", a, e))?;
                Ok(r.name.clone())
            }
            Props::S3Object {
                bucket,
                key,
                content,
                ..
            } => {
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(
                        content.clone().into_bytes(),
                    ))
                    .send()
                    .await
                    .map_err(|e| err("PutObject", a, e))?;
                Ok(key.clone())
            }
            _ => super::edge::create(&self.edge(), r, ids).await,
        }
    }

    async fn update(
        &self,
        r: &Resource,
        actual_id: &str,
        changes: &[AttrChange],
        ids: &IdMap,
    ) -> Result<(), CloudError> {
        let address = r.id.address();
        if let Some(res) = super::edge::update(&self.edge(), r, actual_id, changes, ids).await {
            return res;
        }
        match &r.props {
            Props::S3Object { .. } | Props::IamRolePolicy { .. } => {
                // Writing again is the update.
                self.create(r, ids).await?;
                return Ok(());
            }
            Props::IamRole { assume_role_policy } => {
                for c in changes {
                    if c.attr == "assume_role_policy" {
                        self.iam
                            .update_assume_role_policy()
                            .role_name(actual_id)
                            .policy_document(assume_role_policy)
                            .send()
                            .await
                            .map_err(|e| err("UpdateAssumeRolePolicy", &address, e))?;
                    } else if let Some(key) = c.attr.strip_prefix("tags.") {
                        match &c.new {
                            Some(v) => {
                                let tag = aws_sdk_iam::types::Tag::builder()
                                    .key(key)
                                    .value(v)
                                    .build()
                                    .map_err(|e| err("TagRole", &address, e))?;
                                self.iam
                                    .tag_role()
                                    .role_name(actual_id)
                                    .tags(tag)
                                    .send()
                                    .await
                                    .map_err(|e| err("TagRole", &address, e))?;
                            }
                            None => {
                                self.iam
                                    .untag_role()
                                    .role_name(actual_id)
                                    .tag_keys(key)
                                    .send()
                                    .await
                                    .map_err(|e| err("UntagRole", &address, e))?;
                            }
                        }
                    }
                }
                return Ok(());
            }
            // moto lists no instance-profile tags; nothing else can differ in place.
            Props::IamInstanceProfile { .. } => return Ok(()),
            Props::LaunchTemplate {
                instance_profile,
                security_groups,
                ..
            } if changes.iter().any(|c| !c.attr.starts_with("tags.")) => {
                let profile = ids.resolve(&address, instance_profile)?;
                let sgs = security_groups
                    .iter()
                    .map(|g| ids.resolve(&address, g))
                    .collect::<Result<Vec<_>, _>>()?;
                let data = super::compute::lt_data(r, &profile, sgs)?;
                let v = self
                    .ec2
                    .create_launch_template_version()
                    .launch_template_id(actual_id)
                    .launch_template_data(data)
                    .send()
                    .await
                    .map_err(|e| err("CreateLaunchTemplateVersion", &address, e))?;
                let n = v
                    .launch_template_version()
                    .and_then(|x| x.version_number())
                    .unwrap_or(1);
                self.ec2
                    .modify_launch_template()
                    .launch_template_id(actual_id)
                    .default_version(n.to_string())
                    .send()
                    .await
                    .map_err(|e| err("ModifyLaunchTemplate", &address, e))?;
                let set: Vec<Tag> = changes
                    .iter()
                    .filter_map(|c| {
                        Some(
                            Tag::builder()
                                .key(c.attr.strip_prefix("tags.")?)
                                .value(c.new.as_ref()?)
                                .build(),
                        )
                    })
                    .collect();
                if !set.is_empty() {
                    self.ec2
                        .create_tags()
                        .resources(actual_id)
                        .set_tags(Some(set))
                        .send()
                        .await
                        .map_err(|e| err("CreateTags", &address, e))?;
                }
                return Ok(());
            }
            Props::AutoscalingGroup {
                launch_template,
                subnets,
                min_size,
                max_size,
                ..
            } => {
                let lt_id = ids.resolve(&address, launch_template)?;
                let subnet_ids = subnets
                    .iter()
                    .map(|x| ids.resolve(&address, x))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut req = self
                    .autoscaling
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(actual_id)
                    .min_size(*min_size as i32)
                    .max_size(*max_size as i32)
                    .vpc_zone_identifier(subnet_ids.join(","));
                req = match super::compute::mixed_policy(r, &lt_id) {
                    Some(m) => req.mixed_instances_policy(m),
                    None => req.launch_template(
                        aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                            .launch_template_id(&lt_id)
                            .version("$Latest")
                            .build(),
                    ),
                };
                req.send()
                    .await
                    .map_err(|e| err("UpdateAutoScalingGroup", &address, e))?;
                let set: Vec<_> = super::compute::asg_tags(r)
                    .into_iter()
                    .filter(|t| {
                        changes
                            .iter()
                            .any(|c| t.key().is_some_and(|k| c.attr == format!("tags.{k}")))
                    })
                    .collect();
                if !set.is_empty() {
                    self.autoscaling
                        .create_or_update_tags()
                        .set_tags(Some(set))
                        .send()
                        .await
                        .map_err(|e| err("CreateOrUpdateTags", &address, e))?;
                }
                let unset: Vec<_> = changes
                    .iter()
                    .filter(|c| c.new.is_none())
                    .filter_map(|c| c.attr.strip_prefix("tags."))
                    .map(|k| {
                        aws_sdk_autoscaling::types::Tag::builder()
                            .key(k)
                            .resource_id(actual_id)
                            .resource_type("auto-scaling-group")
                            .build()
                    })
                    .collect();
                if !unset.is_empty() {
                    self.autoscaling
                        .delete_tags()
                        .set_tags(Some(unset))
                        .send()
                        .await
                        .map_err(|e| err("DeleteTags", &address, e))?;
                }
                return Ok(());
            }
            _ => {}
        }
        let tag_changes: Vec<&AttrChange> = changes
            .iter()
            .filter(|c| c.attr.starts_with("tags."))
            .collect();
        let other: Vec<&AttrChange> = changes
            .iter()
            .filter(|c| !c.attr.starts_with("tags."))
            .collect();
        if !tag_changes.is_empty()
            && r.id.kind != "aws_route"
            && r.id.kind != "aws_route_table_association"
        {
            let set: Vec<Tag> = tag_changes
                .iter()
                .filter_map(|c| {
                    Some(
                        Tag::builder()
                            .key(c.attr.trim_start_matches("tags."))
                            .value(c.new.as_ref()?)
                            .build(),
                    )
                })
                .collect();
            if !set.is_empty() {
                self.ec2
                    .create_tags()
                    .resources(actual_id)
                    .set_tags(Some(set))
                    .send()
                    .await
                    .map_err(|e| err("CreateTags", &address, e))?;
            }
            let unset: Vec<Tag> = tag_changes
                .iter()
                .filter(|c| c.new.is_none())
                .map(|c| {
                    Tag::builder()
                        .key(c.attr.trim_start_matches("tags."))
                        .build()
                })
                .collect();
            if !unset.is_empty() {
                self.ec2
                    .delete_tags()
                    .resources(actual_id)
                    .set_tags(Some(unset))
                    .send()
                    .await
                    .map_err(|e| err("DeleteTags", &address, e))?;
            }
        }
        for c in other {
            let on = aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(c.new.as_deref() == Some("true"))
                .build();
            match (r.id.kind, c.attr.as_str()) {
                ("aws_vpc", "enable_dns_hostnames") => self
                    .ec2
                    .modify_vpc_attribute()
                    .vpc_id(actual_id)
                    .enable_dns_hostnames(on)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("ModifyVpcAttribute", &address, e))?,
                ("aws_vpc", "enable_dns_support") => self
                    .ec2
                    .modify_vpc_attribute()
                    .vpc_id(actual_id)
                    .enable_dns_support(on)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("ModifyVpcAttribute", &address, e))?,
                ("aws_subnet", "map_public_ip_on_launch") => self
                    .ec2
                    .modify_subnet_attribute()
                    .subnet_id(actual_id)
                    .map_public_ip_on_launch(on)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("ModifySubnetAttribute", &address, e))?,
                (_, attr) => {
                    return Err(CloudError::Call {
                        op: "update".into(),
                        address: address.clone(),
                        message: format!("attribute {attr} cannot change in place"),
                    });
                }
            }
        }
        Ok(())
    }

    async fn untouched(
        &self,
        actual: &[Actual],
    ) -> Result<Vec<crate::plan::Untouched>, CloudError> {
        let vpcs: Vec<String> = actual
            .iter()
            .filter(|a| a.kind == "aws_vpc" && a.owned)
            .map(|a| a.id.clone())
            .collect();
        if vpcs.is_empty() {
            return Ok(vec![]);
        }
        let in_vpc = || {
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(vpcs.clone()))
                .build()
        };
        // The same test as deletion's: found by the KubernetesCluster tag
        // and marked owned. Either alone (or `shared`) is not ours.
        let in_our_vpc = |id: &str| vpcs.iter().any(|v| v == id);
        let ours = |t: &[Tag]| {
            let tags = ec2_tags(t);
            tags.get(TAG_CLUSTER) == Some(&self.cluster)
                && tags
                    .get(&ownership_tag(&self.cluster))
                    .is_some_and(|v| v == "owned")
        };
        let item = |kind: &str, id: Option<&str>, t: &[Tag], fallback: Option<&str>| {
            let id = id.unwrap_or_default().to_string();
            crate::plan::Untouched {
                kind: kind.into(),
                name: ec2_tags(t)
                    .get("Name")
                    .cloned()
                    .or(fallback.map(str::to_string))
                    .unwrap_or_else(|| id.clone()),
                id,
            }
        };
        let mut out = Vec::new();
        let sgs = self
            .ec2
            .describe_security_groups()
            .filters(in_vpc())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeSecurityGroups", "untouched", e))?;
        for g in &sgs {
            if g.group_name() != Some("default") && !ours(g.tags()) {
                out.push(item(
                    "aws_security_group",
                    g.group_id(),
                    g.tags(),
                    g.group_name(),
                ));
            }
        }
        let subnets = self
            .ec2
            .describe_subnets()
            .filters(in_vpc())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeSubnets", "untouched", e))?;
        for n in &subnets {
            if !ours(n.tags()) {
                out.push(item("aws_subnet", n.subnet_id(), n.tags(), None));
            }
        }
        let reservations = self
            .ec2
            .describe_instances()
            .filters(in_vpc())
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("shutting-down")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeInstances", "untouched", e))?;
        for i in reservations.iter().flat_map(|r| r.instances()) {
            if !ours(i.tags()) {
                out.push(item("aws_instance", i.instance_id(), i.tags(), None));
            }
        }
        // Other network interfaces: RDS, Lambda, VPC endpoints, load
        // balancers of others... Those of instances are covered above; our
        // load balancer's say so in their description.
        // Our NAT gateways in any state: a deleted one's interface can
        // linger a while (and for good in moto).
        let nats = self
            .ec2
            .describe_nat_gateways()
            .filter(in_vpc())
            .filter(self.owned_filter())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeNatGateways", "untouched", e))?;
        let our_nats: Vec<&str> = nats
            .iter()
            .flat_map(|n| n.nat_gateway_addresses())
            .filter_map(|a| a.network_interface_id())
            .collect();
        let our_lbs: Vec<String> = actual
            .iter()
            .filter(|a| a.kind == "aws_lb" && a.owned)
            .map(|a| format!("ELB net/{}/", a.name))
            .collect();
        let enis = self
            .ec2
            .describe_network_interfaces()
            .filters(in_vpc())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeNetworkInterfaces", "untouched", e))?;
        for n in &enis {
            let description = n.description().unwrap_or_default();
            let of_instance = n.attachment().and_then(|a| a.instance_id()).is_some();
            let of_our_nat = n
                .network_interface_id()
                .is_some_and(|id| our_nats.contains(&id));
            let of_our_lb = our_lbs.iter().any(|p| description.starts_with(p.as_str()));
            if !(of_instance || of_our_nat || of_our_lb || ours(n.tag_set())) {
                out.push(item(
                    "aws_network_interface",
                    n.network_interface_id(),
                    n.tag_set(),
                    Some(description).filter(|d| !d.is_empty()),
                ));
            }
        }
        // What blocks DeleteVpc without a network interface: route tables
        // other than the main one, network ACLs other than the default,
        // gateway endpoints, peering connections.
        let tables = self
            .ec2
            .describe_route_tables()
            .filters(in_vpc())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeRouteTables", "untouched", e))?;
        for t in &tables {
            let main = t.associations().iter().any(|a| a.main() == Some(true));
            if !main && !ours(t.tags()) {
                out.push(item("aws_route_table", t.route_table_id(), t.tags(), None));
            }
        }
        let acls = self
            .ec2
            .describe_network_acls()
            .filters(in_vpc())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeNetworkAcls", "untouched", e))?;
        for a in &acls {
            if a.is_default() != Some(true) && !ours(a.tags()) {
                out.push(item("aws_network_acl", a.network_acl_id(), a.tags(), None));
            }
        }
        let endpoints = self
            .ec2
            .describe_vpc_endpoints()
            .filters(in_vpc())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeVpcEndpoints", "untouched", e))?;
        for e in &endpoints {
            let gone = matches!(
                e.state(),
                Some(
                    aws_sdk_ec2::types::State::Deleted
                        | aws_sdk_ec2::types::State::Deleting
                        | aws_sdk_ec2::types::State::Rejected
                )
            );
            if !gone && !ours(e.tags()) {
                out.push(item(
                    "aws_vpc_endpoint",
                    e.vpc_endpoint_id(),
                    e.tags(),
                    e.service_name(),
                ));
            }
        }
        let peerings = self
            .ec2
            .describe_vpc_peering_connections()
            .filters(
                Filter::builder()
                    .name("status-code")
                    .values("pending-acceptance")
                    .values("provisioning")
                    .values("active")
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeVpcPeeringConnections", "untouched", e))?;
        for p in &peerings {
            let ends = [p.requester_vpc_info(), p.accepter_vpc_info()];
            let touches = ends
                .iter()
                .flatten()
                .any(|v| v.vpc_id().is_some_and(in_our_vpc));
            if touches && !ours(p.tags()) {
                out.push(item(
                    "aws_vpc_peering_connection",
                    p.vpc_peering_connection_id(),
                    p.tags(),
                    None,
                ));
            }
        }
        let egress = self
            .ec2
            .describe_egress_only_internet_gateways()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err("DescribeEgressOnlyInternetGateways", "untouched", e))?;
        for g in &egress {
            let attached = g
                .attachments()
                .iter()
                .any(|a| a.vpc_id().is_some_and(in_our_vpc));
            if attached && !ours(g.tags()) {
                out.push(item(
                    "aws_egress_only_internet_gateway",
                    g.egress_only_internet_gateway_id(),
                    g.tags(),
                    None,
                ));
            }
        }
        let vpn = self
            .ec2
            .describe_vpn_gateways()
            .filters(
                Filter::builder()
                    .name("attachment.vpc-id")
                    .set_values(Some(vpcs.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err("DescribeVpnGateways", "untouched", e))?;
        for g in vpn.vpn_gateways() {
            let attached = g.vpc_attachments().iter().any(|a| {
                a.state() == Some(&aws_sdk_ec2::types::AttachmentStatus::Attached)
                    && a.vpc_id().is_some_and(in_our_vpc)
            });
            if attached && !ours(g.tags()) {
                out.push(item("aws_vpn_gateway", g.vpn_gateway_id(), g.tags(), None));
            }
        }
        out.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        Ok(out)
    }

    async fn delete(&self, kind: &str, address: &str, id: &str) -> Result<(), CloudError> {
        match kind {
            "aws_vpc" => self
                .ec2
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteVpc", address, e)),
            "aws_internet_gateway" => {
                let g = self
                    .ec2
                    .describe_internet_gateways()
                    .internet_gateway_ids(id)
                    .send()
                    .await
                    .map_err(|e| err("DescribeInternetGateways", address, e))?;
                for att in g.internet_gateways().iter().flat_map(|g| g.attachments()) {
                    if let Some(vpc) = att.vpc_id() {
                        self.ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                            .await
                            .map_err(|e| err("DetachInternetGateway", address, e))?;
                    }
                }
                self.ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("DeleteInternetGateway", address, e))
            }
            "aws_subnet" => self
                .ec2
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteSubnet", address, e)),
            "aws_route_table" => self
                .ec2
                .delete_route_table()
                .route_table_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteRouteTable", address, e)),
            "aws_route" => {
                let (rt, dest) = id.split_once('|').unwrap_or((id, "0.0.0.0/0"));
                self.ec2
                    .delete_route()
                    .route_table_id(rt)
                    .destination_cidr_block(dest)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("DeleteRoute", address, e))
            }
            "aws_route_table_association" => self
                .ec2
                .disassociate_route_table()
                .association_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DisassociateRouteTable", address, e)),
            "aws_eip" => self
                .ec2
                .release_address()
                .allocation_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("ReleaseAddress", address, e)),
            "aws_nat_gateway" => self
                .ec2
                .delete_nat_gateway()
                .nat_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteNatGateway", address, e)),
            "aws_security_group" => self
                .ec2
                .delete_security_group()
                .group_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteSecurityGroup", address, e)),
            "aws_security_group_rule" => {
                let (sg, rules) = id.split_once('|').unwrap_or(("", id));
                let (egress, rules) = rules.split_once(':').unwrap_or(("ingress", rules));
                let rule_ids: Vec<String> = rules
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if rule_ids.is_empty() {
                    return Ok(());
                }
                if egress == "egress" {
                    self.ec2
                        .revoke_security_group_egress()
                        .group_id(sg)
                        .set_security_group_rule_ids(Some(rule_ids))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| err("RevokeSecurityGroupEgress", address, e))
                } else {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(sg)
                        .set_security_group_rule_ids(Some(rule_ids))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| err("RevokeSecurityGroupIngress", address, e))
                }
            }
            "aws_launch_template" => self
                .ec2
                .delete_launch_template()
                .launch_template_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteLaunchTemplate", address, e)),
            "aws_autoscaling_group" => self
                .autoscaling
                .delete_auto_scaling_group()
                .auto_scaling_group_name(id)
                .force_delete(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteAutoScalingGroup", address, e)),
            "aws_s3_object" => self
                .s3
                .delete_object()
                .bucket(&self.bucket)
                .key(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteObject", address, e)),
            "aws_iam_role_policy" => {
                let (role, name) = id.split_once('|').unwrap_or((id, id));
                self.iam
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("DeleteRolePolicy", address, e))
            }
            "aws_iam_instance_profile" => {
                let p = self
                    .iam
                    .get_instance_profile()
                    .instance_profile_name(id)
                    .send()
                    .await
                    .map_err(|e| err("GetInstanceProfile", address, e))?;
                let roles: Vec<String> = p
                    .instance_profile()
                    .map(|x| {
                        x.roles()
                            .iter()
                            .map(|r| r.role_name().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                for role in roles {
                    self.iam
                        .remove_role_from_instance_profile()
                        .instance_profile_name(id)
                        .role_name(role)
                        .send()
                        .await
                        .map_err(|e| err("RemoveRoleFromInstanceProfile", address, e))?;
                }
                self.iam
                    .delete_instance_profile()
                    .instance_profile_name(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("DeleteInstanceProfile", address, e))
            }
            // Profiles and inline policies rank higher, so they are gone first.
            "aws_iam_role" => self
                .iam
                .delete_role()
                .role_name(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteRole", address, e)),
            other => match super::edge::delete(&self.edge(), other, address, id).await {
                Some(res) => res,
                None => Err(CloudError::Unsupported(format!("{other} {address}"))),
            },
        }
    }

    /// SDK operations, counted by the clients' interceptor (retries are not
    /// extra operations; see [`AwsCloud::retries`]).
    fn calls(&self) -> u64 {
        self.attempts.operations()
    }
}

/// Splits AWS's one-entry-per-CIDR rules among the model's rules (which may
/// hold several CIDRs); entries no model rule claims become rules to delete.
fn match_rules(
    model: &Model,
    rules: &[aws_sdk_ec2::types::SecurityGroupRule],
    by_id: &HashMap<String, String>,
    sgs: &[(String, bool)],
) -> Vec<Actual> {
    struct Entry<'a> {
        rule: &'a aws_sdk_ec2::types::SecurityGroupRule,
        claimed: bool,
    }
    let mut entries: Vec<Entry> = rules
        .iter()
        .map(|rule| Entry {
            rule,
            claimed: false,
        })
        .collect();
    let sg_addr = |id: &str| by_id.get(id).cloned().unwrap_or_else(|| id.to_string());
    let dir = |r: &aws_sdk_ec2::types::SecurityGroupRule| {
        if r.is_egress() == Some(true) {
            "egress"
        } else {
            "ingress"
        }
    };
    let ports = |r: &aws_sdk_ec2::types::SecurityGroupRule| {
        if r.ip_protocol() == Some("-1") {
            (0, 0)
        } else {
            (r.from_port().unwrap_or(0), r.to_port().unwrap_or(0))
        }
    };
    let mut out = Vec::new();
    for m in model.resources.iter() {
        let Props::SecurityGroupRule {
            security_group,
            direction,
            protocol,
            from_port,
            to_port,
            peer,
        } = &m.props
        else {
            continue;
        };
        let want_ports = if protocol == "-1" {
            (0, 0)
        } else {
            (*from_port, *to_port)
        };
        let mut ids = Vec::new();
        let mut cidrs = Vec::new();
        let mut src = None;
        let mut sg_id = String::new();
        for e in entries.iter_mut().filter(|e| !e.claimed) {
            let r = e.rule;
            let group = r.group_id().unwrap_or_default();
            if sg_addr(group) != security_group.address()
                || dir(r) != direction
                || r.ip_protocol() != Some(protocol.as_str())
                || ports(r) != want_ports
            {
                continue;
            }
            let referenced = r
                .referenced_group_info()
                .and_then(|g| g.group_id())
                .map(&sg_addr);
            let matches = match (&peer.security_group, referenced.as_ref(), r.cidr_ipv4()) {
                (Some(want), Some(have), _) => want.address() == *have,
                (None, None, Some(c)) => peer.cidrs.iter().any(|x| x == c),
                _ => false,
            };
            if matches {
                e.claimed = true;
                sg_id = group.to_string();
                ids.push(r.security_group_rule_id().unwrap_or_default().to_string());
                if let Some(c) = r.cidr_ipv4() {
                    cidrs.push(c.to_string());
                }
                if let Some(h) = referenced {
                    src = Some(h);
                }
            }
        }
        if ids.is_empty() {
            continue;
        }
        let mut a = Attrs::new();
        a.insert("security_group".into(), security_group.address());
        a.insert("type".into(), direction.clone());
        a.insert("protocol".into(), protocol.clone());
        a.insert("from_port".into(), from_port.to_string());
        a.insert("to_port".into(), to_port.to_string());
        if !cidrs.is_empty() {
            a.insert("cidr_blocks".into(), list(&cidrs));
        }
        if let Some(s) = src {
            a.insert("source_security_group".into(), s);
        }
        let owned = sgs.iter().any(|(id, owned)| *id == sg_id && *owned);
        out.push(Actual {
            address: m.id.address(),
            kind: "aws_security_group_rule".into(),
            name: m.name.clone(),
            id: format!("{sg_id}|{direction}:{}", ids.join(",")),
            attrs: a,
            owned,
        });
    }
    for e in entries.iter().filter(|e| !e.claimed) {
        let r = e.rule;
        let group = r.group_id().unwrap_or_default();
        let id = r.security_group_rule_id().unwrap_or_default();
        let owned = sgs.iter().any(|(g, owned)| g == group && *owned);
        out.push(Actual {
            address: format!("aws_security_group_rule.unmanaged-{id}"),
            kind: "aws_security_group_rule".into(),
            name: id.into(),
            id: format!("{group}|{}:{id}", dir(r)),
            attrs: Attrs::new(),
            owned,
        });
    }
    out
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_iam_documents() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
