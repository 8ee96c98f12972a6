//! Reachability, checked from the model: every instance's bootstrap
//! endpoint (the `API_ENDPOINT` of its user data) resolves to a DNS record
//! whose load balancer the instance can reach, and which forwards to every
//! control plane: an internal load balancer in the cluster's VPC, a
//! listener on the API port, a target group attached to each control-plane
//! group with client-IP preservation off (so a control plane can reach
//! itself through it), and a control-plane security group that admits the
//! VPC on that port.

use std::collections::BTreeSet;

use clusterctl::model::{Model, Props, Ref, Resource};
use clusterctl::resource::Kind;
use clusterctl::spec::Spec;
use ipnet::Ipv4Net;

use crate::support::{EXAMPLES, root};

fn model(example: &str) -> Model {
    clusterctl::model::build(&Spec::load(&root().join(format!("examples/{example}.yaml"))).unwrap())
        .unwrap()
}

fn get<'a>(m: &'a Model, r: &Ref) -> &'a Resource {
    m.get(r)
        .unwrap_or_else(|| panic!("{} is not in the model", r.address()))
}

fn endpoint_of(user_data: &str) -> (String, u16) {
    let value = |name: &str| {
        user_data
            .lines()
            .find_map(|l| l.strip_prefix(&format!("readonly {name}=")))
            .unwrap_or_else(|| panic!("no {name} in the user data"))
            .trim_matches('\'')
            .to_string()
    };
    (value("API_ENDPOINT"), value("API_PORT").parse().unwrap())
}

#[test]
fn every_bootstrap_endpoint_is_an_internal_load_balancer_the_instances_reach() {
    for example in EXAMPLES {
        let m = model(example);
        let vpc_cidr: Ipv4Net = m
            .resources
            .iter()
            .find_map(|r| match &r.props {
                Props::Vpc { cidr } => Some(cidr.parse().unwrap()),
                _ => None,
            })
            .unwrap();
        let control_plane_asgs: Vec<&Resource> = m
            .of_kind(Kind::AutoscalingGroup)
            .filter(|r| {
                r.tags.get("clusterctl.io/role").map(String::as_str) == Some("ControlPlane")
            })
            .collect();
        assert!(!control_plane_asgs.is_empty(), "{example}");
        let mut checked = 0;
        for lt in m.of_kind(Kind::LaunchTemplate) {
            let Props::LaunchTemplate { user_data, .. } = &lt.props else {
                unreachable!()
            };
            let (endpoint, port) = endpoint_of(user_data);
            // The name resolves to a record of the model, aliased to a load balancer.
            let record = m
                .resources
                .iter()
                .find(|r| {
                    matches!(&r.props, Props::DnsRecord { record_name, record_type, .. }
                        if *record_name == endpoint && record_type == "A")
                })
                .unwrap_or_else(|| panic!("{example}: {endpoint} has no A record"));
            let Props::DnsRecord {
                alias: Some(lb_ref),
                ..
            } = &record.props
            else {
                panic!("{example}: {endpoint} is not an alias")
            };
            let lb = get(&m, lb_ref);
            let Props::LoadBalancer { internal, subnets } = &lb.props else {
                panic!("{example}: {endpoint} aliases {}", lb.id.address())
            };
            assert!(*internal, "{example}: {endpoint} is not internal");
            for s in subnets {
                let Props::Subnet { cidr, .. } = &get(&m, s).props else {
                    panic!()
                };
                let net: Ipv4Net = cidr.parse().unwrap();
                assert!(
                    vpc_cidr.contains(&net),
                    "{example}: {cidr} outside {vpc_cidr}"
                );
            }
            // A listener on the port forwards to a group every control plane is in.
            let tg_ref = m
                .resources
                .iter()
                .find_map(|r| match &r.props {
                    Props::Listener {
                        load_balancer,
                        port: p,
                        target_group,
                    } if load_balancer == lb_ref && *p == port => Some(target_group),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{example}: no listener on {port} for {endpoint}"));
            let Props::TargetGroup {
                preserve_client_ip, ..
            } = &get(&m, tg_ref).props
            else {
                panic!()
            };
            assert!(!preserve_client_ip, "{example}: {endpoint} would hairpin");
            for asg in &control_plane_asgs {
                let Props::AutoscalingGroup { target_groups, .. } = &asg.props else {
                    panic!()
                };
                assert!(
                    target_groups.contains(tg_ref),
                    "{example}: {} is not behind {endpoint}",
                    asg.name
                );
            }
            checked += 1;
        }
        // The control planes admit the VPC (where the load balancer's
        // addresses, and every instance, are) on the API port.
        let cp_sgs: BTreeSet<&Ref> = control_plane_asgs
            .iter()
            .filter_map(|asg| match &asg.props {
                Props::AutoscalingGroup {
                    launch_template, ..
                } => Some(launch_template),
                _ => None,
            })
            .flat_map(|lt| match &get(&m, lt).props {
                Props::LaunchTemplate {
                    security_groups, ..
                } => security_groups.iter().collect(),
                _ => vec![],
            })
            .collect();
        let port = endpoint_of(
            match &m.of_kind(Kind::LaunchTemplate).next().unwrap().props {
                Props::LaunchTemplate { user_data, .. } => user_data,
                _ => unreachable!(),
            },
        )
        .1;
        let admitted = m.resources.iter().any(|r| match &r.props {
            Props::SecurityGroupRule {
                security_group,
                direction,
                protocol,
                from_port,
                to_port,
                peer,
            } => {
                cp_sgs.contains(security_group)
                    && direction == "ingress"
                    && (protocol == "-1"
                        || (protocol == "tcp"
                            && *from_port <= i32::from(port)
                            && i32::from(port) <= *to_port))
                    && peer
                        .cidrs
                        .iter()
                        .any(|c| c.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&vpc_cidr)))
            }
            _ => false,
        });
        assert!(
            admitted,
            "{example}: the control planes do not admit the VPC on {port}"
        );
        assert_eq!(
            checked,
            m.of_kind(Kind::LaunchTemplate).count(),
            "{example}"
        );
    }
}
