//! The preflight: before any change, what the spec asks for is checked
//! against what the region offers, through the [`Catalog`] (one call per
//! question, whatever the spec's size). Every miss is a spec problem at
//! its file:line:column, reported together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::DirectError;
use crate::cloud::{Catalog, ImageInfo};
use crate::model::{Image, Model, Props};
use crate::spec::{Problem, Spec};

/// Resolves every image lookup (`owner/name-pattern`) of the model to the
/// newest matching AMI, as Terraform's `aws_ami` data source with
/// `most_recent = true` does (one call per distinct lookup, not per
/// group), and pins the model to them.
pub async fn resolve_images(
    catalog: &dyn Catalog,
    model: &mut Model,
) -> Result<BTreeMap<String, String>, DirectError> {
    let mut found = BTreeMap::new();
    for lookup in model.image_lookups() {
        let (owner, name) = lookup.split_once('/').unwrap_or(("", lookup.as_str()));
        let ami = catalog
            .newest_image(owner, name)
            .await
            .map_err(DirectError::Images)?
            .ok_or_else(|| DirectError::NoImage {
                owner: owner.to_string(),
                name: name.to_string(),
            })?;
        found.insert(lookup.clone(), ami);
    }
    model.pin_images(&found);
    Ok(found)
}

/// The AMI of each group's launch template.
fn group_images(model: &Model) -> Vec<(String, String)> {
    let suffix = format!(".{}", model.cluster_name);
    model
        .resources
        .iter()
        .filter_map(|r| match &r.props {
            Props::LaunchTemplate {
                image: Image::Ami { id },
                ..
            } => Some((
                r.name.strip_suffix(&suffix).unwrap_or(&r.name).to_string(),
                id.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Looks up the model's AMIs: their root device names go into the launch
/// templates (Ubuntu's is /dev/sda1, Amazon Linux's /dev/xvda); an AMI
/// that does not exist (or this account may not use) is a problem at the
/// group's `spec.image`. Returns what was found and the problems.
pub async fn inspect_images(
    catalog: &dyn Catalog,
    spec: &Spec,
    model: &mut Model,
    resolved: &BTreeMap<String, String>,
) -> Result<(HashMap<String, ImageInfo>, Vec<Problem>), DirectError> {
    let groups = group_images(model);
    let ids: BTreeSet<String> = groups.iter().map(|(_, id)| id.clone()).collect();
    let info = catalog
        .images(&ids.into_iter().collect::<Vec<_>>())
        .await
        .map_err(DirectError::Images)?;
    for r in &mut model.resources {
        if let Props::LaunchTemplate {
            image: Image::Ami { id },
            root_device,
            ..
        } = &mut r.props
            && let Some(i) = info.get(id.as_str())
        {
            *root_device = i.root_device.clone();
        }
    }
    let region = &spec.cluster.spec.region;
    let problems = groups
        .iter()
        .filter(|(_, id)| !info.contains_key(id))
        .map(|(group, id)| match resolved.iter().find(|(_, ami)| *ami == id) {
            // Resolved from a lookup (by a saved plan, earlier).
            Some((lookup, _)) => spec.problem_in(
                "InstanceGroup",
                group,
                "spec.image",
                format!("the image lookup {lookup} resolved to {id}, which no longer exists in {region}"),
                "run plan again to resolve the lookup to a current image",
            ),
            None => spec.problem_in(
                "InstanceGroup",
                group,
                "spec.image",
                format!("image {id} does not exist in {region}, or this account may not use it"),
                "give an AMI of this region (AMI ids differ between regions), or an owner/name-pattern lookup",
            ),
        })
        .collect();
    Ok((info, problems))
}

/// Runs every check: zones, then machine types, the images' problems, and
/// architectures; then the DNS zone. All problems of one stage are
/// reported at once.
pub async fn check(
    catalog: &dyn Catalog,
    spec: &Spec,
    model: &Model,
    image_info: &HashMap<String, ImageInfo>,
    image_problems: &[Problem],
) -> Result<(), DirectError> {
    let mut problems = check_zones(catalog, spec).await?;
    if problems.is_empty() {
        problems.extend(check_instance_types(catalog, spec, model).await?);
    }
    problems.extend(image_problems.iter().cloned());
    if problems.is_empty() {
        problems.extend(check_architectures(catalog, spec, model, image_info).await?);
    }
    if !problems.is_empty() {
        return Err(crate::spec::SpecError::Invalid {
            file: spec.file.clone(),
            problems,
        }
        .into());
    }
    let zones: BTreeSet<&str> = model
        .resources
        .iter()
        .filter_map(|r| match &r.props {
            Props::DnsRecord { zone_name, .. } => Some(zone_name.as_str()),
            _ => None,
        })
        .collect();
    let mut missing = Vec::new();
    for z in zones {
        if !catalog
            .public_zone_exists(z)
            .await
            .map_err(DirectError::Discover)?
        {
            missing.push(z.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(DirectError::NoDnsZone {
            zone: missing.join(", "),
        });
    }
    Ok(())
}

/// Every zone of the spec must be an available zone of its region.
pub async fn check_zones(catalog: &dyn Catalog, spec: &Spec) -> Result<Vec<Problem>, DirectError> {
    let available = catalog.zones().await.map_err(DirectError::Discover)?;
    let c = &spec.cluster;
    Ok(c.spec
        .zones
        .iter()
        .enumerate()
        .filter(|(_, z)| !available.contains(z))
        .map(|(i, z)| {
            spec.problem_in(
                "Cluster",
                &c.metadata.name,
                &format!("spec.zones[{i}]"),
                format!(
                    "zone {z} is not an available zone of {} (it has {})",
                    c.spec.region,
                    available.join(", ")
                ),
                "use zones of spec.region (aws ec2 describe-availability-zones), or change spec.region",
            )
        })
        .collect())
}

/// The machine types of each group (group, path in its spec, type).
fn machine_types(spec: &Spec) -> Vec<(&str, String, &str)> {
    let mut wanted = Vec::new();
    for g in &spec.groups {
        wanted.push((
            g.metadata.name.as_str(),
            "spec.machineType".to_string(),
            g.spec.machine_type.as_str(),
        ));
        if let Some(m) = &g.spec.mixed_instances_policy {
            for (i, t) in m.instances.iter().enumerate() {
                wanted.push((
                    g.metadata.name.as_str(),
                    format!("spec.mixedInstancesPolicy.instances[{i}]"),
                    t.as_str(),
                ));
            }
        }
    }
    wanted
}

/// Every machine type of every group (and of its mixed-instances policy)
/// must be offered in each of the group's zones.
pub async fn check_instance_types(
    catalog: &dyn Catalog,
    spec: &Spec,
    model: &Model,
) -> Result<Vec<Problem>, DirectError> {
    let mut zones_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &model.resources {
        if let Props::AutoscalingGroup {
            instance_group,
            zone,
            ..
        } = &r.props
        {
            zones_of.entry(instance_group).or_default().insert(zone);
        }
    }
    let wanted = machine_types(spec);
    let types: BTreeSet<String> = wanted.iter().map(|w| w.2.to_string()).collect();
    let zones: BTreeSet<String> = zones_of.values().flatten().map(|z| z.to_string()).collect();
    if types.is_empty() || zones.is_empty() {
        return Ok(vec![]);
    }
    let offered = catalog
        .offerings(
            &types.into_iter().collect::<Vec<_>>(),
            &zones.into_iter().collect::<Vec<_>>(),
        )
        .await
        .map_err(DirectError::Discover)?;
    let mut problems = Vec::new();
    for (group, path, ty) in wanted {
        let missing: Vec<&str> = zones_of
            .get(group)
            .into_iter()
            .flatten()
            .copied()
            .filter(|z| !offered.contains(&(ty.to_string(), z.to_string())))
            .collect();
        if !missing.is_empty() {
            problems.push(spec.problem_in(
                "InstanceGroup",
                group,
                &path,
                format!(
                    "machine type {ty} is not offered in {} ({})",
                    missing.join(", "),
                    spec.cluster.spec.region
                ),
                "choose a type EC2 offers in every zone of the group (aws ec2 describe-instance-type-offerings --location-type availability-zone), or narrow the group's zones",
            ));
        }
    }
    Ok(problems)
}

/// Each group's image must run on each of its machine types: an arm64
/// AMI on an x86_64-only type never boots, and the Auto Scaling group
/// would only keep failing to launch.
pub async fn check_architectures(
    catalog: &dyn Catalog,
    spec: &Spec,
    model: &Model,
    image_info: &HashMap<String, ImageInfo>,
) -> Result<Vec<Problem>, DirectError> {
    let wanted = machine_types(spec);
    let types: BTreeSet<String> = wanted.iter().map(|w| w.2.to_string()).collect();
    let archs = catalog
        .architectures(&types.into_iter().collect::<Vec<_>>())
        .await
        .map_err(DirectError::Discover)?;
    let images: HashMap<String, String> = group_images(model).into_iter().collect();
    let mut problems = Vec::new();
    for (group, path, ty) in wanted {
        let Some(ami) = images.get(group) else {
            continue;
        };
        let (Some(info), Some(supported)) = (image_info.get(ami), archs.get(ty)) else {
            continue;
        };
        if !info.architecture.is_empty() && !supported.contains(&info.architecture) {
            problems.push(spec.problem_in(
                "InstanceGroup",
                group,
                &path,
                format!(
                    "machine type {ty} runs {}, but the group's image {ami} is {}",
                    supported.join(", "),
                    info.architecture
                ),
                "choose an image of the machine type's architecture (for Graviton types, an arm64 image), or a machine type of the image's",
            ));
        }
    }
    Ok(problems)
}
