//! Launch templates: the data a model launch template becomes (image,
//! type, profile, security groups, IMDSv2, root volume, user data, spot
//! price, instance tags), its comparable attributes, and discovery (one
//! tag-filtered call, then one call for every default version).

use std::collections::HashMap;

use aws_sdk_ec2::types as ec2;
use base64::Engine;

use super::{AwsCloud, err};
use crate::cloud::{CloudError, ec2_tags};
use crate::model::naming::{TAG_CLUSTER, tf_label};
use crate::model::{Image, Props, Resource};
use crate::resource::attrs::{digest, list, tags as tag_attrs};
use crate::resource::{Actual, Attrs, Kind};

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
        return Err(CloudError::WrongArea(r.id.kind));
    };
    let Image::Ami { id: ami } = image else {
        return Err(CloudError::ImageNotResolved(r.id.address()));
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

/// Reads the cluster's launch templates with their default versions: the
/// tag-filtered templates and the default versions of all templates (AWS
/// allows $Default without a template id) at once, both paginated; a
/// template the second call misses is read on its own.
pub(super) async fn fetch(
    cloud: &AwsCloud,
) -> Result<Vec<(ec2::LaunchTemplate, ec2::ResponseLaunchTemplateData)>, CloudError> {
    let (ec2c, cluster) = (&cloud.ec2, cloud.cluster.as_str());
    let (templates, mut defaults) = tokio::try_join!(
        async {
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
            Ok::<_, CloudError>(templates)
        },
        async {
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
                    if let (Some(id), Some(d)) =
                        (ver.launch_template_id(), ver.launch_template_data())
                    {
                        defaults.insert(id.to_string(), d.clone());
                    }
                }
                match v.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok::<_, CloudError>(defaults)
        },
    )?;
    let missing = templates.iter().filter_map(|lt| {
        let (id, name) = (lt.launch_template_id()?, lt.launch_template_name()?);
        (!defaults.contains_key(id)).then_some((id, name))
    });
    let found = futures::future::try_join_all(missing.map(|(id, name)| async move {
        let v = ec2c
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions("$Default")
            .send()
            .await
            .map_err(|e| err("DescribeLaunchTemplateVersions", name, e))?;
        let data = v
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .cloned();
        Ok::<_, CloudError>(data.map(|d| (id.to_string(), d)))
    }))
    .await?;
    defaults.extend(found.into_iter().flatten());
    Ok(templates
        .into_iter()
        .filter_map(|lt| {
            let data = defaults.get(lt.launch_template_id()?)?.clone();
            Some((lt, data))
        })
        .collect())
}

/// The cluster's launch templates, from what [`fetch`] read.
pub(super) fn actuals(
    cloud: &AwsCloud,
    templates: &[(ec2::LaunchTemplate, ec2::ResponseLaunchTemplateData)],
    by_id: &mut HashMap<String, String>,
) -> Vec<Actual> {
    let mut out = Vec::new();
    for (lt, data) in templates {
        let (Some(id), Some(name)) = (lt.launch_template_id(), lt.launch_template_name()) else {
            continue;
        };
        let tags = ec2_tags(lt.tags());
        let owned = cloud.is_ours(&tags);
        let mut a = lt_attrs(name, data, by_id);
        tag_attrs(&mut a, "tags", &tags);
        let address = format!("aws_launch_template.{}", tf_label(name));
        by_id.insert(id.to_string(), address.clone());
        out.push(Actual {
            address,
            kind: Kind::LaunchTemplate,
            name: name.into(),
            id: id.into(),
            attrs: a,
            owned,
        });
    }
    out
}
