//! Compute: launch templates and Auto Scaling groups (one per instance
//! group and zone): create, update, delete and the groups' discovery; the
//! templates' data and discovery are in [`super::launch_templates`].

use std::collections::{BTreeMap, HashMap};

use aws_sdk_autoscaling::types as asg;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::{AwsCloud, err};
use crate::cloud::{CloudError, IdMap};
use crate::model::naming::{TAG_CLUSTER, tf_label};
use crate::model::{Props, Resource};
use crate::resource::attrs::{list, tags as tag_attrs};
use crate::resource::{Actual, AttrChange, Attrs, Kind};

/// Reads the cluster's Auto Scaling groups: one tag-filtered call, paginated.
pub(super) async fn fetch_asgs(cloud: &AwsCloud) -> Result<Vec<asg::AutoScalingGroup>, CloudError> {
    let (c, cluster) = (&cloud.autoscaling, cloud.cluster.as_str());
    let mut groups = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let r = c
            .describe_auto_scaling_groups()
            .filters(
                asg::Filter::builder()
                    .name(format!("tag:{TAG_CLUSTER}"))
                    .values(cluster)
                    .build(),
            )
            // The largest page AWS allows (the default is 50).
            .max_records(100)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err("DescribeAutoScalingGroups", "aws_autoscaling_group", e))?;
        groups.extend(r.auto_scaling_groups().iter().cloned());
        match r.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(groups),
        }
    }
}

/// The cluster's Auto Scaling groups, from what [`fetch_asgs`] read.
pub(super) fn asg_actuals(
    cloud: &AwsCloud,
    groups: &[asg::AutoScalingGroup],
    by_id: &HashMap<String, String>,
) -> Vec<Actual> {
    let addr = |id: &str| by_id.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out = Vec::new();
    {
        for g in groups {
            let name = g.auto_scaling_group_name().unwrap_or_default();
            let tags: BTreeMap<String, String> =
                crate::cloud::tag_map(g.tags().iter().map(|t| (t.key(), t.value())));
            let owned = cloud.is_ours(&tags);
            let mut a = Attrs::new();
            a.insert("name".into(), name.into());
            a.insert("min_size".into(), g.min_size().unwrap_or(0).to_string());
            a.insert("max_size".into(), g.max_size().unwrap_or(0).to_string());
            if let Some(t) = g.health_check_type().filter(|t| *t != "EC2") {
                a.insert("health_check_type".into(), t.to_string());
                a.insert(
                    "health_check_grace_period".into(),
                    g.health_check_grace_period().unwrap_or(0).to_string(),
                );
            }
            let subnets: Vec<String> = g
                .vpc_zone_identifier()
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| addr(s.trim()))
                .collect();
            a.insert("subnets".into(), list(subnets));
            if !g.target_group_arns().is_empty() {
                a.insert(
                    "target_groups".into(),
                    list(g.target_group_arns().iter().map(|t| addr(t))),
                );
            }
            let lt_id = g
                .launch_template()
                .and_then(|l| l.launch_template_id())
                .or_else(|| {
                    g.mixed_instances_policy()
                        .and_then(|m| m.launch_template())
                        .and_then(|l| l.launch_template_specification())
                        .and_then(|s| s.launch_template_id())
                });
            if let Some(id) = lt_id {
                a.insert("launch_template".into(), addr(id));
            }
            if let Some(m) = g.mixed_instances_policy() {
                let types: Vec<&str> = m
                    .launch_template()
                    .map(|l| {
                        l.overrides()
                            .iter()
                            .filter_map(|o| o.instance_type())
                            .collect()
                    })
                    .unwrap_or_default();
                a.insert("mixed.instance_types".into(), types.join(","));
                if let Some(d) = m.instances_distribution() {
                    a.insert(
                        "mixed.on_demand_base".into(),
                        d.on_demand_base_capacity().unwrap_or(0).to_string(),
                    );
                    a.insert(
                        "mixed.on_demand_above_base".into(),
                        d.on_demand_percentage_above_base_capacity()
                            .unwrap_or(0)
                            .to_string(),
                    );
                    a.insert(
                        "mixed.spot_allocation_strategy".into(),
                        d.spot_allocation_strategy().unwrap_or_default().into(),
                    );
                    if let Some(p) = d.spot_max_price().filter(|p| !p.is_empty()) {
                        a.insert("mixed.spot_max_price".into(), p.into());
                    }
                }
            }
            tag_attrs(&mut a, "tags", &tags);
            out.push(Actual {
                address: format!("aws_autoscaling_group.{}", tf_label(name)),
                kind: Kind::AutoscalingGroup,
                name: name.into(),
                id: name.into(),
                attrs: a,
                owned,
            });
        }
    }
    out
}

/// ASG tags, propagated to instances.
pub(crate) fn asg_tags(r: &Resource) -> Vec<asg::Tag> {
    r.tags
        .iter()
        .map(|(k, v)| {
            asg::Tag::builder()
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .resource_id(&r.name)
                .resource_type("auto-scaling-group")
                .build()
        })
        .collect()
}

/// The mixed instances policy of a model ASG.
pub(crate) fn mixed_policy(r: &Resource, lt_id: &str) -> Option<asg::MixedInstancesPolicy> {
    let Props::AutoscalingGroup {
        mixed_instances: Some(m),
        ..
    } = &r.props
    else {
        return None;
    };
    let mut lt = asg::LaunchTemplate::builder().launch_template_specification(
        asg::LaunchTemplateSpecification::builder()
            .launch_template_id(lt_id)
            .version("$Latest")
            .build(),
    );
    for t in &m.instance_types {
        lt = lt.overrides(
            asg::LaunchTemplateOverrides::builder()
                .instance_type(t)
                .build(),
        );
    }
    let mut dist = asg::InstancesDistribution::builder()
        .on_demand_base_capacity(m.on_demand_base as i32)
        .on_demand_percentage_above_base_capacity(m.on_demand_above_base as i32)
        .spot_allocation_strategy(&m.spot_allocation_strategy);
    if let Some(p) = &m.spot_max_price {
        dist = dist.spot_max_price(p);
    }
    Some(
        asg::MixedInstancesPolicy::builder()
            .launch_template(lt.build())
            .instances_distribution(dist.build())
            .build(),
    )
}

/// Attaches the target groups the model adds to a group and detaches those
/// it drops (UpdateAutoScalingGroup does not change them).
async fn update_target_groups(
    cloud: &AwsCloud,
    address: &str,
    asg: &str,
    change: &AttrChange,
    wanted: &[crate::model::Ref],
    ids: &IdMap,
) -> Result<(), CloudError> {
    let had: Vec<&str> = change
        .old
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    let want: Vec<String> = wanted.iter().map(|r| r.address()).collect();
    let attach = wanted
        .iter()
        .filter(|r| !had.contains(&r.address().as_str()))
        .map(|r| ids.resolve(address, r))
        .collect::<Result<Vec<_>, _>>()?;
    // What the group has but the model does not want: addresses of the
    // model's target groups (resolved), or ARNs of others.
    let detach: Vec<String> = had
        .iter()
        .filter(|h| !want.iter().any(|w| w == *h))
        .map(|h| ids.get(h).unwrap_or_else(|| h.to_string()))
        .collect();
    if !attach.is_empty() {
        cloud
            .autoscaling
            .attach_load_balancer_target_groups()
            .auto_scaling_group_name(asg)
            .set_target_group_arns(Some(attach))
            .send()
            .await
            .map_err(|e| err("AttachLoadBalancerTargetGroups", address, e))?;
    }
    if !detach.is_empty() {
        cloud
            .autoscaling
            .detach_load_balancer_target_groups()
            .auto_scaling_group_name(asg)
            .set_target_group_arns(Some(detach))
            .send()
            .await
            .map_err(|e| err("DetachLoadBalancerTargetGroups", address, e))?;
    }
    Ok(())
}

/// Refuses unless the Auto Scaling group carries both of this cluster's
/// tags (one DescribeAutoScalingGroups call).
pub(super) async fn ensure_asg_owned(
    cloud: &AwsCloud,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    let r = cloud
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(id)
        .send()
        .await
        .map_err(|e| err("DescribeAutoScalingGroups", address, e))?;
    let owned = r.auto_scaling_groups().first().is_some_and(|g| {
        let tags: BTreeMap<String, String> =
            crate::cloud::tag_map(g.tags().iter().map(|t| (t.key(), t.value())));
        cloud.is_ours(&tags)
    });
    cloud.refuse_unless(owned, Kind::AutoscalingGroup, address, id)
}

/// Creates a launch template or an Auto Scaling group.
pub(super) async fn create(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<String, CloudError> {
    let address = r.id.address();
    let a = address.as_str();
    match &r.props {
        Props::LaunchTemplate {
            instance_profile,
            security_groups,
            ..
        } => {
            let profile = ids.resolve(a, instance_profile)?;
            let sgs = security_groups
                .iter()
                .map(|g| ids.resolve(a, g))
                .collect::<Result<Vec<_>, _>>()?;
            let data = super::launch_templates::lt_data(r, &profile, sgs)?;
            let tags: Vec<Tag> = r
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            let spec = TagSpecification::builder()
                .resource_type(ResourceType::LaunchTemplate)
                .set_tags(Some(tags))
                .build();
            match cloud
                .ec2
                .create_launch_template()
                .launch_template_name(&r.name)
                .launch_template_data(data)
                .tag_specifications(spec)
                .send()
                .await
            {
                Ok(o) => Ok(o
                    .launch_template()
                    .and_then(|l| l.launch_template_id())
                    .unwrap_or_default()
                    .to_string()),
                // A crashed run made it already: use it.
                Err(e)
                    if aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                        == Some("InvalidLaunchTemplateName.AlreadyExistsException") =>
                {
                    let got = cloud
                        .ec2
                        .describe_launch_templates()
                        .launch_template_names(&r.name)
                        .send()
                        .await
                        .map_err(|e| err("DescribeLaunchTemplates", a, e))?;
                    Ok(got
                        .launch_templates()
                        .first()
                        .and_then(|l| l.launch_template_id())
                        .unwrap_or_default()
                        .to_string())
                }
                Err(e) => Err(err("CreateLaunchTemplate", a, e)),
            }
        }
        Props::AutoscalingGroup {
            launch_template,
            subnets,
            min_size,
            max_size,
            target_groups,
            ..
        } => {
            // moto (and a crashed run) may leave a group by this name: never overwrite it.
            let existing = cloud
                .autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(&r.name)
                .send()
                .await
                .map_err(|e| err("DescribeAutoScalingGroups", a, e))?;
            if !existing.auto_scaling_groups().is_empty() {
                return Ok(r.name.clone());
            }
            let lt_id = ids.resolve(a, launch_template)?;
            let subnet_ids = subnets
                .iter()
                .map(|x| ids.resolve(a, x))
                .collect::<Result<Vec<_>, _>>()?;
            let tgs = target_groups
                .iter()
                .map(|x| ids.resolve(a, x))
                .collect::<Result<Vec<_>, _>>()?;
            let mut req = cloud
                .autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(&r.name)
                .min_size(*min_size as i32)
                .max_size(*max_size as i32)
                .vpc_zone_identifier(subnet_ids.join(","))
                .set_tags(Some(asg_tags(r)));
            if !tgs.is_empty() {
                req = req.set_target_group_arns(Some(tgs));
            }
            if let Props::AutoscalingGroup {
                elb_health_check: true,
                ..
            } = &r.props
            {
                req = req
                    .health_check_type("ELB")
                    .health_check_grace_period(crate::model::attrs::ELB_HEALTH_CHECK_GRACE);
            }
            req = match mixed_policy(r, &lt_id) {
                Some(m) => req.mixed_instances_policy(m),
                None => req.launch_template(
                    aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                        .launch_template_id(&lt_id)
                        .version("$Latest")
                        .build(),
                ),
            };
            req.send()
                .await
                .map_err(|e| err("CreateAutoScalingGroup", a, e))?;
            Ok(r.name.clone())
        }
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Changes a launch template (a new default version) or an Auto Scaling
/// group in place.
pub(super) async fn update(
    cloud: &AwsCloud,
    r: &Resource,
    actual_id: &str,
    changes: &[AttrChange],
    ids: &IdMap,
) -> Result<(), CloudError> {
    let address = r.id.address();
    match &r.props {
        Props::LaunchTemplate {
            instance_profile,
            security_groups,
            ..
        } if changes.iter().any(|c| !c.attr.starts_with("tags.")) => {
            let profile = ids.resolve(&address, instance_profile)?;
            let sgs = security_groups
                .iter()
                .map(|g| ids.resolve(&address, g))
                .collect::<Result<Vec<_>, _>>()?;
            let data = super::launch_templates::lt_data(r, &profile, sgs)?;
            let v = cloud
                .ec2
                .create_launch_template_version()
                .launch_template_id(actual_id)
                .launch_template_data(data)
                .send()
                .await
                .map_err(|e| err("CreateLaunchTemplateVersion", &address, e))?;
            let n = v
                .launch_template_version()
                .and_then(|x| x.version_number())
                .unwrap_or(1);
            cloud
                .ec2
                .modify_launch_template()
                .launch_template_id(actual_id)
                .default_version(n.to_string())
                .send()
                .await
                .map_err(|e| err("ModifyLaunchTemplate", &address, e))?;
            let set: Vec<Tag> = changes
                .iter()
                .filter_map(|c| {
                    Some(
                        Tag::builder()
                            .key(c.attr.strip_prefix("tags.")?)
                            .value(c.new.as_ref()?)
                            .build(),
                    )
                })
                .collect();
            if !set.is_empty() {
                cloud
                    .ec2
                    .create_tags()
                    .resources(actual_id)
                    .set_tags(Some(set))
                    .send()
                    .await
                    .map_err(|e| err("CreateTags", &address, e))?;
            }
            Ok(())
        }
        Props::AutoscalingGroup {
            launch_template,
            subnets,
            min_size,
            max_size,
            target_groups,
            elb_health_check,
            ..
        } => {
            let lt_id = ids.resolve(&address, launch_template)?;
            let subnet_ids = subnets
                .iter()
                .map(|x| ids.resolve(&address, x))
                .collect::<Result<Vec<_>, _>>()?;
            let mut req = cloud
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(actual_id)
                .min_size(*min_size as i32)
                .max_size(*max_size as i32)
                .vpc_zone_identifier(subnet_ids.join(","))
                .health_check_type(if *elb_health_check { "ELB" } else { "EC2" });
            if *elb_health_check {
                req = req.health_check_grace_period(crate::model::attrs::ELB_HEALTH_CHECK_GRACE);
            }
            if let Some(c) = changes.iter().find(|c| c.attr == "target_groups") {
                update_target_groups(cloud, &address, actual_id, c, target_groups, ids).await?;
            }
            req = match mixed_policy(r, &lt_id) {
                Some(m) => req.mixed_instances_policy(m),
                None => req.launch_template(
                    aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                        .launch_template_id(&lt_id)
                        .version("$Latest")
                        .build(),
                ),
            };
            req.send()
                .await
                .map_err(|e| err("UpdateAutoScalingGroup", &address, e))?;
            let set: Vec<_> = asg_tags(r)
                .into_iter()
                .filter(|t| {
                    changes
                        .iter()
                        .any(|c| t.key().is_some_and(|k| c.attr == format!("tags.{k}")))
                })
                .collect();
            if !set.is_empty() {
                cloud
                    .autoscaling
                    .create_or_update_tags()
                    .set_tags(Some(set))
                    .send()
                    .await
                    .map_err(|e| err("CreateOrUpdateTags", &address, e))?;
            }
            let unset: Vec<_> = changes
                .iter()
                .filter(|c| c.new.is_none())
                .filter_map(|c| c.attr.strip_prefix("tags."))
                .map(|k| {
                    aws_sdk_autoscaling::types::Tag::builder()
                        .key(k)
                        .resource_id(actual_id)
                        .resource_type("auto-scaling-group")
                        .build()
                })
                .collect();
            if !unset.is_empty() {
                cloud
                    .autoscaling
                    .delete_tags()
                    .set_tags(Some(unset))
                    .send()
                    .await
                    .map_err(|e| err("DeleteTags", &address, e))?;
            }
            Ok(())
        }
        // Only tags change.
        Props::LaunchTemplate { .. } => cloud.update_ec2_tags(&address, actual_id, changes).await,
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Deletes a launch template or an Auto Scaling group (with its instances).
pub(super) async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    match kind {
        Kind::LaunchTemplate => cloud
            .ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteLaunchTemplate", address, e)),
        Kind::AutoscalingGroup => cloud
            .autoscaling
            .delete_auto_scaling_group()
            .auto_scaling_group_name(id)
            .force_delete(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteAutoScalingGroup", address, e)),
        other => Err(CloudError::WrongArea(other)),
    }
}
