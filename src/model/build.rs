//! spec → model. Every resource is added after the resources it refers to,
//! so `Model::resources` is already in dependency order.

use std::collections::BTreeMap;

use super::naming::{self, base_tags, limit, limit_alnum, tf_label};
use super::{
    Image, MixedInstances, Model, ModelError, Props, Ref, Resource, RulePeer, iam, nodeup,
};
use crate::resource::Kind;
use crate::spec::{LoadBalancerType, Role, Spec, SubnetType, Topology};

struct Builder<'a> {
    cluster: &'a str,
    user_tags: &'a BTreeMap<String, String>,
    resources: Vec<Resource>,
}

impl Builder<'_> {
    /// Adds a resource whose label derives from its AWS name; `tagged`
    /// resources get the cluster tags plus `extra`.
    fn add(
        &mut self,
        name: &str,
        tagged: bool,
        extra: BTreeMap<String, String>,
        props: Props,
    ) -> Ref {
        self.add_labelled(&tf_label(name), name, tagged, extra, props)
    }

    fn add_labelled(
        &mut self,
        label: &str,
        name: &str,
        tagged: bool,
        extra: BTreeMap<String, String>,
        props: Props,
    ) -> Ref {
        let id = Ref {
            kind: props.kind(),
            label: label.to_string(),
        };
        let tags = if tagged {
            let mut t = base_tags(self.cluster, name, self.user_tags);
            t.extend(extra);
            t
        } else {
            BTreeMap::new()
        };
        self.resources.push(Resource {
            id: id.clone(),
            label: label.to_string(),
            name: name.to_string(),
            tags,
            props,
        });
        id
    }
}

fn tags<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Splits `total` over `n` zones, the first zones taking the remainder.
pub fn split(total: u32, n: usize, i: usize) -> u32 {
    let n = n.max(1) as u32;
    total / n + u32::from((i as u32) < total % n)
}

/// Builds the model of a validated spec.
pub fn build(spec: &Spec) -> Result<Model, ModelError> {
    let c = &spec.cluster;
    let s = &c.spec;
    let cluster = c.metadata.name.as_str();
    let topology = s.topology.unwrap_or(Topology::Public);
    let (state_bucket, state_prefix) = state_location(&s.state_store, cluster);
    let mut b = Builder {
        cluster,
        user_tags: &s.tags,
        resources: Vec::new(),
    };

    // Network.
    let vpc = b.add(
        cluster,
        true,
        BTreeMap::new(),
        Props::Vpc {
            cidr: s.network_cidr.clone().unwrap_or_default(),
        },
    );
    let igw = b.add(
        cluster,
        true,
        BTreeMap::new(),
        Props::InternetGateway { vpc: vpc.clone() },
    );
    let mut subnets: Vec<(Ref, String, SubnetType)> = Vec::new();
    for sn in &s.subnets {
        let sname = format!("{}.{cluster}", sn.name.as_deref().unwrap_or(&sn.zone));
        let role_tag = match sn.kind {
            SubnetType::Private => "kubernetes.io/role/internal-elb",
            SubnetType::Public | SubnetType::Utility => "kubernetes.io/role/elb",
        };
        let kind = format!("{:?}", sn.kind);
        let r = b.add(
            &sname,
            true,
            tags([("SubnetType", kind.as_str()), (role_tag, "1")]),
            Props::Subnet {
                vpc: vpc.clone(),
                zone: sn.zone.clone(),
                cidr: sn.cidr.clone().unwrap_or_default(),
                subnet_type: kind.clone(),
                map_public_ip: sn.kind == SubnetType::Public,
            },
        );
        subnets.push((r, sn.zone.clone(), sn.kind));
    }
    let public_rt = b.add(
        cluster,
        true,
        tags([("kubernetes.io/kops/role", "public")]),
        Props::RouteTable { vpc: vpc.clone() },
    );
    b.add_labelled(
        &format!("route-{}-0-0-0-0--0", tf_label(cluster)),
        cluster,
        false,
        BTreeMap::new(),
        Props::Route {
            route_table: public_rt.clone(),
            destination: "0.0.0.0/0".into(),
            gateway: Some(igw.clone()),
            nat_gateway: None,
        },
    );
    for (sn, _, kind) in subnets.iter().filter(|(_, _, k)| *k != SubnetType::Private) {
        let _ = kind;
        b.add_labelled(
            &sn.label,
            &sn.label,
            false,
            BTreeMap::new(),
            Props::RouteTableAssociation {
                subnet: sn.clone(),
                route_table: public_rt.clone(),
            },
        );
    }
    for zone in &s.zones {
        let private: Vec<&Ref> = subnets
            .iter()
            .filter(|(_, z, k)| z == zone && *k == SubnetType::Private)
            .map(|(r, _, _)| r)
            .collect();
        let utility = subnets
            .iter()
            .find(|(_, z, k)| z == zone && *k == SubnetType::Utility)
            .map(|(r, _, _)| r.clone());
        let (Some(utility), false) = (utility, private.is_empty()) else {
            continue;
        };
        let zname = format!("{zone}.{cluster}");
        let eip = b.add(&zname, true, BTreeMap::new(), Props::Eip {});
        let nat = b.add(
            &zname,
            true,
            BTreeMap::new(),
            Props::NatGateway {
                eip,
                subnet: utility,
            },
        );
        let rt_name = format!("private-{zone}.{cluster}");
        let rt = b.add(
            &rt_name,
            true,
            tags([("kubernetes.io/kops/role", "private")]),
            Props::RouteTable { vpc: vpc.clone() },
        );
        b.add_labelled(
            &format!("route-{}-0-0-0-0--0", tf_label(&rt_name)),
            &rt_name,
            false,
            BTreeMap::new(),
            Props::Route {
                route_table: rt.clone(),
                destination: "0.0.0.0/0".into(),
                gateway: None,
                nat_gateway: Some(nat),
            },
        );
        for sn in private {
            b.add_labelled(
                &format!("private-{}", sn.label),
                &sn.label,
                false,
                BTreeMap::new(),
                Props::RouteTableAssociation {
                    subnet: sn.clone(),
                    route_table: rt.clone(),
                },
            );
        }
    }

    // Security groups.
    let api = s.api.clone().unwrap_or_default();
    let api_port = api.port.unwrap_or(443);
    let masters_sg = b.add(
        &format!("masters.{cluster}"),
        true,
        BTreeMap::new(),
        Props::SecurityGroup {
            vpc: vpc.clone(),
            description: format!("Security group for control-plane instances of {cluster}"),
        },
    );
    let nodes_sg = b.add(
        &format!("nodes.{cluster}"),
        true,
        BTreeMap::new(),
        Props::SecurityGroup {
            vpc: vpc.clone(),
            description: format!("Security group for nodes of {cluster}"),
        },
    );
    let mut rule =
        |label: String, sg: &Ref, dir: &str, proto: &str, from: i32, to: i32, peer: RulePeer| {
            b.add_labelled(
                &label,
                &label,
                false,
                BTreeMap::new(),
                Props::SecurityGroupRule {
                    security_group: sg.clone(),
                    direction: dir.into(),
                    protocol: proto.into(),
                    from_port: from,
                    to_port: to,
                    peer,
                },
            );
        };
    let cidrs = |v: Vec<String>| RulePeer {
        cidrs: v,
        security_group: None,
    };
    let sgp = |r: &Ref| RulePeer {
        cidrs: vec![],
        security_group: Some(r.clone()),
    };
    let cl = tf_label(cluster);
    rule(
        format!("from-masters-{cl}-to-masters-all"),
        &masters_sg,
        "ingress",
        "-1",
        0,
        0,
        sgp(&masters_sg),
    );
    rule(
        format!("from-masters-{cl}-to-nodes-all"),
        &nodes_sg,
        "ingress",
        "-1",
        0,
        0,
        sgp(&masters_sg),
    );
    rule(
        format!("from-nodes-{cl}-to-nodes-all"),
        &nodes_sg,
        "ingress",
        "-1",
        0,
        0,
        sgp(&nodes_sg),
    );
    // Nodes reach the control plane on everything but etcd (2379-2381, 4001-4002).
    for (proto, from, to) in [
        ("tcp", 1, 2378),
        ("tcp", 2382, 4000),
        ("tcp", 4003, 65535),
        ("udp", 1, 65535),
    ] {
        rule(
            format!("from-nodes-{cl}-to-masters-{proto}-{from}to{to}"),
            &masters_sg,
            "ingress",
            proto,
            from,
            to,
            sgp(&nodes_sg),
        );
    }
    let api_access = s.kubernetes_api_access.clone().unwrap_or_default();
    if !api_access.is_empty() {
        rule(
            format!("https-api-{cl}-from-api-access"),
            &masters_sg,
            "ingress",
            "tcp",
            api_port.into(),
            api_port.into(),
            cidrs(api_access),
        );
    }
    rule(
        format!("https-api-{cl}-from-vpc"),
        &masters_sg,
        "ingress",
        "tcp",
        api_port.into(),
        api_port.into(),
        cidrs(vec![s.network_cidr.clone().unwrap_or_default()]),
    );
    let ssh = s.ssh_access.clone().unwrap_or_default();
    if !ssh.is_empty() {
        rule(
            format!("ssh-{cl}-to-masters"),
            &masters_sg,
            "ingress",
            "tcp",
            22,
            22,
            cidrs(ssh.clone()),
        );
        rule(
            format!("ssh-{cl}-to-nodes"),
            &nodes_sg,
            "ingress",
            "tcp",
            22,
            22,
            cidrs(ssh),
        );
    }
    for (who, sg) in [("masters", &masters_sg), ("nodes", &nodes_sg)] {
        rule(
            format!("{who}-{cl}-egress-all"),
            sg,
            "egress",
            "-1",
            0,
            0,
            cidrs(vec!["0.0.0.0/0".into()]),
        );
    }

    // IAM.
    let autoscaler_on = s
        .components
        .as_ref()
        .and_then(|c| c.node_autoscaler.as_ref())
        .and_then(|n| n.enabled)
        .unwrap_or(false);
    let preview_domain = s
        .components
        .as_ref()
        .and_then(|c| c.preview.as_ref())
        .filter(|p| p.enabled == Some(true))
        .and_then(|p| p.domain.clone());
    let mut profiles = BTreeMap::new();
    for role in [Role::ControlPlane, Role::Node] {
        let who = match role {
            Role::ControlPlane => "masters",
            Role::Node => "nodes",
        };
        let rname = limit(&format!("{who}.{cluster}"), 64);
        let r = b.add(
            &rname,
            true,
            BTreeMap::new(),
            Props::IamRole {
                assume_role_policy: iam::assume_role_ec2(),
            },
        );
        let policy = match role {
            Role::ControlPlane => iam::control_plane(
                cluster,
                &state_bucket,
                &state_prefix,
                &iam::ControlPlaneRights {
                    autoscaler: autoscaler_on,
                    preview_domain: preview_domain.clone(),
                },
            ),
            Role::Node => iam::node(&state_bucket, &state_prefix),
        };
        b.add(
            &rname,
            false,
            BTreeMap::new(),
            Props::IamRolePolicy {
                role: r.clone(),
                policy,
            },
        );
        let p = b.add(
            &rname,
            true,
            BTreeMap::new(),
            Props::IamInstanceProfile { role: r },
        );
        profiles.insert(role, p);
    }

    // API load balancer.
    let utility_kind = match topology {
        Topology::Public => SubnetType::Public,
        Topology::Private => SubnetType::Utility,
    };
    let lb_subnets: Vec<Ref> = s
        .zones
        .iter()
        .filter_map(|z| {
            subnets
                .iter()
                .find(|(_, sz, k)| sz == z && *k == utility_kind)
                .map(|(r, _, _)| r.clone())
        })
        .collect();
    let lb = b.add_labelled(
        &format!("api-{cl}"),
        &limit_alnum(&format!("api-{cluster}"), 32),
        true,
        BTreeMap::new(),
        Props::LoadBalancer {
            internal: api.load_balancer == Some(LoadBalancerType::Internal),
            subnets: lb_subnets,
        },
    );
    let tg = b.add_labelled(
        &format!("tcp-{cl}"),
        &limit_alnum(&format!("tcp-{cluster}"), 32),
        true,
        BTreeMap::new(),
        Props::TargetGroup {
            vpc: vpc.clone(),
            port: api_port,
            preserve_client_ip: true,
        },
    );
    b.add_labelled(
        &format!("api-{cl}-{api_port}"),
        &format!("api-{cluster}-{api_port}"),
        true,
        BTreeMap::new(),
        Props::Listener {
            load_balancer: lb.clone(),
            port: api_port,
            target_group: tg.clone(),
        },
    );
    // The internal endpoint every instance uses (kops' api.internal):
    // reached inside the VPC, whatever kubernetesApiAccess allows, in the
    // instances' own subnets.
    let internal_subnets: Vec<Ref> = s
        .zones
        .iter()
        .filter_map(|z| {
            subnets
                .iter()
                .find(|(_, sz, k)| {
                    sz == z
                        && *k
                            == match topology {
                                Topology::Public => SubnetType::Public,
                                Topology::Private => SubnetType::Private,
                            }
                })
                .map(|(r, _, _)| r.clone())
        })
        .collect();
    let internal_lb = b.add_labelled(
        &format!("api-internal-{cl}"),
        &limit_alnum(&format!("api-internal-{cluster}"), 32),
        true,
        BTreeMap::new(),
        Props::LoadBalancer {
            internal: true,
            subnets: internal_subnets,
        },
    );
    let internal_tg = b.add_labelled(
        &format!("tcp-internal-{cl}"),
        &limit_alnum(&format!("tcp-internal-{cluster}"), 32),
        true,
        BTreeMap::new(),
        Props::TargetGroup {
            vpc: vpc.clone(),
            port: api_port,
            preserve_client_ip: false,
        },
    );
    b.add_labelled(
        &format!("api-internal-{cl}-{api_port}"),
        &format!("api-internal-{cluster}-{api_port}"),
        true,
        BTreeMap::new(),
        Props::Listener {
            load_balancer: internal_lb.clone(),
            port: api_port,
            target_group: internal_tg.clone(),
        },
    );
    let public_name = api
        .public_name
        .clone()
        .unwrap_or_else(|| format!("api.{cluster}"));
    let internal_name = naming::api_internal_name(cluster);
    let zone_label = tf_label(&s.dns_zone);
    for (name, target) in [(&public_name, lb), (&internal_name, internal_lb)] {
        b.add(
            name,
            false,
            BTreeMap::new(),
            Props::DnsRecord {
                zone_name: s.dns_zone.clone(),
                zone_label: zone_label.clone(),
                record_name: name.clone(),
                record_type: "A".into(),
                alias: Some(target),
                values: vec![],
            },
        );
        b.add_labelled(
            &format!("{}-txt", tf_label(name)),
            name,
            false,
            BTreeMap::new(),
            Props::DnsRecord {
                zone_name: s.dns_zone.clone(),
                zone_label: zone_label.clone(),
                record_name: name.clone(),
                record_type: "TXT".into(),
                alias: None,
                values: vec![format!("heritage=clusterctl,clusterctl/owner={cluster}")],
            },
        );
    }

    // Compute: one launch template per group, one ASG per group and zone.
    for g in &spec.groups {
        let gs = &g.spec;
        let gname = format!("{}.{cluster}", g.metadata.name);
        let role_name = match gs.role {
            Role::ControlPlane => "ControlPlane",
            Role::Node => "Node",
        };
        let mut instance_tags = base_tags(cluster, &gname, &s.tags);
        instance_tags.extend(gs.cloud_labels.clone());
        instance_tags.insert(naming::TAG_INSTANCE_GROUP.into(), g.metadata.name.clone());
        instance_tags.insert(naming::TAG_ROLE.into(), role_name.into());
        let image = image_of(gs.image.as_deref().unwrap_or(crate::spec::defaults::IMAGE));
        let mixed = gs.mixed_instances_policy.as_ref().map(|m| MixedInstances {
            instance_types: m.instances.clone(),
            on_demand_base: m.on_demand_base.unwrap_or(0),
            on_demand_above_base: m.on_demand_above_base.unwrap_or(0),
            spot_allocation_strategy: m.spot_allocation_strategy.clone().unwrap_or_default(),
            spot_max_price: gs.max_price.clone(),
        });
        let user_data = nodeup::render(
            spec,
            g,
            &nodeup::Endpoints {
                public: &public_name,
                internal: &internal_name,
                port: api_port,
            },
            &state_bucket,
            &state_prefix,
        )
        .map_err(|source| ModelError::UserData {
            group: g.metadata.name.clone(),
            source,
        })?;
        let sg = match gs.role {
            Role::ControlPlane => masters_sg.clone(),
            Role::Node => nodes_sg.clone(),
        };
        let lt = b.add(
            &gname,
            true,
            BTreeMap::new(),
            Props::LaunchTemplate {
                image,
                instance_type: gs.machine_type.clone(),
                instance_profile: profiles[&gs.role].clone(),
                security_groups: vec![sg],
                key_name: s.ssh_key_name.clone(),
                associate_public_ip: topology == Topology::Public,
                root_device: "/dev/sda1".into(),
                root_volume_size: gs.root_volume_size.unwrap_or(64),
                root_volume_type: gs.root_volume_type.clone().unwrap_or_else(|| "gp3".into()),
                metadata_hop_limit: 1,
                spot_max_price: if mixed.is_none() {
                    gs.max_price.clone()
                } else {
                    None
                },
                instance_tags: instance_tags.clone(),
                user_data,
            },
        );
        let zones = gs.zones.clone().unwrap_or_default();
        let instance_kind = match topology {
            Topology::Public => SubnetType::Public,
            Topology::Private => SubnetType::Private,
        };
        let auto = gs.autoscaler.clone().unwrap_or_default();
        for (i, zone) in zones.iter().enumerate() {
            let asg_name = if zones.len() == 1 {
                gname.clone()
            } else {
                format!("{}-{zone}.{cluster}", g.metadata.name)
            };
            let asg_name = limit(&asg_name, 255);
            let mut t = instance_tags.clone();
            t.insert("Name".into(), asg_name.clone());
            t.insert(
                format!(
                    "{}topology.kubernetes.io/zone",
                    naming::TAG_NODE_TEMPLATE_LABEL
                ),
                zone.clone(),
            );
            t.insert(
                format!(
                    "{}node.kubernetes.io/instance-type",
                    naming::TAG_NODE_TEMPLATE_LABEL
                ),
                gs.machine_type.clone(),
            );
            for (k, v) in &gs.node_labels {
                t.insert(format!("{}{k}", naming::TAG_NODE_TEMPLATE_LABEL), v.clone());
            }
            for taint in &gs.taints {
                if let Ok(tt) = crate::spec::validate::parse_taint(taint) {
                    t.insert(
                        format!("{}{}", naming::TAG_NODE_TEMPLATE_TAINT, tt.key),
                        format!("{}:{}", tt.value, tt.effect),
                    );
                }
            }
            if auto.enabled == Some(true) {
                t.insert(naming::TAG_AUTOSCALER_ENABLED.into(), "true".into());
                t.insert(
                    format!("k8s.io/cluster-autoscaler/{cluster}"),
                    "owned".into(),
                );
                t.insert(
                    naming::TAG_AUTOSCALER_BALANCE.into(),
                    auto.balance_zones.unwrap_or(true).to_string(),
                );
                t.insert(
                    naming::TAG_AUTOSCALER_PRIORITY.into(),
                    auto.priority.unwrap_or(0).to_string(),
                );
            }
            let zone_subnets: Vec<Ref> = subnets
                .iter()
                .filter(|(_, z, k)| z == zone && *k == instance_kind)
                .map(|(r, _, _)| r.clone())
                .collect();
            let id = Ref {
                kind: Kind::AutoscalingGroup,
                label: tf_label(&asg_name),
            };
            b.resources.push(Resource {
                id: id.clone(),
                label: id.label.clone(),
                name: asg_name.clone(),
                tags: t,
                props: Props::AutoscalingGroup {
                    launch_template: lt.clone(),
                    subnets: zone_subnets,
                    zone: zone.clone(),
                    instance_group: g.metadata.name.clone(),
                    min_size: split(gs.min_size, zones.len(), i),
                    max_size: split(gs.max_size, zones.len(), i),
                    target_groups: if gs.role == Role::ControlPlane {
                        vec![tg.clone(), internal_tg.clone()]
                    } else {
                        vec![]
                    },
                    elb_health_check: gs.role == Role::ControlPlane,
                    mixed_instances: mixed.clone(),
                },
            });
        }
    }

    // State store objects.
    let addons = crate::addons::channel::render(spec)?;
    let mut objects: Vec<(String, String)> = vec![
        ("config".into(), spec.user_cluster.clone()),
        (
            "cluster-completed.spec".into(),
            spec.completed_cluster_yaml(),
        ),
        (
            "clusterctl-version".into(),
            format!("{}\n", env!("CARGO_PKG_VERSION")),
        ),
    ];
    for g in &spec.groups {
        objects.push((
            format!("instancegroup/{}", g.metadata.name),
            crate::spec::to_yaml(g),
        ));
    }
    for (path, content) in &addons {
        objects.push((format!("addons/{path}"), content.clone()));
    }
    for (key, content) in objects {
        let full = format!("{state_prefix}/{key}");
        b.add(
            &full,
            false,
            BTreeMap::new(),
            Props::S3Object {
                bucket: state_bucket.clone(),
                key: full.clone(),
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes())),
                content,
            },
        );
    }

    Ok(Model {
        cluster_name: cluster.to_string(),
        region: s.region.clone(),
        state_bucket,
        state_prefix,
        zones: s.zones.clone(),
        resources: b.resources,
        addons,
    })
}

/// `s3://bucket/some/prefix` → (`bucket`, `some/prefix/<cluster>`).
pub fn state_location(store: &str, cluster: &str) -> (String, String) {
    let rest = store.strip_prefix("s3://").unwrap_or(store);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    let key = if prefix.is_empty() {
        cluster.to_string()
    } else {
        format!("{prefix}/{cluster}")
    };
    (bucket.to_string(), key)
}

fn image_of(spec_image: &str) -> Image {
    if spec_image.starts_with("ami-") {
        return Image::Ami {
            id: spec_image.to_string(),
        };
    }
    let (owner, name) = spec_image.split_once('/').unwrap_or(("self", spec_image));
    Image::Lookup {
        label: tf_label(&limit(&format!("{owner}-{name}"), 64)),
        owner: owner.into(),
        name: name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sizes_over_zones() {
        let v: Vec<u32> = (0..3).map(|i| split(10, 3, i)).collect();
        assert_eq!(v, [4, 3, 3]);
        let v: Vec<u32> = (0..3).map(|i| split(1, 3, i)).collect();
        assert_eq!(v, [1, 0, 0]);
        assert_eq!((0..3).map(|i| split(7, 3, i)).sum::<u32>(), 7);
    }

    #[test]
    fn state_locations() {
        assert_eq!(
            state_location("s3://b/p/q/", "c"),
            ("b".into(), "p/q/c".into())
        );
        assert_eq!(state_location("s3://b", "c"), ("b".into(), "c".into()));
    }
}
