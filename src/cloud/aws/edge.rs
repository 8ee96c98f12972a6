//! The edge: the API load balancer (NLB, target group, listener) and its
//! Route53 records. DNS ownership is the TXT record
//! next to the A record, as external-dns does it.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticloadbalancingv2 as elb;
use aws_sdk_route53 as r53;

use super::{AwsCloud, err};
use crate::cloud::{CloudError, IdMap};
use crate::model::naming::tf_label;
use crate::model::{Model, Props, Resource};
use crate::resource::attrs::{list, tags as tag_attrs};
use crate::resource::{Actual, AttrChange, Attrs, Kind};

/// The value of the TXT record that marks a DNS name as this cluster's
/// (quoted, as Route53 returns TXT values).
fn owner_value(cluster: &str) -> String {
    format!("\"heritage=clusterctl,clusterctl/owner={cluster}\"")
}

fn build_err(
    what: &str,
    address: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> CloudError {
    CloudError::Build {
        what: what.to_string(),
        address: address.to_string(),
        source: Box::new(e),
    }
}

/// Load balancers, target groups and listeners the model names, plus any
/// carrying this cluster's ownership tag.
pub(super) async fn discover(
    cloud: &AwsCloud,
    model: &Model,
    by_id: &mut HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    let names: HashMap<(Kind, &str), String> = model
        .resources
        .iter()
        .map(|r| ((r.id.kind, r.name.as_str()), r.id.address()))
        .collect();
    let owner = crate::model::naming::ownership_tag(&cloud.cluster);
    let mut out = Vec::new();
    let lbs = cloud
        .elb
        .describe_load_balancers()
        .send()
        .await
        .map_err(|e| err("DescribeLoadBalancers", "aws_lb", e))?;
    let tgs = cloud
        .elb
        .describe_target_groups()
        .send()
        .await
        .map_err(|e| err("DescribeTargetGroups", "aws_lb_target_group", e))?;
    let mut arns: Vec<String> = lbs
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .collect();
    arns.extend(
        tgs.target_groups()
            .iter()
            .filter_map(|t| t.target_group_arn().map(str::to_string)),
    );
    let mut tags: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for chunk in arns.chunks(20) {
        let t = cloud
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| err("DescribeTags", "aws_lb", e))?;
        for d in t.tag_descriptions() {
            let m = d
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect();
            tags.insert(d.resource_arn().unwrap_or_default().to_string(), m);
        }
    }
    let mine =
        |kind: Kind, name: &str, arn: &str| -> Option<(String, bool, BTreeMap<String, String>)> {
            let t = tags.get(arn).cloned().unwrap_or_default();
            let owned = t.get(&owner).is_some_and(|v| v == "owned");
            let known = names.get(&(kind, name)).cloned();
            if known.is_none() && !owned {
                return None;
            }
            Some((
                known.unwrap_or_else(|| format!("{kind}.{}", tf_label(name))),
                owned,
                t,
            ))
        };
    let mut lb_dns: HashMap<String, String> = HashMap::new();
    for l in lbs.load_balancers() {
        let (Some(arn), Some(name)) = (l.load_balancer_arn(), l.load_balancer_name()) else {
            continue;
        };
        let Some((address, owned, t)) = mine(Kind::LoadBalancer, name, arn) else {
            continue;
        };
        let mut a = Attrs::new();
        a.insert("name".into(), name.into());
        a.insert(
            "internal".into(),
            (l.scheme() == Some(&elb::types::LoadBalancerSchemeEnum::Internal)).to_string(),
        );
        a.insert(
            "subnets".into(),
            list(
                l.availability_zones()
                    .iter()
                    .filter_map(|z| z.subnet_id())
                    .map(|s| by_id.get(s).cloned().unwrap_or_else(|| s.to_string())),
            ),
        );
        tag_attrs(&mut a, "tags", &t);
        by_id.insert(arn.into(), address.clone());
        lb_dns.insert(
            l.dns_name()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_lowercase(),
            address.clone(),
        );
        out.push(Actual {
            address,
            kind: Kind::LoadBalancer,
            name: name.into(),
            id: arn.into(),
            attrs: a,
            owned,
        });
        let ls = cloud
            .elb
            .describe_listeners()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(|e| err("DescribeListeners", name, e))?;
        for li in ls.listeners() {
            let port = li.port().unwrap_or(0);
            let lb_address = by_id.get(arn).cloned().unwrap_or_default();
            let model_listener = model.resources.iter().find(|r| matches!(&r.props, Props::Listener { load_balancer, port: p, .. } if load_balancer.address() == lb_address && i32::from(*p) == port));
            let (address, lname) = match model_listener {
                Some(r) => (r.id.address(), r.name.clone()),
                None => (
                    format!("aws_lb_listener.{}-{port}", tf_label(name)),
                    format!("{name}-{port}"),
                ),
            };
            let mut a = Attrs::new();
            a.insert("load_balancer".into(), lb_address);
            a.insert("port".into(), port.to_string());
            if let Some(tg) = li
                .default_actions()
                .first()
                .and_then(|d| d.target_group_arn())
            {
                a.insert("target_group".into(), tg.to_string());
            }
            if let Some(m) = model_listener {
                tag_attrs(&mut a, "tags", &m.tags);
            }
            out.push(Actual {
                address,
                kind: Kind::Listener,
                name: lname,
                id: li.listener_arn().unwrap_or_default().into(),
                attrs: a,
                owned,
            });
        }
    }
    for t in tgs.target_groups() {
        let (Some(arn), Some(name)) = (t.target_group_arn(), t.target_group_name()) else {
            continue;
        };
        let Some((address, owned, tg_tags)) = mine(Kind::TargetGroup, name, arn) else {
            continue;
        };
        let mut a = Attrs::new();
        a.insert("name".into(), name.into());
        a.insert("port".into(), t.port().unwrap_or(0).to_string());
        a.insert(
            "protocol".into(),
            t.protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        );
        a.insert(
            "vpc".into(),
            t.vpc_id()
                .map(|v| by_id.get(v).cloned().unwrap_or_else(|| v.to_string()))
                .unwrap_or_default(),
        );
        tag_attrs(&mut a, "tags", &tg_tags);
        by_id.insert(arn.into(), address.clone());
        out.push(Actual {
            address,
            kind: Kind::TargetGroup,
            name: name.into(),
            id: arn.into(),
            attrs: a,
            owned,
        });
    }
    // Listener target groups were read before the groups: map them now.
    for a in out.iter_mut().filter(|a| a.kind == "aws_lb_listener") {
        if let Some(tg) = a.attrs.get("target_group").cloned() {
            a.attrs
                .insert("target_group".into(), by_id.get(&tg).cloned().unwrap_or(tg));
        }
    }
    out.extend(discover_dns(cloud, model, &lb_dns).await?);
    Ok(out)
}

async fn zone_id(cloud: &AwsCloud, zone: &str) -> Result<Option<String>, CloudError> {
    let z = cloud
        .route53
        .list_hosted_zones_by_name()
        .dns_name(zone)
        .send()
        .await
        .map_err(|e| err("ListHostedZonesByName", zone, e))?;
    let want = format!("{}.", zone.trim_end_matches('.'));
    Ok(z.hosted_zones()
        .iter()
        .find(|h| h.name() == want && !h.config().is_some_and(|c| c.private_zone()))
        .map(|h| h.id().to_string()))
}

async fn discover_dns(
    cloud: &AwsCloud,
    model: &Model,
    lb_dns: &HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    let mut out = Vec::new();
    let records: Vec<&Resource> = model
        .resources
        .iter()
        .filter(|r| r.id.kind == Kind::DnsRecord)
        .collect();
    let mut zones: Vec<&str> = records
        .iter()
        .filter_map(|r| {
            if let Props::DnsRecord { zone_name, .. } = &r.props {
                Some(zone_name.as_str())
            } else {
                None
            }
        })
        .collect();
    zones.sort();
    zones.dedup();
    let owner_value = owner_value(&cloud.cluster);
    for zone in zones {
        let Some(zid) = zone_id(cloud, zone).await? else {
            continue;
        };
        let mut sets = Vec::new();
        let mut start: Option<(String, r53::types::RrType)> = None;
        loop {
            let mut req = cloud
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(&zid);
            if let Some((n, t)) = &start {
                req = req.start_record_name(n).start_record_type(t.clone());
            }
            let page = req
                .send()
                .await
                .map_err(|e| err("ListResourceRecordSets", zone, e))?;
            sets.extend(page.resource_record_sets().iter().cloned());
            match (
                page.is_truncated(),
                page.next_record_name(),
                page.next_record_type(),
            ) {
                (true, Some(n), Some(t)) => start = Some((n.to_string(), t.clone())),
                _ => break,
            }
        }
        let owned_names: Vec<String> = sets
            .iter()
            .filter(|s| {
                s.r#type() == &r53::types::RrType::Txt
                    && s.resource_records()
                        .iter()
                        .any(|r| r.value() == owner_value)
            })
            .map(|s| s.name().trim_end_matches('.').to_string())
            .collect();
        for s in &sets {
            let name = s.name().trim_end_matches('.').to_string();
            if !owned_names.contains(&name)
                || !matches!(s.r#type(), r53::types::RrType::A | r53::types::RrType::Txt)
            {
                continue;
            }
            let ty = s.r#type().as_str().to_string();
            let model_r = records.iter().find(|r| matches!(&r.props, Props::DnsRecord { record_name, record_type, .. } if *record_name == name && *record_type == ty));
            let address = model_r.map(|r| r.id.address()).unwrap_or_else(|| {
                format!(
                    "aws_route53_record.{}-{}",
                    tf_label(&name),
                    ty.to_lowercase()
                )
            });
            let mut a = Attrs::new();
            a.insert("zone".into(), zone.into());
            a.insert("name".into(), name.clone());
            a.insert("type".into(), ty.clone());
            if let Some(al) = s.alias_target() {
                let dns = al.dns_name().trim_end_matches('.').to_lowercase();
                a.insert("alias".into(), lb_dns.get(&dns).cloned().unwrap_or(dns));
            }
            if ty == "TXT" {
                a.insert(
                    "records".into(),
                    list(
                        s.resource_records()
                            .iter()
                            .map(|r| r.value().trim_matches('"').to_string()),
                    ),
                );
            }
            out.push(Actual {
                address,
                kind: Kind::DnsRecord,
                name: name.clone(),
                id: format!("{zid}|{name}|{ty}"),
                attrs: a,
                owned: true,
            });
        }
    }
    Ok(out)
}

fn elb_tags(r: &Resource) -> Vec<elb::types::Tag> {
    r.tags
        .iter()
        .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
        .collect()
}

async fn record_set(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<(String, r53::types::ResourceRecordSet), CloudError> {
    let a = r.id.address();
    let Props::DnsRecord {
        zone_name,
        record_name,
        record_type,
        alias,
        values,
        ..
    } = &r.props
    else {
        return Err(CloudError::WrongArea(r.id.kind));
    };
    let zid = zone_id(cloud, zone_name)
        .await?
        .ok_or_else(|| CloudError::NoZone {
            address: a.clone(),
            zone: zone_name.clone(),
        })?;
    let mut set = r53::types::ResourceRecordSet::builder()
        .name(record_name)
        .r#type(r53::types::RrType::from(record_type.as_str()));
    if let Some(lb) = alias {
        let arn = ids.resolve(&a, lb)?;
        let d = cloud
            .elb
            .describe_load_balancers()
            .load_balancer_arns(&arn)
            .send()
            .await
            .map_err(|e| err("DescribeLoadBalancers", &a, e))?;
        let l = d
            .load_balancers()
            .first()
            .ok_or_else(|| CloudError::Unresolved {
                address: a.clone(),
                missing: lb.address(),
            })?;
        set = set.alias_target(
            r53::types::AliasTarget::builder()
                .dns_name(l.dns_name().unwrap_or_default())
                .hosted_zone_id(l.canonical_hosted_zone_id().unwrap_or_default())
                .evaluate_target_health(false)
                .build()
                .map_err(|e| build_err("AliasTarget", &a, e))?,
        );
    } else {
        set = set.ttl(300);
        for v in values {
            set = set.resource_records(
                r53::types::ResourceRecord::builder()
                    .value(format!("\"{v}\""))
                    .build()
                    .map_err(|e| build_err("ResourceRecord", &a, e))?,
            );
        }
    }
    Ok((
        zid,
        set.build()
            .map_err(|e| build_err("ResourceRecordSet", &a, e))?,
    ))
}

async fn change(
    cloud: &AwsCloud,
    address: &str,
    zid: &str,
    action: r53::types::ChangeAction,
    set: r53::types::ResourceRecordSet,
) -> Result<(), CloudError> {
    let change = r53::types::Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| build_err("Change", address, e))?;
    let batch = r53::types::ChangeBatch::builder()
        .changes(change)
        .build()
        .map_err(|e| build_err("ChangeBatch", address, e))?;
    cloud
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(zid)
        .change_batch(batch)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err("ChangeResourceRecordSets", address, e))
}

/// Creates an edge resource, reusing one a crashed run made.
pub(super) async fn create(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<String, CloudError> {
    let a = r.id.address();
    match &r.props {
        Props::LoadBalancer { internal, subnets } => {
            if let Ok(found) = cloud
                .elb
                .describe_load_balancers()
                .names(&r.name)
                .send()
                .await
                && let Some(arn) = found
                    .load_balancers()
                    .first()
                    .and_then(|l| l.load_balancer_arn())
            {
                return Ok(arn.to_string());
            }
            let subnet_ids = subnets
                .iter()
                .map(|s| ids.resolve(&a, s))
                .collect::<Result<Vec<_>, _>>()?;
            let scheme = if *internal {
                elb::types::LoadBalancerSchemeEnum::Internal
            } else {
                elb::types::LoadBalancerSchemeEnum::InternetFacing
            };
            let o = cloud
                .elb
                .create_load_balancer()
                .name(&r.name)
                .r#type(elb::types::LoadBalancerTypeEnum::Network)
                .scheme(scheme)
                .set_subnets(Some(subnet_ids))
                .set_tags(Some(elb_tags(r)))
                .send()
                .await
                .map_err(|e| err("CreateLoadBalancer", &a, e))?;
            Ok(o.load_balancers()
                .first()
                .and_then(|l| l.load_balancer_arn())
                .unwrap_or_default()
                .to_string())
        }
        Props::TargetGroup { vpc, port } => {
            if let Ok(found) = cloud
                .elb
                .describe_target_groups()
                .names(&r.name)
                .send()
                .await
                && let Some(arn) = found
                    .target_groups()
                    .first()
                    .and_then(|t| t.target_group_arn())
            {
                return Ok(arn.to_string());
            }
            let o = cloud
                .elb
                .create_target_group()
                .name(&r.name)
                .protocol(elb::types::ProtocolEnum::Tcp)
                .port(i32::from(*port))
                .vpc_id(ids.resolve(&a, vpc)?)
                .health_check_protocol(elb::types::ProtocolEnum::Tcp)
                .healthy_threshold_count(2)
                .unhealthy_threshold_count(2)
                .health_check_interval_seconds(10)
                .set_tags(Some(elb_tags(r)))
                .send()
                .await
                .map_err(|e| err("CreateTargetGroup", &a, e))?;
            Ok(o.target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string())
        }
        Props::Listener {
            load_balancer,
            port,
            target_group,
        } => {
            let lb = ids.resolve(&a, load_balancer)?;
            let tg = ids.resolve(&a, target_group)?;
            let existing = cloud
                .elb
                .describe_listeners()
                .load_balancer_arn(&lb)
                .send()
                .await
                .map_err(|e| err("DescribeListeners", &a, e))?;
            if let Some(l) = existing
                .listeners()
                .iter()
                .find(|l| l.port() == Some(i32::from(*port)))
            {
                return Ok(l.listener_arn().unwrap_or_default().to_string());
            }
            let action = elb::types::Action::builder()
                .r#type(elb::types::ActionTypeEnum::Forward)
                .target_group_arn(tg)
                .build();
            let o = cloud
                .elb
                .create_listener()
                .load_balancer_arn(lb)
                .protocol(elb::types::ProtocolEnum::Tcp)
                .port(i32::from(*port))
                .default_actions(action)
                .set_tags(Some(elb_tags(r)))
                .send()
                .await
                .map_err(|e| err("CreateListener", &a, e))?;
            Ok(o.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .unwrap_or_default()
                .to_string())
        }
        Props::DnsRecord {
            record_name,
            record_type,
            ..
        } => {
            let (zid, set) = record_set(cloud, r, ids).await?;
            change(cloud, &a, &zid, r53::types::ChangeAction::Upsert, set).await?;
            Ok(format!("{zid}|{record_name}|{record_type}"))
        }
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Updates an edge resource in place, when the resource is one.
pub(super) async fn update(
    cloud: &AwsCloud,
    r: &Resource,
    actual_id: &str,
    changes: &[AttrChange],
    ids: &IdMap,
) -> Result<(), CloudError> {
    let a = r.id.address();
    match &r.props {
        Props::DnsRecord { .. } => create(cloud, r, ids).await.map(|_| ()),
        Props::LoadBalancer { subnets, .. } if changes.iter().any(|c| c.attr == "subnets") => {
            match subnets
                .iter()
                .map(|s| ids.resolve(&a, s))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(s) => cloud
                    .elb
                    .set_subnets()
                    .load_balancer_arn(actual_id)
                    .set_subnets(Some(s))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("SetSubnets", &a, e)),
                Err(e) => Err(e),
            }
        }
        Props::Listener { target_group, .. }
            if changes.iter().any(|c| c.attr == "target_group") =>
        {
            match ids.resolve(&a, target_group) {
                Ok(tg) => {
                    let action = elb::types::Action::builder()
                        .r#type(elb::types::ActionTypeEnum::Forward)
                        .target_group_arn(tg)
                        .build();
                    cloud
                        .elb
                        .modify_listener()
                        .listener_arn(actual_id)
                        .default_actions(action)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| err("ModifyListener", &a, e))
                }
                Err(e) => Err(e),
            }
        }
        Props::LoadBalancer { .. } | Props::TargetGroup { .. } | Props::Listener { .. } => {
            let set: Vec<elb::types::Tag> = changes
                .iter()
                .filter_map(|c| {
                    Some(
                        elb::types::Tag::builder()
                            .key(c.attr.strip_prefix("tags.")?)
                            .value(c.new.as_ref()?)
                            .build(),
                    )
                })
                .collect();
            let unset: Vec<String> = changes
                .iter()
                .filter(|c| c.new.is_none())
                .filter_map(|c| c.attr.strip_prefix("tags.").map(str::to_string))
                .collect();
            let mut res = Ok(());
            if !set.is_empty() {
                res = cloud
                    .elb
                    .add_tags()
                    .resource_arns(actual_id)
                    .set_tags(Some(set))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("AddTags", &a, e));
            }
            if res.is_ok() && !unset.is_empty() {
                res = cloud
                    .elb
                    .remove_tags()
                    .resource_arns(actual_id)
                    .set_tag_keys(Some(unset))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err("RemoveTags", &a, e));
            }
            res
        }
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Deletes an edge resource, when the kind is one.
pub(super) async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    match kind {
        Kind::Listener => cloud
            .elb
            .delete_listener()
            .listener_arn(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteListener", address, e)),
        Kind::TargetGroup => cloud
            .elb
            .delete_target_group()
            .target_group_arn(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteTargetGroup", address, e)),
        Kind::LoadBalancer => cloud
            .elb
            .delete_load_balancer()
            .load_balancer_arn(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteLoadBalancer", address, e)),
        Kind::DnsRecord => {
            let mut parts = id.splitn(3, '|');
            let (zid, name, ty) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            // DELETE needs the record exactly as it is.
            let found = cloud
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(zid)
                .start_record_name(name)
                .start_record_type(r53::types::RrType::from(ty))
                .max_items(1)
                .send()
                .await;
            match found {
                Ok(f) => {
                    match f.resource_record_sets().iter().find(|s| {
                        s.name().trim_end_matches('.') == name && s.r#type().as_str() == ty
                    }) {
                        Some(set) => {
                            change(
                                cloud,
                                address,
                                zid,
                                r53::types::ChangeAction::Delete,
                                set.clone(),
                            )
                            .await
                        }
                        None => Ok(()),
                    }
                }
                Err(e) => Err(err("ListResourceRecordSets", address, e)),
            }
        }
        other => Err(CloudError::WrongArea(other)),
    }
}

/// The ownership check before a delete: the load balancer's or target
/// group's tags (a listener's: its load balancer's), or, for a DNS record,
/// the TXT record that names this cluster as its owner.
pub(super) async fn ensure_owned(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    let owned = match kind {
        Kind::DnsRecord => {
            let mut parts = id.splitn(3, '|');
            let (zid, name) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let found = cloud
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(zid)
                .start_record_name(name)
                .start_record_type(r53::types::RrType::Txt)
                .max_items(1)
                .send()
                .await
                .map_err(|e| err("ListResourceRecordSets", address, e))?;
            let owner = owner_value(&cloud.cluster);
            found.resource_record_sets().iter().any(|s| {
                s.name().trim_end_matches('.') == name
                    && s.r#type() == &r53::types::RrType::Txt
                    && s.resource_records().iter().any(|r| r.value() == owner)
            })
        }
        _ => {
            let arn = if kind == Kind::Listener {
                let l = cloud
                    .elb
                    .describe_listeners()
                    .listener_arns(id)
                    .send()
                    .await
                    .map_err(|e| err("DescribeListeners", address, e))?;
                l.listeners()
                    .first()
                    .and_then(|l| l.load_balancer_arn())
                    .unwrap_or_default()
                    .to_string()
            } else {
                id.to_string()
            };
            let t = cloud
                .elb
                .describe_tags()
                .resource_arns(arn)
                .send()
                .await
                .map_err(|e| err("DescribeTags", address, e))?;
            t.tag_descriptions().first().is_some_and(|d| {
                let tags = d
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_string(),
                            t.value().unwrap_or_default().to_string(),
                        ))
                    })
                    .collect();
                cloud.is_ours(&tags)
            })
        }
    };
    cloud.refuse_unless(owned, kind, address, id)
}
