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
/// reported at once. The stages' calls are made at once; a stage's
/// problems (or failed call) count only once the stages before it found
/// none, as if they had run one after another.
pub async fn check(
    catalog: &dyn Catalog,
    spec: &Spec,
    model: &Model,
    image_info: &HashMap<String, ImageInfo>,
    image_problems: &[Problem],
) -> Result<(), DirectError> {
    let (zones, types, archs, dns) = tokio::join!(
        check_zones(catalog, spec),
        check_instance_types(catalog, spec, model),
        check_architectures(catalog, spec, model, image_info),
        missing_dns_zones(catalog, model),
    );
    let mut problems = zones?;
    if problems.is_empty() {
        problems.extend(types?);
    }
    problems.extend(image_problems.iter().cloned());
    if problems.is_empty() {
        problems.extend(archs?);
    }
    if !problems.is_empty() {
        return Err(crate::spec::SpecError::Invalid {
            file: spec.file.clone(),
            problems,
        }
        .into());
    }
    let missing = dns?;
    if !missing.is_empty() {
        return Err(DirectError::NoDnsZone {
            zone: missing.join(", "),
        });
    }
    Ok(())
}

/// The model's DNS zones that are not public hosted zones of the account
/// (asked at once).
async fn missing_dns_zones(
    catalog: &dyn Catalog,
    model: &Model,
) -> Result<Vec<String>, DirectError> {
    let zones = model.dns_zones();
    let found = futures::future::try_join_all(zones.iter().map(|z| catalog.public_zone_exists(z)))
        .await
        .map_err(DirectError::Discover)?;
    Ok(zones
        .into_iter()
        .zip(found)
        .filter(|(_, exists)| !exists)
        .map(|(z, _)| z.to_string())
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCatalog;
    use crate::spec::SpecError;

    const HA: &str = include_str!("../../examples/ha.yaml");
    const DEV: &str = include_str!("../../examples/dev.yaml");
    const HA_TYPES: &[&str] = &["m6i.large", "m6i.xlarge", "m5.large", "m5a.large"];
    const HA_AMI: &str = "ami-0a1b2c3d4e5f60718";
    const HA_ZONES: &[&str] = &["eu-west-1a", "eu-west-1b", "eu-west-1c"];

    fn region() -> FakeCatalog {
        let mut c = FakeCatalog::region(HA_ZONES, HA_TYPES, &[HA_AMI]);
        c.dns_zones.insert("example.com".into());
        c
    }

    /// Resolves, inspects and checks `text` against `catalog`; the problems
    /// as (line, path, message).
    async fn preflight(text: &str, catalog: &FakeCatalog) -> Result<(), DirectError> {
        let spec = Spec::parse(text, "ha.yaml").unwrap();
        let mut model = crate::model::build(&spec).unwrap();
        let resolved = resolve_images(catalog, &mut model).await?;
        let (info, problems) = inspect_images(catalog, &spec, &mut model, &resolved).await?;
        check(catalog, &spec, &model, &info, &problems).await
    }

    fn problems(r: Result<(), DirectError>) -> Vec<(usize, String, String)> {
        match r {
            Err(DirectError::Spec(SpecError::Invalid { problems, .. })) => problems
                .into_iter()
                .map(|p| (p.line, p.path, p.message))
                .collect(),
            other => panic!("expected spec problems, got {other:?}"),
        }
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[tokio::test]
    async fn a_region_that_has_everything_passes() {
        preflight(HA, &region()).await.unwrap();
    }

    #[tokio::test]
    async fn a_zone_the_region_lacks_is_named_at_its_index() {
        let mut c = region();
        c.zones.retain(|z| z != "eu-west-1c");
        let p = problems(preflight(HA, &c).await);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, line_of(HA, "zones: [eu-west-1a, eu-west-1b"));
        assert_eq!(p[0].1, "spec.zones[2]");
        assert!(
            p[0].2.contains(
                "eu-west-1c is not an available zone of eu-west-1 (it has eu-west-1a, eu-west-1b)"
            ),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_machine_type_not_offered_in_a_zone_is_named_with_the_zone() {
        let mut c = region();
        c.offerings
            .remove(&("m5a.large".to_string(), "eu-west-1b".to_string()));
        let p = problems(preflight(HA, &c).await);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0].0,
            line_of(HA, "instances: [m6i.large, m5.large, m5a.large]")
        );
        assert_eq!(p[0].1, "spec.mixedInstancesPolicy.instances[2]");
        assert!(
            p[0].2.contains("m5a.large is not offered in eu-west-1b"),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_ami_is_named_at_each_groups_image() {
        let mut c = region();
        c.images.clear();
        let p = problems(preflight(HA, &c).await);
        // Five groups, each with the pinned AMI.
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p.iter().all(|(_, path, m)| path == "spec.image"
            && m.contains("image ami-0a1b2c3d4e5f60718 does not exist in eu-west-1")));
        assert_eq!(p[0].0, line_of(HA, "image: ami-0a1b2c3d4e5f60718"));
    }

    #[tokio::test]
    async fn an_image_of_another_architecture_is_named_at_the_type() {
        let mut c = region();
        c.architectures
            .insert("m5a.large".into(), vec!["arm64".into()]);
        let p = problems(preflight(HA, &c).await);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].1, "spec.mixedInstancesPolicy.instances[2]");
        assert!(
            p[0].2.contains(
                "m5a.large runs arm64, but the group's image ami-0a1b2c3d4e5f60718 is x86_64"
            ),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_dns_zone_is_its_own_error() {
        let mut c = region();
        c.dns_zones.clear();
        match preflight(HA, &c).await {
            Err(DirectError::NoDnsZone { zone }) => assert_eq!(zone, "example.com"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn lookups_resolve_to_the_catalogs_answer_or_fail_by_name() {
        // dev.yaml uses the default Ubuntu lookup.
        let mut c = FakeCatalog::region(&["us-east-1a"], &["t3.medium", "t3.large"], &["ami-new"]);
        c.dns_zones.insert("example.com".into());
        match preflight(DEV, &c).await {
            Err(DirectError::NoImage { owner, .. }) => assert_eq!(owner, "099720109477"),
            other => panic!("{other:?}"),
        }
        let spec = Spec::parse(DEV, "dev.yaml").unwrap();
        let mut model = crate::model::build(&spec).unwrap();
        let lookup = model.image_lookups().into_iter().next().unwrap();
        c.lookups.insert(lookup.clone(), "ami-new".into());
        let resolved = resolve_images(&c, &mut model).await.unwrap();
        assert_eq!(resolved.get(&lookup).map(String::as_str), Some("ami-new"));
        assert!(model.image_lookups().is_empty());
        preflight(DEV, &c).await.unwrap();
        // A saved plan's AMI that is gone since is named as the lookup's.
        c.images.clear();
        let (_, problems) = inspect_images(&c, &spec, &mut model, &resolved)
            .await
            .unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].message.contains(&format!(
                "the image lookup {lookup} resolved to ami-new, which no longer exists"
            )),
            "{problems:?}"
        );
    }

    #[tokio::test]
    async fn the_root_device_comes_from_the_ami() {
        let mut c = region();
        if let Some(i) = c.images.get_mut(HA_AMI) {
            i.root_device = "/dev/xvda".into();
        }
        let spec = Spec::parse(HA, "ha.yaml").unwrap();
        let mut model = crate::model::build(&spec).unwrap();
        inspect_images(&c, &spec, &mut model, &BTreeMap::new())
            .await
            .unwrap();
        let devices: BTreeSet<&str> = model
            .resources
            .iter()
            .filter_map(|r| match &r.props {
                Props::LaunchTemplate { root_device, .. } => Some(root_device.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(devices, BTreeSet::from(["/dev/xvda"]));
    }
}
