//! The attributes the model wants for each resource, in the comparable
//! form of [`crate::resource::attrs`].

use super::{Image, Props, Resource};

/// Seconds an instance has to become healthy behind the load balancer:
/// packages, images and `kubeadm init` take several minutes.
pub const ELB_HEALTH_CHECK_GRACE: i32 = 900;
use crate::resource::attrs::{Attrs, canonical_json, digest, list, set, tags};

/// The attributes the model wants for a resource.
pub fn desired(r: &Resource) -> Attrs {
    let mut a = Attrs::new();
    tags(&mut a, "tags", &r.tags);
    match &r.props {
        Props::Vpc { cidr } => {
            set(&mut a, "cidr_block", cidr);
            set(&mut a, "enable_dns_hostnames", true);
            set(&mut a, "enable_dns_support", true);
        }
        Props::InternetGateway { vpc } => set(&mut a, "vpc", vpc.address()),
        Props::Subnet {
            vpc,
            zone,
            cidr,
            map_public_ip,
            ..
        } => {
            set(&mut a, "vpc", vpc.address());
            set(&mut a, "availability_zone", zone);
            set(&mut a, "cidr_block", cidr);
            set(&mut a, "map_public_ip_on_launch", map_public_ip);
        }
        Props::RouteTable { vpc } => set(&mut a, "vpc", vpc.address()),
        Props::Route {
            route_table,
            destination,
            gateway,
            nat_gateway,
        } => {
            set(&mut a, "route_table", route_table.address());
            set(&mut a, "destination", destination);
            if let Some(g) = gateway {
                set(&mut a, "gateway", g.address());
            }
            if let Some(n) = nat_gateway {
                set(&mut a, "nat_gateway", n.address());
            }
        }
        Props::RouteTableAssociation {
            subnet,
            route_table,
        } => {
            set(&mut a, "subnet", subnet.address());
            set(&mut a, "route_table", route_table.address());
        }
        Props::Eip {} => {}
        Props::NatGateway { eip, subnet } => {
            set(&mut a, "eip", eip.address());
            set(&mut a, "subnet", subnet.address());
        }
        Props::SecurityGroup { vpc, description } => {
            set(&mut a, "name", &r.name);
            set(&mut a, "description", description);
            set(&mut a, "vpc", vpc.address());
        }
        Props::SecurityGroupRule {
            security_group,
            direction,
            protocol,
            from_port,
            to_port,
            peer,
        } => {
            set(&mut a, "security_group", security_group.address());
            set(&mut a, "type", direction);
            set(&mut a, "protocol", protocol);
            set(&mut a, "from_port", from_port);
            set(&mut a, "to_port", to_port);
            if !peer.cidrs.is_empty() {
                set(&mut a, "cidr_blocks", list(&peer.cidrs));
            }
            if let Some(sg) = &peer.security_group {
                set(&mut a, "source_security_group", sg.address());
            }
        }
        Props::IamRole { assume_role_policy } => {
            set(&mut a, "name", &r.name);
            set(
                &mut a,
                "assume_role_policy",
                canonical_json(assume_role_policy),
            );
        }
        Props::IamRolePolicy { role, policy } => {
            set(&mut a, "name", &r.name);
            set(&mut a, "role", role.address());
            set(&mut a, "policy", canonical_json(policy));
        }
        Props::IamInstanceProfile { role } => {
            set(&mut a, "name", &r.name);
            set(&mut a, "role", role.address());
        }
        Props::LaunchTemplate {
            image,
            instance_type,
            instance_profile,
            security_groups,
            key_name,
            associate_public_ip,
            root_device,
            root_volume_size,
            root_volume_type,
            metadata_hop_limit,
            spot_max_price,
            instance_tags,
            user_data,
        } => {
            set(&mut a, "name", &r.name);
            match image {
                Image::Ami { id } => set(&mut a, "image", id),
                Image::Lookup { owner, name, .. } => {
                    set(&mut a, "image", format!("{owner}/{name}"))
                }
            }
            set(&mut a, "instance_type", instance_type);
            set(&mut a, "instance_profile", instance_profile.address());
            set(
                &mut a,
                "security_groups",
                list(security_groups.iter().map(|s| s.address())),
            );
            if let Some(k) = key_name {
                set(&mut a, "key_name", k);
            }
            set(&mut a, "associate_public_ip_address", associate_public_ip);
            set(&mut a, "root_device", root_device);
            set(&mut a, "root_volume_size", root_volume_size);
            set(&mut a, "root_volume_type", root_volume_type);
            set(&mut a, "metadata_hop_limit", metadata_hop_limit);
            if let Some(p) = spot_max_price {
                set(&mut a, "spot_max_price", p);
            }
            tags(&mut a, "instance_tags", instance_tags);
            set(&mut a, "user_data", digest(user_data));
        }
        Props::AutoscalingGroup {
            launch_template,
            subnets,
            min_size,
            max_size,
            target_groups,
            mixed_instances,
            elb_health_check,
            ..
        } => {
            set(&mut a, "name", &r.name);
            // Only where it differs from AWS's default (EC2 checks).
            if *elb_health_check {
                set(&mut a, "health_check_type", "ELB");
                set(&mut a, "health_check_grace_period", ELB_HEALTH_CHECK_GRACE);
            }
            set(&mut a, "launch_template", launch_template.address());
            set(&mut a, "subnets", list(subnets.iter().map(|s| s.address())));
            set(&mut a, "min_size", min_size);
            set(&mut a, "max_size", max_size);
            if !target_groups.is_empty() {
                set(
                    &mut a,
                    "target_groups",
                    list(target_groups.iter().map(|s| s.address())),
                );
            }
            if let Some(m) = mixed_instances {
                set(&mut a, "mixed.instance_types", m.instance_types.join(","));
                set(&mut a, "mixed.on_demand_base", m.on_demand_base);
                set(&mut a, "mixed.on_demand_above_base", m.on_demand_above_base);
                set(
                    &mut a,
                    "mixed.spot_allocation_strategy",
                    &m.spot_allocation_strategy,
                );
                if let Some(p) = &m.spot_max_price {
                    set(&mut a, "mixed.spot_max_price", p);
                }
            }
        }
        Props::LoadBalancer { internal, subnets } => {
            set(&mut a, "name", &r.name);
            set(&mut a, "internal", internal);
            set(&mut a, "subnets", list(subnets.iter().map(|s| s.address())));
        }
        Props::TargetGroup {
            vpc,
            port,
            preserve_client_ip,
        } => {
            set(&mut a, "name", &r.name);
            set(&mut a, "vpc", vpc.address());
            set(&mut a, "port", port);
            set(&mut a, "protocol", "TCP");
            // Compared only where it differs from AWS's default, so that
            // discovery reads the attributes of that target group alone.
            if !preserve_client_ip {
                set(&mut a, "preserve_client_ip", "false");
            }
        }
        Props::Listener {
            load_balancer,
            port,
            target_group,
        } => {
            set(&mut a, "load_balancer", load_balancer.address());
            set(&mut a, "port", port);
            set(&mut a, "target_group", target_group.address());
        }
        Props::DnsRecord {
            zone_name,
            record_name,
            record_type,
            alias,
            values,
            ..
        } => {
            set(&mut a, "zone", zone_name);
            set(&mut a, "name", record_name);
            set(&mut a, "type", record_type);
            if let Some(al) = alias {
                set(&mut a, "alias", al.address());
            }
            if !values.is_empty() {
                set(&mut a, "records", list(values));
            }
        }
        Props::S3Object {
            bucket,
            key,
            sha256,
            ..
        } => {
            set(&mut a, "bucket", bucket);
            set(&mut a, "key", key);
            // The cloud proves equality by the ETag (when it is an MD5) or
            // by the digest it stored in the object's metadata.
            set(&mut a, "content", format!("sha256:{sha256}"));
        }
    }
    a
}
