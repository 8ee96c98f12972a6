//! The direct target end to end: connect to AWS and the state store, plan
//! against what exists, and apply or destroy under the state lock.

use std::sync::Arc;
use std::time::Duration;

use crate::apply::{ApplyError, Progress, apply};
use crate::cloud::aws::AwsCloud;
use crate::cloud::{Cloud, CloudError, IdMap};
use crate::model::{Model, state_location};
use crate::plan::{Plan, diff};
use crate::spec::Spec;
use crate::state::{StateError, StateStore};

/// Errors of the direct target.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The state store failed or is locked.
    #[error(transparent)]
    State(#[from] StateError),
    /// An image lookup of the spec failed.
    #[error("resolving images: {0}")]
    Images(#[source] CloudError),
    /// Finding what exists failed.
    #[error("finding existing resources: {0}")]
    Discover(#[source] CloudError),
    /// Some changes failed; `plan` is what was attempted.
    #[error("{error}")]
    Apply {
        /// The failures.
        error: ApplyError,
        /// The plan being applied (for its report of untouched resources).
        plan: Box<Plan>,
    },
    /// The saved plan was made against an older state.
    #[error(
        "the saved plan was made against state serial {plan}, but the state is now at {current}; run plan again"
    )]
    StalePlan {
        /// The plan's serial.
        plan: u64,
        /// The store's serial.
        current: u64,
    },
    /// The spec asks for something AWS does not offer.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// The spec's DNS zone is not a public hosted zone of the account.
    #[error(
        "spec.dnsZone {zone}: no public hosted zone of that name in this account; create it (and delegate it from its parent), or change spec.dnsZone"
    )]
    NoDnsZone {
        /// The zone.
        zone: String,
    },
    /// What exists changed since the saved plan was made, though the state
    /// serial did not (a change outside clusterctl, or a run that died).
    #[error(
        "what exists in AWS changed since the saved plan was made; these changes would differ: {}; run plan again",
        addresses.join(", ")
    )]
    PlanChanged {
        /// Addresses whose planned change differs.
        addresses: Vec<String>,
    },
    /// The saved plan lacks the AMI for an image lookup of its spec.
    #[error(
        "the saved plan does not record which AMI the image lookup {} resolved to; run plan again",
        lookups.join(", ")
    )]
    PlanImages {
        /// `owner/name` lookups without an AMI.
        lookups: Vec<String>,
    },
    /// The saved plan is for another cluster.
    #[error("the saved plan is for cluster {plan}, not {spec}")]
    WrongCluster {
        /// In the plan.
        plan: String,
        /// In the spec.
        spec: String,
    },
}

/// What an apply did.
#[derive(Debug)]
pub struct Applied {
    /// The plan applied.
    pub plan: Plan,
    /// The state serial after it.
    pub serial: u64,
    /// Secrets made by this apply (the first one, or after some went missing).
    pub secrets_written: Vec<String>,
    /// Secret objects removed (destroy).
    pub secrets_removed: usize,
}

/// A connected direct target for one spec.
pub struct Direct {
    /// The spec.
    pub spec: Spec,
    /// The model.
    pub model: Model,
    /// The state store.
    pub store: StateStore,
    /// The cloud.
    pub cloud: Arc<AwsCloud>,
    /// The AMI each image lookup of the spec was resolved (or pinned) to.
    pub images: std::collections::BTreeMap<String, String>,
    /// Architecture and root device of each AMI the model uses.
    pub image_info: std::collections::HashMap<String, crate::cloud::ImageInfo>,
    /// AMIs of the spec that do not exist, reported by the plan.
    image_problems: Vec<crate::spec::Problem>,
}

impl Direct {
    /// Connects with the standard AWS configuration (AWS_ENDPOINT_URL for an
    /// emulator). Plan and apply then call [`Direct::resolve_images`];
    /// destroy needs no images (and must work when they are gone).
    pub async fn connect(spec: &Spec, model: Model) -> Result<Direct, DirectError> {
        let clients = crate::cloud::Clients::load(&spec.cluster.spec.region).await;
        let (bucket, prefix) =
            state_location(&spec.cluster.spec.state_store, &spec.cluster.metadata.name);
        let cloud = Arc::new(AwsCloud::new(
            &clients,
            &model.cluster_name,
            &bucket,
            &prefix,
        ));
        Ok(Direct {
            spec: spec.clone(),
            cloud,
            store: StateStore::new(clients.s3, &bucket, &prefix),
            model,
            images: Default::default(),
            image_info: Default::default(),
            image_problems: vec![],
        })
    }

    /// Plans `target` (the model, or an empty model for destroy) against what exists.
    pub async fn plan_for(&self, target: &Model) -> Result<(Plan, IdMap), DirectError> {
        self.store.check_version().await?;
        let serial = self.store.serial().await?;
        let actual = self
            .cloud
            .discover(&self.model)
            .await
            .map_err(DirectError::Discover)?;
        let ids = IdMap::default();
        for a in &actual {
            ids.insert(&a.address, &a.id);
        }
        if !target.resources.is_empty() {
            let mut problems = self.check_zones().await?;
            if problems.is_empty() {
                problems.extend(self.check_instance_types().await?);
            }
            problems.extend(self.image_problems.iter().cloned());
            if problems.is_empty() {
                problems.extend(self.check_architectures().await?);
            }
            if !problems.is_empty() {
                return Err(crate::spec::SpecError::Invalid {
                    file: self.spec.file.clone(),
                    problems,
                }
                .into());
            }
            let missing = self
                .cloud
                .missing_dns_zones(target)
                .await
                .map_err(DirectError::Discover)?;
            if !missing.is_empty() {
                return Err(DirectError::NoDnsZone {
                    zone: missing.join(", "),
                });
            }
        }
        let mut plan = diff(target, &actual, serial);
        if !target.resources.is_empty() {
            plan.images = self.images.clone();
        }
        plan.untouched = self
            .cloud
            .untouched(&actual)
            .await
            .map_err(DirectError::Discover)?;
        Ok((plan, ids))
    }

    /// Resolves the model's image lookups to the newest matching AMIs.
    pub async fn resolve_images(&mut self) -> Result<(), DirectError> {
        self.images = self
            .cloud
            .resolve_images(&mut self.model)
            .await
            .map_err(DirectError::Images)?;
        self.inspect_images().await
    }

    /// Uses the AMIs a saved plan resolved its lookups to, so that it is
    /// applied as it was shown even if a newer image appeared since.
    pub async fn pin_images(
        &mut self,
        images: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), DirectError> {
        let lookups = self.model.pin_images(images);
        if !lookups.is_empty() {
            return Err(DirectError::PlanImages { lookups });
        }
        self.images = images.clone();
        self.inspect_images().await
    }

    /// Every zone of the spec must be an available zone of its region: one
    /// call, and each unknown zone reported at its line of the spec (before,
    /// it surfaced as a machine type "not offered" there).
    async fn check_zones(&self) -> Result<Vec<crate::spec::Problem>, DirectError> {
        let available = self
            .cloud
            .available_zones()
            .await
            .map_err(DirectError::Discover)?;
        let c = &self.spec.cluster;
        let problems: Vec<_> = c
            .spec
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| !available.contains(z))
            .map(|(i, z)| {
                self.spec.problem_in(
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
            .collect();
        Ok(problems)
    }

    /// Every machine type of every group (and of its mixed-instances
    /// policy) must be offered in each of the group's zones: one call, and
    /// every miss reported at its line of the spec.
    async fn check_instance_types(&self) -> Result<Vec<crate::spec::Problem>, DirectError> {
        use std::collections::{BTreeMap, BTreeSet};
        let mut zones_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for r in &self.model.resources {
            if let crate::model::Props::AutoscalingGroup {
                instance_group,
                zone,
                ..
            } = &r.props
            {
                zones_of.entry(instance_group).or_default().insert(zone);
            }
        }
        let wanted = self.machine_types();
        let types: BTreeSet<String> = wanted.iter().map(|w| w.2.to_string()).collect();
        let zones: BTreeSet<String> = zones_of.values().flatten().map(|z| z.to_string()).collect();
        if types.is_empty() || zones.is_empty() {
            return Ok(vec![]);
        }
        let offered = self
            .cloud
            .offered_instance_types(
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
                problems.push(self.spec.problem_in(
                    "InstanceGroup",
                    group,
                    &path,
                    format!(
                        "machine type {ty} is not offered in {} ({})",
                        missing.join(", "),
                        self.spec.cluster.spec.region
                    ),
                    "choose a type EC2 offers in every zone of the group (aws ec2 describe-instance-type-offerings --location-type availability-zone), or narrow the group's zones",
                ));
            }
        }
        Ok(problems)
    }

    /// The machine types of each group (path in its spec, type).
    fn machine_types(&self) -> Vec<(&str, String, &str)> {
        let mut wanted = Vec::new();
        for g in &self.spec.groups {
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

    /// The AMI of each group's launch template.
    fn group_images(&self) -> Vec<(String, String)> {
        let suffix = format!(".{}", self.model.cluster_name);
        self.model
            .resources
            .iter()
            .filter_map(|r| match &r.props {
                crate::model::Props::LaunchTemplate {
                    image: crate::model::Image::Ami { id },
                    ..
                } => Some((
                    r.name.strip_suffix(&suffix).unwrap_or(&r.name).to_string(),
                    id.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Each group's image must run on each of its machine types: an arm64
    /// AMI on an x86_64-only type never boots, and the Auto Scaling group
    /// would only keep failing to launch. One DescribeInstanceTypes call.
    async fn check_architectures(&self) -> Result<Vec<crate::spec::Problem>, DirectError> {
        let wanted = self.machine_types();
        let types: std::collections::BTreeSet<String> =
            wanted.iter().map(|w| w.2.to_string()).collect();
        let archs = self
            .cloud
            .architectures(&types.into_iter().collect::<Vec<_>>())
            .await
            .map_err(DirectError::Discover)?;
        let images: std::collections::HashMap<String, String> =
            self.group_images().into_iter().collect();
        let mut problems = Vec::new();
        for (group, path, ty) in wanted {
            let Some(ami) = images.get(group) else {
                continue;
            };
            let (Some(info), Some(supported)) = (self.image_info.get(ami), archs.get(ty)) else {
                continue;
            };
            if !info.architecture.is_empty() && !supported.contains(&info.architecture) {
                problems.push(self.spec.problem_in(
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

    /// Looks up the model's AMIs: their root device names go into the
    /// launch templates (Ubuntu's is /dev/sda1, Amazon Linux's /dev/xvda),
    /// their architectures are kept for [`Direct::check_architectures`], and
    /// an AMI that does not exist (or this account may not use) is a spec
    /// problem at the group's `spec.image`, reported by the plan.
    async fn inspect_images(&mut self) -> Result<(), DirectError> {
        let group_images = self.group_images();
        let ids: std::collections::BTreeSet<String> =
            group_images.iter().map(|(_, id)| id.clone()).collect();
        self.image_info = self
            .cloud
            .describe_images(&ids.into_iter().collect::<Vec<_>>())
            .await
            .map_err(DirectError::Images)?;
        for r in &mut self.model.resources {
            if let crate::model::Props::LaunchTemplate {
                image: crate::model::Image::Ami { id },
                root_device,
                ..
            } = &mut r.props
                && let Some(info) = self.image_info.get(id.as_str())
            {
                *root_device = info.root_device.clone();
            }
        }
        let region = &self.spec.cluster.spec.region;
        self.image_problems = group_images
            .iter()
            .filter(|(_, id)| !self.image_info.contains_key(id))
            .map(|(group, id)| {
                match self.images.iter().find(|(_, ami)| *ami == id) {
                    // Resolved from a lookup (by a saved plan, earlier).
                    Some((lookup, _)) => self.spec.problem_in(
                        "InstanceGroup",
                        group,
                        "spec.image",
                        format!("the image lookup {lookup} resolved to {id}, which no longer exists in {region}"),
                        "run plan again to resolve the lookup to a current image",
                    ),
                    None => self.spec.problem_in(
                        "InstanceGroup",
                        group,
                        "spec.image",
                        format!("image {id} does not exist in {region}, or this account may not use it"),
                        "give an AMI of this region (AMI ids differ between regions), or an owner/name-pattern lookup",
                    ),
                }
            })
            .collect();
        Ok(())
    }

    /// Plans the model.
    pub async fn plan(&self) -> Result<(Plan, IdMap), DirectError> {
        self.plan_for(&self.model).await
    }

    /// Applies a plan (made now, or saved) under the lock. Before changing
    /// anything it makes the cluster's missing secrets (CAs, service-account
    /// key, bootstrap token); a destroy (an empty target) removes them after
    /// everything else is gone.
    pub async fn apply(
        &self,
        target: &Model,
        saved: Option<Plan>,
        operation: &str,
        parallelism: usize,
        lock_timeout: Option<Duration>,
        progress: Arc<dyn Progress>,
    ) -> Result<Applied, DirectError> {
        let lock = self.store.lock(operation, lock_timeout).await?;
        let result = self
            .apply_locked(target, saved, parallelism, progress)
            .await;
        let unlocked = self.store.unlock(&lock).await;
        let out = result?;
        unlocked?;
        Ok(out)
    }

    async fn apply_locked(
        &self,
        target: &Model,
        saved: Option<Plan>,
        parallelism: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<Applied, DirectError> {
        let (fresh, ids) = self.plan_for(target).await?;
        let plan = match saved {
            Some(p) => {
                if p.cluster != target.cluster_name {
                    return Err(DirectError::WrongCluster {
                        plan: p.cluster,
                        spec: target.cluster_name.clone(),
                    });
                }
                if p.serial != fresh.serial {
                    return Err(DirectError::StalePlan {
                        plan: p.serial,
                        current: fresh.serial,
                    });
                }
                let addresses = differing_changes(&p, &fresh);
                if !addresses.is_empty() {
                    return Err(DirectError::PlanChanged { addresses });
                }
                // The fresh plan: the same changes, and the untouched
                // resources as they are now.
                fresh
            }
            None => fresh,
        };
        let destroy = target.resources.is_empty();
        let secrets_written = if destroy {
            vec![]
        } else {
            crate::state::secrets::ensure(&self.store).await?
        };
        let cloud: Arc<dyn Cloud> = self.cloud.clone();
        if let Err(error) = apply(cloud, target, &plan, &ids, parallelism, progress).await {
            // A destroy stopped by something else (a foreign resource in the
            // VPC, say) after every Auto Scaling group went: no control
            // plane is left, so the init marker goes too.
            let asg_failed = match &error {
                crate::apply::ApplyError::Failed { failed, .. } => failed
                    .iter()
                    .any(|e| e.to_string().contains("aws_autoscaling_group.")),
            };
            if destroy && !asg_failed {
                crate::state::secrets::remove_init_marker(&self.store).await?;
            }
            return Err(DirectError::Apply {
                error,
                plan: Box::new(plan),
            });
        }
        let secrets_removed = if destroy {
            crate::state::secrets::remove(&self.store).await?
        } else {
            0
        };
        let serial = self.store.bump_serial().await?;
        Ok(Applied {
            plan,
            serial,
            secrets_written,
            secrets_removed,
        })
    }
}

/// Addresses whose change differs between a saved plan and a fresh one
/// (present in one only, or with other attribute changes), in plan order.
fn differing_changes(saved: &Plan, fresh: &Plan) -> Vec<String> {
    use std::collections::BTreeMap;
    let index = |p: &Plan| -> BTreeMap<String, crate::plan::ResourceChange> {
        p.changes
            .iter()
            .map(|c| (c.address.clone(), c.clone()))
            .collect()
    };
    let (a, b) = (index(saved), index(fresh));
    let mut out: Vec<String> = Vec::new();
    for c in saved.changes.iter().chain(&fresh.changes) {
        if a.get(&c.address) != b.get(&c.address) && !out.contains(&c.address) {
            out.push(c.address.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, AttrChange, ResourceChange};

    fn change(address: &str, new: &str) -> ResourceChange {
        ResourceChange {
            address: address.into(),
            kind: "aws_autoscaling_group".into(),
            name: address.into(),
            action: Action::Update,
            id: Some("id".into()),
            changes: vec![AttrChange {
                attr: "max_size".into(),
                old: Some("3".into()),
                new: Some(new.into()),
                forces_replacement: false,
            }],
            rolling_update: false,
        }
    }

    fn plan(changes: Vec<ResourceChange>) -> Plan {
        Plan {
            format_version: crate::plan::PLAN_FORMAT,
            cluster: "c.example.com".into(),
            serial: 4,
            changes,
            spec: None,
            untouched: vec![],
            images: Default::default(),
        }
    }

    #[test]
    fn saved_and_fresh_plans_are_compared_change_by_change() {
        let saved = plan(vec![change("a", "5"), change("b", "5")]);
        assert!(differing_changes(&saved, &saved.clone()).is_empty());
        let fresh = plan(vec![change("a", "5"), change("b", "6"), change("c", "1")]);
        assert_eq!(differing_changes(&saved, &fresh), ["b", "c"]);
        let fewer = plan(vec![change("b", "5")]);
        assert_eq!(differing_changes(&saved, &fewer), ["a"]);
    }
}
