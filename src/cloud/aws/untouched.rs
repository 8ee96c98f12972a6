//! The untouched report: what sits in the cluster's VPC without its
//! ownership mark, and would block deleting the VPC. Never changed, only
//! reported. Security groups, subnets, route tables and NAT gateways come
//! from the scan discovery already made; the rest is one call per type,
//! made during the network's fetch ([`fetch`]).

use aws_sdk_ec2::types::{self as ec2, Filter};

use super::network::VpcScan;
use super::{AwsCloud, err};
use crate::cloud::{CloudError, ec2_tags};
use crate::resource::{Actual, Kind, Untouched};

fn item(kind: &str, id: Option<&str>, t: &[ec2::Tag], fallback: Option<&str>) -> Untouched {
    let id = id.unwrap_or_default().to_string();
    Untouched {
        kind: kind.into(),
        name: ec2_tags(t)
            .get("Name")
            .cloned()
            .or(fallback.map(str::to_string))
            .unwrap_or_else(|| id.clone()),
        id,
    }
}

/// What the untouched report reads besides the scan: instances, network
/// interfaces, network ACLs, endpoints, peerings, egress-only and VPN
/// gateways of the owned VPCs.
#[derive(Debug, Default)]
pub(super) struct Others {
    reservations: Vec<ec2::Reservation>,
    enis: Vec<ec2::NetworkInterface>,
    acls: Vec<ec2::NetworkAcl>,
    endpoints: Vec<ec2::VpcEndpoint>,
    peerings: Vec<ec2::VpcPeeringConnection>,
    egress: Vec<ec2::EgressOnlyInternetGateway>,
    vpn: Vec<ec2::VpnGateway>,
}

/// Reads [`Others`] of the owned VPCs `vpcs`: seven independent describes
/// at once (each paginated in order), none when there is no owned VPC.
pub(super) async fn fetch(cloud: &AwsCloud, vpcs: &[String]) -> Result<Others, CloudError> {
    if vpcs.is_empty() {
        return Ok(Others::default());
    }
    let in_vpc = || {
        Filter::builder()
            .name("vpc-id")
            .set_values(Some(vpcs.to_vec()))
            .build()
    };
    let (reservations, enis, acls, endpoints, peerings, egress, vpn) = tokio::try_join!(
        async {
            all_items!(
                cloud.ec2.describe_instances().filters(in_vpc()).filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("shutting-down")
                        .values("stopping")
                        .values("stopped")
                        .build(),
                ),
                "DescribeInstances",
                "untouched",
            )
        },
        async {
            all_items!(
                cloud.ec2.describe_network_interfaces().filters(in_vpc()),
                "DescribeNetworkInterfaces",
                "untouched",
            )
        },
        async {
            all_items!(
                cloud.ec2.describe_network_acls().filters(in_vpc()),
                "DescribeNetworkAcls",
                "untouched",
            )
        },
        async {
            all_items!(
                cloud.ec2.describe_vpc_endpoints().filters(in_vpc()),
                "DescribeVpcEndpoints",
                "untouched",
            )
        },
        async {
            all_items!(
                cloud.ec2.describe_vpc_peering_connections().filters(
                    Filter::builder()
                        .name("status-code")
                        .values("pending-acceptance")
                        .values("provisioning")
                        .values("active")
                        .build(),
                ),
                "DescribeVpcPeeringConnections",
                "untouched",
            )
        },
        async {
            all_items!(
                cloud.ec2.describe_egress_only_internet_gateways(),
                "DescribeEgressOnlyInternetGateways",
                "untouched",
            )
        },
        async {
            cloud
                .ec2
                .describe_vpn_gateways()
                .filters(
                    Filter::builder()
                        .name("attachment.vpc-id")
                        .set_values(Some(vpcs.to_vec()))
                        .build(),
                )
                .send()
                .await
                .map(|r| r.vpn_gateways().to_vec())
                .map_err(|e| err("DescribeVpnGateways", "untouched", e))
        },
    )?;
    Ok(Others {
        reservations,
        enis,
        acls,
        endpoints,
        peerings,
        egress,
        vpn,
    })
}

/// Resources in the cluster's (owned) VPCs that are not the cluster's.
pub(super) fn report(cloud: &AwsCloud, scan: &VpcScan, actual: &[Actual]) -> Vec<Untouched> {
    let vpcs: Vec<String> = actual
        .iter()
        .filter(|a| a.kind == Kind::Vpc && a.owned)
        .map(|a| a.id.clone())
        .collect();
    if vpcs.is_empty() {
        return vec![];
    }
    let others = &scan.others;
    let in_our_vpc = |id: Option<&str>| id.is_some_and(|id| vpcs.iter().any(|v| v == id));
    // The same test as deletion's: both of the cluster's tags.
    let ours = |t: &[ec2::Tag]| cloud.is_ours(&ec2_tags(t));
    let mut out = Vec::new();
    for g in scan
        .security_groups
        .iter()
        .filter(|g| in_our_vpc(g.vpc_id()))
    {
        if g.group_name() != Some("default") && !ours(g.tags()) {
            out.push(item(
                "aws_security_group",
                g.group_id(),
                g.tags(),
                g.group_name(),
            ));
        }
    }
    for n in scan.subnets.iter().filter(|s| in_our_vpc(s.vpc_id())) {
        if !ours(n.tags()) {
            out.push(item("aws_subnet", n.subnet_id(), n.tags(), None));
        }
    }
    // What blocks DeleteVpc without a network interface: route tables
    // other than the main one (network ACLs, endpoints and peerings below).
    for t in scan.route_tables.iter().filter(|t| in_our_vpc(t.vpc_id())) {
        let main = t.associations().iter().any(|a| a.main() == Some(true));
        if !main && !ours(t.tags()) {
            out.push(item("aws_route_table", t.route_table_id(), t.tags(), None));
        }
    }
    for i in others.reservations.iter().flat_map(|r| r.instances()) {
        if !ours(i.tags()) {
            out.push(item("aws_instance", i.instance_id(), i.tags(), None));
        }
    }
    // Other network interfaces: RDS, Lambda, VPC endpoints, load balancers
    // of others... Those of instances are covered above; our load
    // balancer's say so in their description; our NAT gateways' (in any
    // state: a deleted one's interface can linger a while, and for good in
    // moto) are known from the scan.
    let our_nats: Vec<&str> = scan
        .nat_gateways
        .iter()
        .filter(|n| super::network::tagged(cloud, n.tags()))
        .flat_map(|n| n.nat_gateway_addresses())
        .filter_map(|a| a.network_interface_id())
        .collect();
    let our_lbs: Vec<String> = actual
        .iter()
        .filter(|a| a.kind == Kind::LoadBalancer && a.owned)
        .map(|a| format!("ELB net/{}/", a.name))
        .collect();
    for n in &others.enis {
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
    for a in &others.acls {
        if a.is_default() != Some(true) && !ours(a.tags()) {
            out.push(item("aws_network_acl", a.network_acl_id(), a.tags(), None));
        }
    }
    for e in &others.endpoints {
        let gone = matches!(
            e.state(),
            Some(ec2::State::Deleted | ec2::State::Deleting | ec2::State::Rejected)
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
    for p in &others.peerings {
        let ends = [p.requester_vpc_info(), p.accepter_vpc_info()];
        let touches = ends.iter().flatten().any(|v| in_our_vpc(v.vpc_id()));
        if touches && !ours(p.tags()) {
            out.push(item(
                "aws_vpc_peering_connection",
                p.vpc_peering_connection_id(),
                p.tags(),
                None,
            ));
        }
    }
    for g in &others.egress {
        let attached = g.attachments().iter().any(|a| in_our_vpc(a.vpc_id()));
        if attached && !ours(g.tags()) {
            out.push(item(
                "aws_egress_only_internet_gateway",
                g.egress_only_internet_gateway_id(),
                g.tags(),
                None,
            ));
        }
    }
    for g in &others.vpn {
        let attached = g
            .vpc_attachments()
            .iter()
            .any(|a| a.state() == Some(&ec2::AttachmentStatus::Attached) && in_our_vpc(a.vpc_id()));
        if attached && !ours(g.tags()) {
            out.push(item("aws_vpn_gateway", g.vpn_gateway_id(), g.tags(), None));
        }
    }
    out.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    out
}
