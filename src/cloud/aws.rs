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
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};

use super::{Actual, Cloud, CloudError, IdMap};
use crate::model::naming::{TAG_CLUSTER, ownership_tag, tf_label};
use crate::model::{Model, Props, Resource};
use crate::plan::AttrChange;
use crate::plan::attrs::{Attrs, list, tags as tag_attrs};

/// The SDK-backed cloud.
#[derive(Debug)]
pub struct AwsCloud {
    ec2: aws_sdk_ec2::Client,
    cluster: String,
    calls: AtomicU64,
}

fn err<E: std::fmt::Display + std::fmt::Debug + std::error::Error + 'static>(
    op: &str,
    address: &str,
    e: E,
) -> CloudError {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        src = s.source();
    }
    CloudError::Call {
        op: op.to_string(),
        address: address.to_string(),
        message,
    }
}

fn ec2_tags(t: &[Tag]) -> std::collections::BTreeMap<String, String> {
    t.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
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
    /// A cloud for `cluster` over these clients.
    pub fn new(ec2: aws_sdk_ec2::Client, cluster: &str) -> AwsCloud {
        AwsCloud {
            ec2,
            cluster: cluster.to_string(),
            calls: AtomicU64::new(0),
        }
    }

    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
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

        self.call();
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
                self.call();
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

        self.call();
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

        self.call();
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

        self.call();
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

        self.call();
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

        self.call();
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

        self.call();
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
            self.call();
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
        Ok(out)
    }

    async fn create(&self, r: &Resource, ids: &IdMap) -> Result<String, CloudError> {
        let address = r.id.address();
        let a = address.as_str();
        self.call();
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
                    self.call();
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
                self.call();
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
                    self.call();
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
                self.call();
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
            _ => Err(CloudError::Unsupported(address)),
        }
    }

    async fn update(
        &self,
        r: &Resource,
        actual_id: &str,
        changes: &[AttrChange],
        _ids: &IdMap,
    ) -> Result<(), CloudError> {
        let address = r.id.address();
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
                self.call();
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
                self.call();
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
            self.call();
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

    async fn delete(&self, kind: &str, address: &str, id: &str) -> Result<(), CloudError> {
        self.call();

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
                        self.call();
                        self.ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                            .await
                            .map_err(|e| err("DetachInternetGateway", address, e))?;
                    }
                }
                self.call();
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
            other => Err(CloudError::Unsupported(format!("{other} {address}"))),
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
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
