//! Launch templates and Auto Scaling groups for [`super::aws::AwsCloud`].

use std::collections::{BTreeMap, HashMap};

use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;
use base64::Engine;

use super::{Actual, CloudError, call_error as err, ec2_tags};
use crate::model::naming::{TAG_CLUSTER, ownership_tag, tf_label};
use crate::model::{Image, Props, Resource};
use crate::plan::attrs::{Attrs, digest, list, tags as tag_attrs};

/// The launch template data of a model launch template.
pub(crate) fn lt_data(
    r: &Resource,
    profile_name: &str,
    sgs: Vec<String>,
) -> Result<ec2::RequestLaunchTemplateData, CloudError> {
    let Props::LaunchTemplate {
        image,
        instance_type,
        key_name,
        associate_public_ip,
        root_device,
        root_volume_size,
        root_volume_type,
        metadata_hop_limit,
        spot_max_price,
        instance_tags,
        user_data,
        ..
    } = &r.props
    else {
        return Err(CloudError::Unsupported(r.id.address()));
    };
    let Image::Ami { id: ami } = image else {
        return Err(CloudError::Unsupported(format!(
            "{} (image lookups are resolved before planning; this one was not)",
            r.id.address()
        )));
    };
    let tags: Vec<ec2::Tag> = instance_tags
        .iter()
        .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
        .collect();
    let mut data = ec2::RequestLaunchTemplateData::builder()
        .image_id(ami)
        .instance_type(ec2::InstanceType::from(instance_type.as_str()))
        .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
        .iam_instance_profile(
            ec2::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(profile_name)
                .build(),
        )
        .network_interfaces(
            ec2::LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .associate_public_ip_address(*associate_public_ip)
                .delete_on_termination(true)
                .set_groups(Some(sgs))
                .build(),
        )
        .block_device_mappings(
            ec2::LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(root_device)
                .ebs(
                    ec2::LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(*root_volume_size as i32)
                        .volume_type(ec2::VolumeType::from(root_volume_type.as_str()))
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .metadata_options(
            ec2::LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_endpoint(ec2::LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_tokens(ec2::LaunchTemplateHttpTokensState::Required)
                .http_put_response_hop_limit(i32::from(*metadata_hop_limit))
                .build(),
        )
        .tag_specifications(
            ec2::LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(ec2::ResourceType::Instance)
                .set_tags(Some(tags.clone()))
                .build(),
        )
        .tag_specifications(
            ec2::LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(ec2::ResourceType::Volume)
                .set_tags(Some(tags))
                .build(),
        );
    if let Some(k) = key_name {
        data = data.key_name(k);
    }
    if let Some(p) = spot_max_price {
        data = data.instance_market_options(
            ec2::LaunchTemplateInstanceMarketOptionsRequest::builder()
                .market_type(ec2::MarketType::Spot)
                .spot_options(
                    ec2::LaunchTemplateSpotMarketOptionsRequest::builder()
                        .max_price(p)
                        .build(),
                )
                .build(),
        );
    }
    Ok(data.build())
}

/// Replaces every image lookup (`owner/name-pattern`) of the model by the
/// newest available AMI that matches, as Terraform's `aws_ami` data source
/// with `most_recent = true` does: one DescribeImages call per distinct
/// lookup, not per group.
pub(crate) async fn resolve_images(
    ec2c: &aws_sdk_ec2::Client,
    model: &mut crate::model::Model,
) -> Result<BTreeMap<String, String>, CloudError> {
    let mut found = BTreeMap::new();
    for lookup in model.image_lookups() {
        let (owner, name) = lookup.split_once('/').unwrap_or(("", lookup.as_str()));
        let out = ec2c
            .describe_images()
            .owners(owner)
            .filters(ec2::Filter::builder().name("name").values(name).build())
            .filters(
                ec2::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err("DescribeImages", &lookup, e))?;
        let newest = out
            .images()
            .iter()
            .filter_map(|i| Some((i.creation_date()?, i.image_id()?)))
            .max()
            .map(|(_, id)| id.to_string())
            .ok_or_else(|| CloudError::NoImage {
                owner: owner.to_string(),
                name: name.to_string(),
            })?;
        found.insert(lookup.clone(), newest);
    }
    model.pin_images(&found);
    Ok(found)
}

/// What the direct target needs to know of an AMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `x86_64`, `arm64`, … (empty when EC2 does not say)
    pub architecture: String,
    /// The device name of its root volume (`/dev/sda1`, `/dev/xvda`).
    pub root_device: String,
}

/// The AMIs among `ids` that exist and this account may use: one paginated
/// DescribeImages call, by `image-id` filter (a missing id is simply absent,
/// where the ImageIds parameter would fail the whole call).
pub(crate) async fn describe_images(
    ec2c: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<HashMap<String, ImageInfo>, CloudError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // A deprecated public AMI still launches; without IncludeDeprecated
    // EC2 would hide it, and a running cluster's image would look missing.
    let images = ec2c
        .describe_images()
        .include_deprecated(true)
        .filters(
            ec2::Filter::builder()
                .name("image-id")
                .set_values(Some(ids.to_vec()))
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| err("DescribeImages", "images", e))?;
    Ok(images
        .iter()
        .filter_map(|i| {
            Some((
                i.image_id()?.to_string(),
                ImageInfo {
                    architecture: i
                        .architecture()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    root_device: i.root_device_name().unwrap_or("/dev/sda1").to_string(),
                },
            ))
        })
        .collect())
}

/// The architectures each of `types` supports (types EC2 does not know are
/// absent): one paginated DescribeInstanceTypes call, by filter.
pub(crate) async fn architectures(
    ec2c: &aws_sdk_ec2::Client,
    types: &[String],
) -> Result<HashMap<String, Vec<String>>, CloudError> {
    if types.is_empty() {
        return Ok(HashMap::new());
    }
    let found = ec2c
        .describe_instance_types()
        .filters(
            ec2::Filter::builder()
                .name("instance-type")
                .set_values(Some(types.to_vec()))
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| err("DescribeInstanceTypes", "instance types", e))?;
    Ok(found
        .iter()
        .filter_map(|t| {
            let archs = t
                .processor_info()?
                .supported_architectures()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect();
            Some((t.instance_type()?.as_str().to_string(), archs))
        })
        .collect())
}

/// Which of `types` are offered in which of `zones`: one paginated
/// DescribeInstanceTypeOfferings call, filtered by both.
pub(crate) async fn offered_instance_types(
    ec2c: &aws_sdk_ec2::Client,
    types: &[String],
    zones: &[String],
) -> Result<std::collections::HashSet<(String, String)>, CloudError> {
    let pages = ec2c
        .describe_instance_type_offerings()
        .location_type(ec2::LocationType::AvailabilityZone)
        .filters(
            ec2::Filter::builder()
                .name("instance-type")
                .set_values(Some(types.to_vec()))
                .build(),
        )
        .filters(
            ec2::Filter::builder()
                .name("location")
                .set_values(Some(zones.to_vec()))
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| err("DescribeInstanceTypeOfferings", "instance types", e))?;
    Ok(pages
        .iter()
        .filter_map(|o| {
            Some((
                o.instance_type()?.as_str().to_string(),
                o.location()?.to_string(),
            ))
        })
        .collect())
}

/// Comparable attributes of a launch template version.
pub(crate) fn lt_attrs(
    name: &str,
    d: &ec2::ResponseLaunchTemplateData,
    by_id: &HashMap<String, String>,
) -> Attrs {
    let mut a = Attrs::new();
    let addr = |id: &str| by_id.get(id).cloned().unwrap_or_else(|| id.to_string());
    a.insert("name".into(), name.into());
    a.insert("image".into(), d.image_id().unwrap_or_default().into());
    a.insert(
        "instance_type".into(),
        d.instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
    );
    if let Some(p) = d.iam_instance_profile().and_then(|p| p.name()) {
        a.insert(
            "instance_profile".into(),
            format!("aws_iam_instance_profile.{}", tf_label(p)),
        );
    }
    if let Some(ni) = d.network_interfaces().first() {
        a.insert(
            "security_groups".into(),
            list(ni.groups().iter().map(|g| addr(g))),
        );
        a.insert(
            "associate_public_ip_address".into(),
            ni.associate_public_ip_address()
                .unwrap_or(false)
                .to_string(),
        );
    }
    if let Some(k) = d.key_name() {
        a.insert("key_name".into(), k.into());
    }
    if let Some(b) = d.block_device_mappings().first() {
        a.insert(
            "root_device".into(),
            b.device_name().unwrap_or_default().into(),
        );
        if let Some(e) = b.ebs() {
            a.insert(
                "root_volume_size".into(),
                e.volume_size().unwrap_or(0).to_string(),
            );
            a.insert(
                "root_volume_type".into(),
                e.volume_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
            );
        }
    }
    if let Some(m) = d.metadata_options() {
        a.insert(
            "metadata_hop_limit".into(),
            m.http_put_response_hop_limit().unwrap_or(1).to_string(),
        );
    }
    if let Some(p) = d
        .instance_market_options()
        .and_then(|m| m.spot_options())
        .and_then(|s| s.max_price())
    {
        a.insert("spot_max_price".into(), p.into());
    }
    if let Some(ts) = d
        .tag_specifications()
        .iter()
        .find(|t| t.resource_type() == Some(&ec2::ResourceType::Instance))
    {
        tag_attrs(&mut a, "instance_tags", &ec2_tags(ts.tags()));
    }
    let ud = d
        .user_data()
        .and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok())
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default();
    a.insert("user_data".into(), digest(&ud));
    a
}

/// Discovers launch templates (one tag-filtered call, then one call for
/// the default versions of all of them).
pub(crate) async fn discover_lts(
    ec2c: &aws_sdk_ec2::Client,
    cluster: &str,
    by_id: &mut HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    // Paginated: AWS (and moto) return at most a page of templates per call.
    let mut templates: Vec<ec2::LaunchTemplate> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2c
            .describe_launch_templates()
            // Explicit page size: moto stops at 15 without a NextToken otherwise.
            .max_results(200)
            .filters(
                ec2::Filter::builder()
                    .name(format!("tag:{TAG_CLUSTER}"))
                    .values(cluster)
                    .build(),
            )
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err("DescribeLaunchTemplates", "aws_launch_template", e))?;
        templates.extend(page.launch_templates().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    // The default versions of all launch templates (AWS allows $Default
    // without a template id), paginated; templates it misses are read one by one.
    let mut defaults: HashMap<String, ec2::ResponseLaunchTemplateData> = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let Ok(v) = ec2c
            .describe_launch_template_versions()
            .versions("$Default")
            .max_results(200)
            .set_next_token(token.clone())
            .send()
            .await
        else {
            break;
        };
        for ver in v.launch_template_versions() {
            if let (Some(id), Some(d)) = (ver.launch_template_id(), ver.launch_template_data()) {
                defaults.insert(id.to_string(), d.clone());
            }
        }
        match v.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for lt in &templates {
        let (Some(id), Some(name)) = (lt.launch_template_id(), lt.launch_template_name()) else {
            continue;
        };
        let data = match defaults.get(id) {
            Some(d) => d.clone(),
            None => {
                let v = ec2c
                    .describe_launch_template_versions()
                    .launch_template_id(id)
                    .versions("$Default")
                    .send()
                    .await
                    .map_err(|e| err("DescribeLaunchTemplateVersions", name, e))?;
                let Some(d) = v
                    .launch_template_versions()
                    .first()
                    .and_then(|v| v.launch_template_data())
                else {
                    continue;
                };
                d.clone()
            }
        };
        let tags = ec2_tags(lt.tags());
        let owned = tags
            .get(&ownership_tag(cluster))
            .is_some_and(|v| v == "owned");
        let mut a = lt_attrs(name, &data, by_id);
        tag_attrs(&mut a, "tags", &tags);
        let address = format!("aws_launch_template.{}", tf_label(name));
        by_id.insert(id.to_string(), address.clone());
        out.push(Actual {
            address,
            kind: "aws_launch_template".into(),
            name: name.into(),
            id: id.into(),
            attrs: a,
            owned,
        });
    }
    Ok(out)
}

/// Discovers the cluster's Auto Scaling groups with one tag-filtered, paginated call.
pub(crate) async fn discover_asgs(
    c: &aws_sdk_autoscaling::Client,
    cluster: &str,
    by_id: &HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    let addr = |id: &str| by_id.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out = Vec::new();
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
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err("DescribeAutoScalingGroups", "aws_autoscaling_group", e))?;
        for g in r.auto_scaling_groups() {
            let name = g.auto_scaling_group_name().unwrap_or_default();
            let tags: BTreeMap<String, String> = g
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect();
            let owned = tags
                .get(&ownership_tag(cluster))
                .is_some_and(|v| v == "owned");
            let mut a = Attrs::new();
            a.insert("name".into(), name.into());
            a.insert("min_size".into(), g.min_size().unwrap_or(0).to_string());
            a.insert("max_size".into(), g.max_size().unwrap_or(0).to_string());
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
                kind: "aws_autoscaling_group".into(),
                name: name.into(),
                id: name.into(),
                attrs: a,
                owned,
            });
        }
        match r.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(out),
        }
    }
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
