//! The API load balancer (NLB, target group, listener) and its Route53
//! records for [`super::aws::AwsCloud`]. DNS ownership is the TXT record
//! next to the A record, as external-dns does it.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticloadbalancingv2 as elb;
use aws_sdk_route53 as r53;

use super::{Actual, CloudError, IdMap, call_error as err};
use crate::model::naming::{ownership_tag, tf_label};
use crate::model::{Model, Props, Resource};
use crate::plan::AttrChange;
use crate::plan::attrs::{Attrs, list, tags as tag_attrs};

/// What the edge functions need.
pub(crate) struct Edge<'a> {
    pub elb: &'a elb::Client,
    pub r53: &'a r53::Client,
    pub cluster: &'a str,
}

fn build_err(op: &str, address: &str, e: impl std::error::Error + 'static) -> CloudError {
    err(op, address, e)
}

/// Load balancers, target groups and listeners the model names, plus any
/// carrying this cluster's ownership tag.
pub(crate) async fn discover(
    x: &Edge<'_>,
    model: &Model,
    by_id: &mut HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    let names: HashMap<(&str, &str), String> = model
        .resources
        .iter()
        .map(|r| ((r.id.kind, r.name.as_str()), r.id.address()))
        .collect();
    let owner = ownership_tag(x.cluster);
    let mut out = Vec::new();
    let lbs = x
        .elb
        .describe_load_balancers()
        .send()
        .await
        .map_err(|e| err("DescribeLoadBalancers", "aws_lb", e))?;
    let tgs = x
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
        let t = x
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
    let mine = |kind: &'static str,
                name: &str,
                arn: &str|
     -> Option<(String, bool, BTreeMap<String, String>)> {
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
        let Some((address, owned, t)) = mine("aws_lb", name, arn) else {
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
            kind: "aws_lb".into(),
            name: name.into(),
            id: arn.into(),
            attrs: a,
            owned,
        });
        let ls = x
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
                kind: "aws_lb_listener".into(),
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
        let Some((address, owned, tg_tags)) = mine("aws_lb_target_group", name, arn) else {
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
            kind: "aws_lb_target_group".into(),
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
    out.extend(discover_dns(x, model, &lb_dns).await?);
    Ok(out)
}

/// The public hosted zones the model's records need that do not exist.
pub(crate) async fn missing_zones(x: &Edge<'_>, model: &Model) -> Result<Vec<String>, CloudError> {
    let mut zones: Vec<&str> = model
        .resources
        .iter()
        .filter_map(|r| match &r.props {
            Props::DnsRecord { zone_name, .. } => Some(zone_name.as_str()),
            _ => None,
        })
        .collect();
    zones.sort();
    zones.dedup();
    let mut missing = Vec::new();
    for z in zones {
        if zone_id(x, z).await?.is_none() {
            missing.push(z.to_string());
        }
    }
    Ok(missing)
}

async fn zone_id(x: &Edge<'_>, zone: &str) -> Result<Option<String>, CloudError> {
    let z = x
        .r53
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
    x: &Edge<'_>,
    model: &Model,
    lb_dns: &HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    let mut out = Vec::new();
    let records: Vec<&Resource> = model
        .resources
        .iter()
        .filter(|r| r.id.kind == "aws_route53_record")
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
    let owner_value = format!("\"heritage=clusterctl,clusterctl/owner={}\"", x.cluster);
    for zone in zones {
        let Some(zid) = zone_id(x, zone).await? else {
            continue;
        };
        let mut sets = Vec::new();
        let mut start: Option<(String, r53::types::RrType)> = None;
        loop {
            let mut req = x.r53.list_resource_record_sets().hosted_zone_id(&zid);
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
                kind: "aws_route53_record".into(),
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
    x: &Edge<'_>,
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
        return Err(CloudError::Unsupported(a));
    };
    let zid = zone_id(x, zone_name)
        .await?
        .ok_or_else(|| CloudError::Call {
            op: "ListHostedZonesByName".into(),
            address: a.clone(),
            message: format!("no public hosted zone {zone_name}"),
        })?;
    let mut set = r53::types::ResourceRecordSet::builder()
        .name(record_name)
        .r#type(r53::types::RrType::from(record_type.as_str()));
    if let Some(lb) = alias {
        let arn = ids.resolve(&a, lb)?;
        let d = x
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
    x: &Edge<'_>,
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
    x.r53
        .change_resource_record_sets()
        .hosted_zone_id(zid)
        .change_batch(batch)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err("ChangeResourceRecordSets", address, e))
}

/// Creates an edge resource, reusing one a crashed run made.
pub(crate) async fn create(x: &Edge<'_>, r: &Resource, ids: &IdMap) -> Result<String, CloudError> {
    let a = r.id.address();
    match &r.props {
        Props::LoadBalancer { internal, subnets } => {
            if let Ok(found) = x.elb.describe_load_balancers().names(&r.name).send().await
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
            let o = x
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
            if let Ok(found) = x.elb.describe_target_groups().names(&r.name).send().await
                && let Some(arn) = found
                    .target_groups()
                    .first()
                    .and_then(|t| t.target_group_arn())
            {
                return Ok(arn.to_string());
            }
            let o = x
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
            let existing = x
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
            let o = x
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
            let (zid, set) = record_set(x, r, ids).await?;
            change(x, &a, &zid, r53::types::ChangeAction::Upsert, set).await?;
            Ok(format!("{zid}|{record_name}|{record_type}"))
        }
        _ => Err(CloudError::Unsupported(a)),
    }
}

/// Updates an edge resource in place, when the resource is one.
pub(crate) async fn update(
    x: &Edge<'_>,
    r: &Resource,
    actual_id: &str,
    changes: &[AttrChange],
    ids: &IdMap,
) -> Option<Result<(), CloudError>> {
    let a = r.id.address();
    let res = match &r.props {
        Props::DnsRecord { .. } => create(x, r, ids).await.map(|_| ()),
        Props::LoadBalancer { subnets, .. } if changes.iter().any(|c| c.attr == "subnets") => {
            match subnets
                .iter()
                .map(|s| ids.resolve(&a, s))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(s) => x
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
                    x.elb
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
                res = x
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
                res = x
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
        _ => return None,
    };
    Some(res)
}

/// Deletes an edge resource, when the kind is one.
pub(crate) async fn delete(
    x: &Edge<'_>,
    kind: &str,
    address: &str,
    id: &str,
) -> Option<Result<(), CloudError>> {
    let res =
        match kind {
            "aws_lb_listener" => x
                .elb
                .delete_listener()
                .listener_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteListener", address, e)),
            "aws_lb_target_group" => x
                .elb
                .delete_target_group()
                .target_group_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteTargetGroup", address, e)),
            "aws_lb" => x
                .elb
                .delete_load_balancer()
                .load_balancer_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteLoadBalancer", address, e)),
            "aws_route53_record" => {
                let mut parts = id.splitn(3, '|');
                let (zid, name, ty) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                // DELETE needs the record exactly as it is.
                let found = x
                    .r53
                    .list_resource_record_sets()
                    .hosted_zone_id(zid)
                    .start_record_name(name)
                    .start_record_type(r53::types::RrType::from(ty))
                    .max_items(1)
                    .send()
                    .await;
                match found {
                    Ok(f) => match f.resource_record_sets().iter().find(|s| {
                        s.name().trim_end_matches('.') == name && s.r#type().as_str() == ty
                    }) {
                        Some(set) => {
                            change(
                                x,
                                address,
                                zid,
                                r53::types::ChangeAction::Delete,
                                set.clone(),
                            )
                            .await
                        }
                        None => Ok(()),
                    },
                    Err(e) => Err(err("ListResourceRecordSets", address, e)),
                }
            }
            _ => return None,
        };
    Some(res)
}
