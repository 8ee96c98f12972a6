//! Security groups and their rules. A rule the model gives several CIDRs
//! is several entries in AWS: they are matched back to the model's rule.

use std::collections::HashMap;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::network::{VpcScan, tagged};
use super::{AwsCloud, Names, err, tag_spec};
use crate::cloud::{CloudError, IdMap};
use crate::model::{Model, Props, Resource};
use crate::resource::attrs::list;
use crate::resource::{Actual, Attrs, Kind};

/// The cluster's security groups (from the scan of its VPCs) and their
/// rules (one DescribeSecurityGroupRules call).
pub(super) fn actuals(
    cloud: &AwsCloud,
    model: &Model,
    names: &Names,
    scan: &VpcScan,
    by_id: &mut HashMap<String, String>,
) -> Vec<Actual> {
    let mut out = Vec::new();
    let mut sg_ids = Vec::new();
    for g in scan
        .security_groups
        .iter()
        .filter(|g| tagged(cloud, g.tags()))
    {
        let mut a = Attrs::new();
        a.insert("name".into(), g.group_name().unwrap_or_default().into());
        a.insert(
            "description".into(),
            g.description().unwrap_or_default().into(),
        );
        let vpc = g.vpc_id().unwrap_or_default();
        a.insert(
            "vpc".into(),
            by_id.get(vpc).cloned().unwrap_or_else(|| vpc.to_string()),
        );
        let mut act = cloud.actual(
            Kind::SecurityGroup,
            names,
            g.group_id().unwrap_or_default(),
            g.tags(),
            a,
        );
        act.name = g.group_name().unwrap_or_default().to_string();
        act.address = names.address(Kind::SecurityGroup, &act.name);
        by_id.insert(act.id.clone(), act.address.clone());
        sg_ids.push((act.id.clone(), act.owned));
        out.push(act);
    }
    if !sg_ids.is_empty() {
        out.extend(match_rules(
            model,
            &scan.security_group_rules,
            by_id,
            &sg_ids,
        ));
    }
    out
}

/// The rules of the cluster's groups among `groups` (one paginated call,
/// none when the cluster has no group).
pub(super) async fn fetch_rules(
    cloud: &AwsCloud,
    groups: &[aws_sdk_ec2::types::SecurityGroup],
) -> Result<Vec<aws_sdk_ec2::types::SecurityGroupRule>, CloudError> {
    let ids: Vec<String> = groups
        .iter()
        .filter(|g| tagged(cloud, g.tags()))
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    all_items!(
        cloud.ec2.describe_security_group_rules().filters(
            Filter::builder()
                .name("group-id")
                .set_values(Some(ids))
                .build(),
        ),
        "DescribeSecurityGroupRules",
        "aws_security_group_rule",
    )
}

/// Creates a security group (without AWS's default allow-all egress) or a rule.
pub(super) async fn create(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<String, CloudError> {
    let address = r.id.address();
    let a = address.as_str();
    match &r.props {
        Props::SecurityGroup { vpc, description } => {
            let id = cloud
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
            let _ = cloud
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
                match cloud
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
                match cloud
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
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Deletes a security group or a rule.
pub(super) async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    match kind {
        Kind::SecurityGroup => cloud
            .ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteSecurityGroup", address, e)),
        Kind::SecurityGroupRule => {
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
                cloud
                    .ec2
                    .revoke_security_group_egress()
                    .group_id(sg)
                    .set_security_group_rule_ids(Some(rule_ids))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("RevokeSecurityGroupEgress", address, e))
            } else {
                cloud
                    .ec2
                    .revoke_security_group_ingress()
                    .group_id(sg)
                    .set_security_group_rule_ids(Some(rule_ids))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("RevokeSecurityGroupIngress", address, e))
            }
        }
        other => Err(CloudError::WrongArea(other)),
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
            kind: Kind::SecurityGroupRule,
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
            kind: Kind::SecurityGroupRule,
            name: id.into(),
            id: format!("{group}|{}:{id}", dir(r)),
            attrs: Attrs::new(),
            owned,
        });
    }
    out
}
