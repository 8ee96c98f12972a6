//! The comparable form of a resource: a flat, sorted map of attribute →
//! string, with references written as the referenced resource's address.
//! The desired side comes from the model; each cloud implementation builds
//! the same map from what it describes, so the diff is generic.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::model::{Image, Props, Resource};

/// Attribute → value.
pub type Attrs = BTreeMap<String, String>;

/// A digest of large content (user data, object bodies).
pub fn digest(s: &str) -> String {
    format!(
        "sha256:{}",
        &hex::encode(Sha256::digest(s.as_bytes()))[..16]
    )
}

/// A policy document in canonical form (compact, object keys sorted), so
/// neither formatting nor key order (Terraform's `jsonencode` sorts keys, we
/// write them in AWS's documented order) ever shows as a change.
pub fn canonical_json(s: &str) -> String {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<(String, serde_json::Value)> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    serde_json::from_str::<serde_json::Value>(s)
        .map(|v| sorted(v).to_string())
        .unwrap_or_else(|_| s.to_string())
}

fn set(a: &mut Attrs, k: &str, v: impl ToString) {
    a.insert(k.to_string(), v.to_string());
}

/// Tags as `tags.<key>` attributes.
pub fn tags(a: &mut Attrs, prefix: &str, t: &BTreeMap<String, String>) {
    for (k, v) in t {
        a.insert(format!("{prefix}.{k}"), v.clone());
    }
}

/// Sorted, comma-joined list.
pub fn list<I: IntoIterator<Item = S>, S: ToString>(items: I) -> String {
    let mut v: Vec<String> = items.into_iter().map(|s| s.to_string()).collect();
    v.sort();
    v.join(",")
}

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
            ..
        } => {
            set(&mut a, "name", &r.name);
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
        Props::TargetGroup { vpc, port } => {
            set(&mut a, "name", &r.name);
            set(&mut a, "vpc", vpc.address());
            set(&mut a, "port", port);
            set(&mut a, "protocol", "TCP");
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
            content,
            ..
        } => {
            set(&mut a, "bucket", bucket);
            set(&mut a, "key", key);
            // S3 reports the MD5 of a single-part object as its ETag.
            let md5 = <md5::Md5 as md5::Digest>::digest(content.as_bytes());
            set(&mut a, "content", format!("md5:{}", hex::encode(md5)));
        }
    }
    a
}

/// Attributes that cannot change in place: a change replaces the resource.
pub fn forces_replacement(kind: &str, attr: &str) -> bool {
    let immutable: &[&str] = match kind {
        "aws_vpc" => &["cidr_block"],
        "aws_internet_gateway" | "aws_route_table" => &["vpc"],
        "aws_subnet" => &["vpc", "availability_zone", "cidr_block"],
        "aws_route" | "aws_route_table_association" | "aws_security_group_rule" => {
            return !attr.starts_with("tags.");
        }
        "aws_nat_gateway" => &["eip", "subnet"],
        "aws_security_group" => &["name", "description", "vpc"],
        "aws_iam_role"
        | "aws_iam_instance_profile"
        | "aws_launch_template"
        | "aws_autoscaling_group" => &["name"],
        "aws_iam_role_policy" => &["name", "role"],
        "aws_lb" => &["name", "internal"],
        "aws_lb_target_group" => &["name", "vpc", "port", "protocol"],
        "aws_lb_listener" => &["load_balancer", "port"],
        "aws_route53_record" => &["zone", "name", "type"],
        "aws_s3_object" => &["bucket", "key"],
        _ => &[],
    };
    immutable.contains(&attr)
}

/// Launch template attributes whose change needs new instances.
pub fn needs_new_instances(kind: &str, attr: &str) -> bool {
    kind == "aws_launch_template" && !attr.starts_with("tags.") && attr != "name"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_layout_and_key_order() {
        let a = canonical_json(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["a", "b"]}]}"#,
        );
        let b = canonical_json(
            r#"{"Statement":[{"Action":["a","b"],"Effect":"Allow"}],"Version":"2012-10-17"}"#,
        );
        assert_eq!(a, b);
        // Array order is meaning, not layout.
        let c = canonical_json(
            r#"{"Statement":[{"Action":["b","a"],"Effect":"Allow"}],"Version":"2012-10-17"}"#,
        );
        assert_ne!(a, c);
    }
}
