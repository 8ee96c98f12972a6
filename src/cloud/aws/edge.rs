//! The edge: the API load balancer (NLB, target group, listener). Its
//! Route53 records are [`super::dns`]'s. DNS ownership is the TXT record
//! next to the A record, as external-dns does it.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticloadbalancingv2 as elb;

use super::{AwsCloud, err};
use crate::cloud::{CloudError, IdMap};
use crate::model::naming::tf_label;
use crate::model::{Model, Props, Resource};
use crate::resource::attrs::{list, tags as tag_attrs};
use crate::resource::{Actual, AttrChange, Attrs, Kind};

/// What discovery reads of the edge, before any of it is matched.
#[derive(Debug, Default)]
pub(super) struct EdgeScan {
    lbs: Vec<elb::types::LoadBalancer>,
    tgs: Vec<elb::types::TargetGroup>,
    /// Tags by ARN.
    tags: HashMap<String, BTreeMap<String, String>>,
    /// Listeners by load balancer ARN (of the load balancers that are ours).
    listeners: HashMap<String, Vec<elb::types::Listener>>,
    /// Client-IP preservation by target group ARN, read only for the
    /// groups the model wants it off on (the internal endpoint).
    preserves_client_ip: HashMap<String, bool>,
}

/// Reads the load balancers and target groups (at once), then their tags,
/// the listeners of the load balancers the model names and the attributes
/// of the groups it wants client-IP preservation off on (all at once);
/// listeners of a load balancer known only by its ownership tag wait for
/// the tags.
pub(super) async fn fetch(cloud: &AwsCloud, model: &Model) -> Result<EdgeScan, CloudError> {
    let named = |kind: Kind, name: &str| {
        model
            .resources
            .iter()
            .any(|r| r.id.kind == kind && r.name == name)
    };
    let (lbs, tgs) = tokio::try_join!(
        async {
            cloud
                .elb
                .describe_load_balancers()
                .send()
                .await
                .map(|r| r.load_balancers().to_vec())
                .map_err(|e| err("DescribeLoadBalancers", "aws_lb", e))
        },
        async {
            cloud
                .elb
                .describe_target_groups()
                .send()
                .await
                .map(|r| r.target_groups().to_vec())
                .map_err(|e| err("DescribeTargetGroups", "aws_lb_target_group", e))
        },
    )?;
    let mut arns: Vec<String> = lbs
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .collect();
    arns.extend(
        tgs.iter()
            .filter_map(|t| t.target_group_arn().map(str::to_string)),
    );
    let lb_arn_name = |l: &elb::types::LoadBalancer| -> Option<(String, String)> {
        Some((
            l.load_balancer_arn()?.to_string(),
            l.load_balancer_name()?.to_string(),
        ))
    };
    let listeners_of = |arn: String, name: String| async move {
        cloud
            .elb
            .describe_listeners()
            .load_balancer_arn(&arn)
            .send()
            .await
            .map(|r| (arn, r.listeners().to_vec()))
            .map_err(|e| err("DescribeListeners", &name, e))
    };
    let wants_off = |name: &str| {
        model.resources.iter().any(|r| {
            r.name == name
                && matches!(
                    r.props,
                    Props::TargetGroup {
                        preserve_client_ip: false,
                        ..
                    }
                )
        })
    };
    let (tag_pages, named_listeners, client_ip) = tokio::try_join!(
        futures::future::try_join_all(arns.chunks(20).map(|chunk| async move {
            cloud
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| err("DescribeTags", "aws_lb", e))
        })),
        futures::future::try_join_all(
            lbs.iter()
                .filter_map(lb_arn_name)
                .filter(|(_, name)| named(Kind::LoadBalancer, name))
                .map(|(arn, name)| listeners_of(arn, name)),
        ),
        futures::future::try_join_all(
            tgs.iter()
                .filter_map(|t| Some((t.target_group_arn()?, t.target_group_name()?)))
                .filter(|(_, name)| wants_off(name))
                .map(|(arn, name)| async move {
                    preserves_client_ip(cloud, name, arn)
                        .await
                        .map(|on| (arn.to_string(), on))
                }),
        ),
    )?;
    let mut tags: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for t in &tag_pages {
        for d in t.tag_descriptions() {
            let m = crate::cloud::tag_map(d.tags().iter().map(|t| (t.key(), t.value())));
            tags.insert(d.resource_arn().unwrap_or_default().to_string(), m);
        }
    }
    let owner = crate::model::naming::ownership_tag(&cloud.cluster);
    let owned_only = futures::future::try_join_all(
        lbs.iter()
            .filter_map(lb_arn_name)
            .filter(|(arn, name)| {
                !named(Kind::LoadBalancer, name)
                    && tags
                        .get(arn)
                        .and_then(|t| t.get(&owner))
                        .is_some_and(|v| v == "owned")
            })
            .map(|(arn, name)| listeners_of(arn, name)),
    )
    .await?;
    Ok(EdgeScan {
        listeners: named_listeners.into_iter().chain(owned_only).collect(),
        preserves_client_ip: client_ip.into_iter().collect(),
        lbs,
        tgs,
        tags,
    })
}

/// Load balancers, target groups and listeners the model names, plus any
/// carrying this cluster's ownership tag; and the load balancers' DNS
/// names, by which the records' alias targets are recognised.
pub(super) fn actuals(
    cloud: &AwsCloud,
    model: &Model,
    scan: &EdgeScan,
    by_id: &mut HashMap<String, String>,
) -> (Vec<Actual>, HashMap<String, String>) {
    let names: HashMap<(Kind, &str), String> = model
        .resources
        .iter()
        .map(|r| ((r.id.kind, r.name.as_str()), r.id.address()))
        .collect();
    let owner = crate::model::naming::ownership_tag(&cloud.cluster);
    let mut out = Vec::new();
    let tags = &scan.tags;
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
    for l in &scan.lbs {
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
        for li in scan.listeners.get(arn).into_iter().flatten() {
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
    for t in &scan.tgs {
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
        // Client-IP preservation was read only where the model wants it
        // off (the internal endpoint).
        if scan.preserves_client_ip.get(arn) == Some(&false) {
            a.insert("preserve_client_ip".into(), "false".into());
        }
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
    for a in out.iter_mut().filter(|a| a.kind == Kind::Listener) {
        if let Some(tg) = a.attrs.get("target_group").cloned() {
            a.attrs
                .insert("target_group".into(), by_id.get(&tg).cloned().unwrap_or(tg));
        }
    }
    (out, lb_dns)
}

fn elb_tags(r: &Resource) -> Vec<elb::types::Tag> {
    r.tags
        .iter()
        .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// Whether a target group's targets see client addresses.
async fn preserves_client_ip(cloud: &AwsCloud, name: &str, arn: &str) -> Result<bool, CloudError> {
    let attrs = cloud
        .elb
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| err("DescribeTargetGroupAttributes", name, e))?;
    Ok(attrs
        .attributes()
        .iter()
        .find(|x| x.key() == Some("preserve_client_ip.enabled"))
        .and_then(|x| x.value())
        .is_none_or(|v| v == "true"))
}

async fn set_preserve_client_ip(
    cloud: &AwsCloud,
    address: &str,
    arn: &str,
    on: bool,
) -> Result<(), CloudError> {
    cloud
        .elb
        .modify_target_group_attributes()
        .target_group_arn(arn)
        .attributes(
            elb::types::TargetGroupAttribute::builder()
                .key("preserve_client_ip.enabled")
                .value(on.to_string())
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err("ModifyTargetGroupAttributes", address, e))
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
        Props::TargetGroup {
            vpc,
            port,
            preserve_client_ip,
        } => {
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
            let arn = o
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string();
            if !preserve_client_ip {
                set_preserve_client_ip(cloud, &a, &arn, false).await?;
            }
            Ok(arn)
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
        Props::TargetGroup {
            preserve_client_ip, ..
        } if changes.iter().any(|c| c.attr == "preserve_client_ip") => {
            set_preserve_client_ip(cloud, &a, actual_id, *preserve_client_ip).await
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
        other => Err(CloudError::WrongArea(other)),
    }
}

/// The ownership check before a delete: the load balancer's or target
/// group's tags (a listener's: its load balancer's).
pub(super) async fn ensure_owned(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    let owned = {
        {
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
                let tags = crate::cloud::tag_map(d.tags().iter().map(|t| (t.key(), t.value())));
                cloud.is_ours(&tags)
            })
        }
    };
    cloud.refuse_unless(owned, kind, address, id)
}
