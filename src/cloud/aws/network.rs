//! The network: VPC, internet gateway, subnets, route tables with their
//! routes and associations, Elastic IPs and NAT gateways.

use std::collections::HashMap;

use aws_sdk_ec2::types::{self as ec2, Filter, ResourceType};

use super::{AwsCloud, Names, err, tag_spec};
use crate::cloud::{CloudError, IdMap};
use crate::model::naming::{TAG_CLUSTER, tf_label};
use crate::model::{Props, Resource};
use crate::resource::{Actual, AttrChange, Attrs, Kind};

/// What discovery reads of the network, fetched before any of it is
/// matched to the model. What lives in the cluster's VPCs is described once
/// by VPC id: discovery takes the cluster's resources from it and the
/// untouched report the others.
#[derive(Debug, Default)]
pub(super) struct VpcScan {
    /// The cluster's VPCs (found by its tag).
    pub vpcs: Vec<ec2::Vpc>,
    /// Their ids.
    pub vpc_ids: Vec<String>,
    /// Each VPC's `enableDnsHostnames` and `enableDnsSupport`, in order.
    pub dns_attrs: Vec<(bool, bool)>,
    /// The cluster's internet gateways (by tag: they need not be attached).
    pub internet_gateways: Vec<ec2::InternetGateway>,
    /// The cluster's Elastic IPs (by tag).
    pub addresses: Vec<ec2::Address>,
    /// Every subnet in the VPCs.
    pub subnets: Vec<ec2::Subnet>,
    /// Every route table in them.
    pub route_tables: Vec<ec2::RouteTable>,
    /// Every security group in them.
    pub security_groups: Vec<ec2::SecurityGroup>,
    /// The rules of the cluster's security groups.
    pub security_group_rules: Vec<ec2::SecurityGroupRule>,
    /// Every NAT gateway in them, in any state.
    pub nat_gateways: Vec<ec2::NatGateway>,
    /// What else the owned VPCs hold, for the untouched report.
    pub others: super::untouched::Others,
}

/// Reads the network: the cluster's VPCs, internet gateways and Elastic
/// IPs by tag (at once), then everything in the VPCs by VPC id, each type
/// as soon as what it filters on is known: one call per type, paginated,
/// and none when there is no VPC yet. The rules wait only for the groups.
pub(super) async fn fetch(cloud: &AwsCloud) -> Result<VpcScan, CloudError> {
    let (vpcs, internet_gateways, addresses) = tokio::try_join!(
        async {
            all_items!(
                cloud.ec2.describe_vpcs().filters(cloud.owned_filter()),
                "DescribeVpcs",
                "aws_vpc",
            )
        },
        async {
            all_items!(
                cloud
                    .ec2
                    .describe_internet_gateways()
                    .filters(cloud.owned_filter()),
                "DescribeInternetGateways",
                "aws_internet_gateway",
            )
        },
        async {
            cloud
                .ec2
                .describe_addresses()
                .filters(cloud.owned_filter())
                .send()
                .await
                .map(|r| r.addresses().to_vec())
                .map_err(|e| err("DescribeAddresses", "aws_eip", e))
        },
    )?;
    let mut scan = VpcScan {
        vpc_ids: vpcs
            .iter()
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect(),
        vpcs,
        internet_gateways,
        addresses,
        ..VpcScan::default()
    };
    if scan.vpc_ids.is_empty() {
        return Ok(scan);
    }
    let in_vpcs = Filter::builder()
        .name("vpc-id")
        .set_values(Some(scan.vpc_ids.clone()))
        .build();
    // The untouched report looks only into the VPCs that are the cluster's.
    let owned_vpcs: Vec<String> = scan
        .vpcs
        .iter()
        .filter(|v| cloud.is_ours(&crate::cloud::ec2_tags(v.tags())))
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    let attribute = |id: String, attr: ec2::VpcAttributeName| async move {
        let r = cloud
            .ec2
            .describe_vpc_attribute()
            .vpc_id(&id)
            .attribute(attr.clone())
            .send()
            .await
            .map_err(|e| err("DescribeVpcAttribute", &id, e))?;
        let on = match attr {
            ec2::VpcAttributeName::EnableDnsHostnames => {
                r.enable_dns_hostnames().and_then(|x| x.value())
            }
            _ => r.enable_dns_support().and_then(|x| x.value()),
        };
        Ok::<_, CloudError>(on.unwrap_or(false))
    };
    let (subnets, route_tables, (security_groups, rules), nat_gateways, dns_attrs, others) = tokio::try_join!(
        async {
            all_items!(
                cloud.ec2.describe_subnets().filters(in_vpcs.clone()),
                "DescribeSubnets",
                "aws_subnet",
            )
        },
        async {
            all_items!(
                cloud.ec2.describe_route_tables().filters(in_vpcs.clone()),
                "DescribeRouteTables",
                "aws_route_table",
            )
        },
        async {
            let groups: Vec<ec2::SecurityGroup> = all_items!(
                cloud
                    .ec2
                    .describe_security_groups()
                    .filters(in_vpcs.clone()),
                "DescribeSecurityGroups",
                "aws_security_group",
            )?;
            let rules = super::security::fetch_rules(cloud, &groups).await?;
            Ok::<_, CloudError>((groups, rules))
        },
        async {
            all_items!(
                cloud.ec2.describe_nat_gateways().filter(in_vpcs.clone()),
                "DescribeNatGateways",
                "aws_nat_gateway",
            )
        },
        futures::future::try_join_all(scan.vpc_ids.iter().map(|id| async move {
            tokio::try_join!(
                attribute(id.clone(), ec2::VpcAttributeName::EnableDnsHostnames),
                attribute(id.clone(), ec2::VpcAttributeName::EnableDnsSupport),
            )
        })),
        super::untouched::fetch(cloud, &owned_vpcs),
    )?;
    scan.subnets = subnets;
    scan.route_tables = route_tables;
    scan.security_groups = security_groups;
    scan.security_group_rules = rules;
    scan.nat_gateways = nat_gateways;
    scan.dns_attrs = dns_attrs;
    scan.others = others;
    Ok(scan)
}

/// Carries the cluster's name tag (what the tag filter used to select).
pub(super) fn tagged(cloud: &AwsCloud, t: &[ec2::Tag]) -> bool {
    t.iter()
        .any(|t| t.key() == Some(TAG_CLUSTER) && t.value() == Some(cloud.cluster.as_str()))
}

/// The network resources of the cluster, from what [`fetch`] read.
pub(super) fn actuals(
    cloud: &AwsCloud,
    names: &Names,
    scan: &VpcScan,
    by_id: &mut HashMap<String, String>,
) -> Vec<Actual> {
    let mut out: Vec<Actual> = Vec::new();
    for (v, (hostnames, support)) in scan.vpcs.iter().zip(scan.dns_attrs.iter().copied()) {
        let id = v.vpc_id().unwrap_or_default();
        let mut a = Attrs::new();
        a.insert(
            "cidr_block".into(),
            v.cidr_block().unwrap_or_default().into(),
        );
        a.insert("enable_dns_hostnames".into(), hostnames.to_string());
        a.insert("enable_dns_support".into(), support.to_string());
        let act = cloud.actual(Kind::Vpc, names, id, v.tags(), a);
        by_id.insert(id.into(), act.address.clone());
        out.push(act);
    }
    let addr = |by_id: &HashMap<String, String>, id: &str| {
        by_id.get(id).cloned().unwrap_or_else(|| id.to_string())
    };

    for g in &scan.internet_gateways {
        let mut a = Attrs::new();
        if let Some(vpc) = g.attachments().first().and_then(|x| x.vpc_id()) {
            a.insert("vpc".into(), addr(by_id, vpc));
        }
        let act = cloud.actual(
            Kind::InternetGateway,
            names,
            g.internet_gateway_id().unwrap_or_default(),
            g.tags(),
            a,
        );
        by_id.insert(act.id.clone(), act.address.clone());
        out.push(act);
    }

    let mut subnet_names: HashMap<String, String> = HashMap::new();
    for s in scan.subnets.iter().filter(|s| tagged(cloud, s.tags())) {
        let mut a = Attrs::new();
        a.insert("vpc".into(), addr(by_id, s.vpc_id().unwrap_or_default()));
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
        let act = cloud.actual(
            Kind::Subnet,
            names,
            s.subnet_id().unwrap_or_default(),
            s.tags(),
            a,
        );
        by_id.insert(act.id.clone(), act.address.clone());
        subnet_names.insert(act.id.clone(), act.name.clone());
        out.push(act);
    }

    for e in &scan.addresses {
        let act = cloud.actual(
            Kind::Eip,
            names,
            e.allocation_id().unwrap_or_default(),
            e.tags(),
            Attrs::new(),
        );
        by_id.insert(act.id.clone(), act.address.clone());
        out.push(act);
    }

    let live = |n: &&ec2::NatGateway| {
        matches!(
            n.state(),
            Some(ec2::NatGatewayState::Pending | ec2::NatGatewayState::Available)
        )
    };
    for n in scan
        .nat_gateways
        .iter()
        .filter(|n| tagged(cloud, n.tags()))
        .filter(live)
    {
        let mut a = Attrs::new();
        if let Some(alloc) = n
            .nat_gateway_addresses()
            .first()
            .and_then(|x| x.allocation_id())
        {
            a.insert("eip".into(), addr(by_id, alloc));
        }
        a.insert(
            "subnet".into(),
            addr(by_id, n.subnet_id().unwrap_or_default()),
        );
        let act = cloud.actual(
            Kind::NatGateway,
            names,
            n.nat_gateway_id().unwrap_or_default(),
            n.tags(),
            a,
        );
        by_id.insert(act.id.clone(), act.address.clone());
        out.push(act);
    }

    for rt in scan.route_tables.iter().filter(|t| tagged(cloud, t.tags())) {
        let rt_id = rt.route_table_id().unwrap_or_default();
        let mut a = Attrs::new();
        a.insert("vpc".into(), addr(by_id, rt.vpc_id().unwrap_or_default()));
        let act = cloud.actual(Kind::RouteTable, names, rt_id, rt.tags(), a);
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
                a.insert("gateway".into(), addr(by_id, g));
            }
            if let Some(n) = route.nat_gateway_id() {
                a.insert("nat_gateway".into(), addr(by_id, n));
            }
            let label = format!(
                "route-{}-{}",
                tf_label(&rt_name),
                dest.replace('.', "-").replace('/', "--")
            );
            out.push(Actual {
                address: format!("aws_route.{label}"),
                kind: Kind::Route,
                name: rt_name.clone(),
                id: format!("{rt_id}|{dest}"),
                attrs: a,
                owned,
            });
        }
        let public = rt_name == cloud.cluster;
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
            a.insert("subnet".into(), addr(by_id, subnet));
            a.insert("route_table".into(), rt_addr.clone());
            out.push(Actual {
                address: format!("aws_route_table_association.{label}"),
                kind: Kind::RouteTableAssociation,
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
    out
}

/// A route table association has no tags: it is ours when its route table
/// is (one DescribeRouteTables call).
pub(super) async fn ensure_association_owned(
    cloud: &AwsCloud,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    let r = cloud
        .ec2
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("association.route-table-association-id")
                .values(id)
                .build(),
        )
        .send()
        .await
        .map_err(|e| err("DescribeRouteTables", address, e))?;
    let owned = r
        .route_tables()
        .first()
        .is_some_and(|t| cloud.is_ours(&crate::cloud::ec2_tags(t.tags())));
    cloud.refuse_unless(owned, Kind::RouteTableAssociation, address, id)
}

/// Creates a network resource.
pub(super) async fn create(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<String, CloudError> {
    let address = r.id.address();
    let a = address.as_str();
    match &r.props {
        Props::Vpc { cidr } => {
            let id = cloud
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
                let req = cloud.ec2.modify_vpc_attribute().vpc_id(&id);
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
            let id = cloud
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
            cloud
                .ec2
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
            let id = cloud
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
                cloud
                    .ec2
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
        Props::RouteTable { vpc } => Ok(cloud
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
            let mut req = cloud
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
        } => Ok(cloud
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
        Props::Eip {} => Ok(cloud
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
        Props::NatGateway { eip, subnet } => Ok(cloud
            .ec2
            .create_nat_gateway()
            .allocation_id(ids.resolve(a, eip)?)
            .subnet_id(ids.resolve(a, subnet)?)
            .client_token(crate::resource::attrs::digest(&address))
            .tag_specifications(tag_spec(ResourceType::Natgateway, r))
            .send()
            .await
            .map_err(|e| err("CreateNatGateway", a, e))?
            .nat_gateway()
            .and_then(|n| n.nat_gateway_id())
            .unwrap_or_default()
            .to_string()),
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Changes a network resource in place: tags, and the VPC's and subnets'
/// boolean attributes.
pub(super) async fn update(
    cloud: &AwsCloud,
    r: &Resource,
    actual_id: &str,
    changes: &[AttrChange],
) -> Result<(), CloudError> {
    let address = r.id.address();
    let (tag_changes, other): (Vec<AttrChange>, Vec<AttrChange>) = changes
        .iter()
        .cloned()
        .partition(|c| c.attr.starts_with("tags."));
    if !matches!(r.id.kind, Kind::Route | Kind::RouteTableAssociation) {
        cloud
            .update_ec2_tags(&address, actual_id, &tag_changes)
            .await?;
    }
    for c in other {
        let on = ec2::AttributeBooleanValue::builder()
            .value(c.new.as_deref() == Some("true"))
            .build();
        match (r.id.kind, c.attr.as_str()) {
            (Kind::Vpc, "enable_dns_hostnames") => cloud
                .ec2
                .modify_vpc_attribute()
                .vpc_id(actual_id)
                .enable_dns_hostnames(on)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("ModifyVpcAttribute", &address, e))?,
            (Kind::Vpc, "enable_dns_support") => cloud
                .ec2
                .modify_vpc_attribute()
                .vpc_id(actual_id)
                .enable_dns_support(on)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("ModifyVpcAttribute", &address, e))?,
            (Kind::Subnet, "map_public_ip_on_launch") => cloud
                .ec2
                .modify_subnet_attribute()
                .subnet_id(actual_id)
                .map_public_ip_on_launch(on)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("ModifySubnetAttribute", &address, e))?,
            (_, attr) => {
                return Err(CloudError::NotInPlace {
                    address: address.clone(),
                    attr: attr.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Deletes a network resource.
pub(super) async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    match kind {
        Kind::Vpc => cloud
            .ec2
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteVpc", address, e)),
        Kind::InternetGateway => {
            let g = cloud
                .ec2
                .describe_internet_gateways()
                .internet_gateway_ids(id)
                .send()
                .await
                .map_err(|e| err("DescribeInternetGateways", address, e))?;
            for att in g.internet_gateways().iter().flat_map(|g| g.attachments()) {
                if let Some(vpc) = att.vpc_id() {
                    cloud
                        .ec2
                        .detach_internet_gateway()
                        .internet_gateway_id(id)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(|e| err("DetachInternetGateway", address, e))?;
                }
            }
            cloud
                .ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteInternetGateway", address, e))
        }
        Kind::Subnet => cloud
            .ec2
            .delete_subnet()
            .subnet_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteSubnet", address, e)),
        Kind::RouteTable => cloud
            .ec2
            .delete_route_table()
            .route_table_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteRouteTable", address, e)),
        Kind::Route => {
            let (rt, dest) = id.split_once('|').unwrap_or((id, "0.0.0.0/0"));
            cloud
                .ec2
                .delete_route()
                .route_table_id(rt)
                .destination_cidr_block(dest)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteRoute", address, e))
        }
        Kind::RouteTableAssociation => cloud
            .ec2
            .disassociate_route_table()
            .association_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DisassociateRouteTable", address, e)),
        Kind::Eip => cloud
            .ec2
            .release_address()
            .allocation_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("ReleaseAddress", address, e)),
        Kind::NatGateway => cloud
            .ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteNatGateway", address, e)),
        other => Err(CloudError::WrongArea(other)),
    }
}
