//! The direct target end to end: connect to AWS and the state store, run
//! the preflight, plan against what exists, and apply or destroy under the
//! state lock.

pub mod preflight;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::apply::{ApplyError, Progress, apply};
use crate::cloud::aws::{AwsCatalog, AwsCloud};
use crate::cloud::{AttemptCounter, Catalog, Cloud, CloudError, Discovery, IdMap, ImageInfo};
use crate::model::{Model, state_location};
use crate::plan::Plan;
use crate::resource::Kind;
use crate::spec::Spec;
use crate::state::{StateError, StateStore};

/// Errors of the direct target.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The state store failed or is locked.
    #[error(transparent)]
    State(#[from] StateError),
    /// An image lookup of the spec failed.
    #[error("resolving images")]
    Images(#[source] CloudError),
    /// No image matches a spec's `owner/name-pattern`.
    #[error(
        "no available image of owner {owner} matches the name {name}; give an ami- id or another pattern in the instance group's `image`"
    )]
    NoImage {
        /// Owner account or alias.
        owner: String,
        /// Name pattern.
        name: String,
    },
    /// Finding what exists failed.
    #[error("finding existing resources")]
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
    /// Resources with the names the spec gives exist without the cluster's
    /// ownership mark.
    #[error(
        "these exist with the names the spec gives, but without the ownership mark of cluster {cluster}: {}; clusterctl neither adopts nor changes them. Delete or rename them, or, if they are this cluster's, tag them KubernetesCluster={cluster} and kubernetes.io/cluster/{cluster}=owned",
        addresses.join(", ")
    )]
    NotOurs {
        /// This cluster.
        cluster: String,
        /// Their addresses.
        addresses: Vec<String>,
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

/// What a run does: bring the cluster to its spec, or remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create, update and delete until what exists matches the spec.
    Apply,
    /// Delete everything of the cluster (and then its secrets).
    Destroy,
}

impl Operation {
    /// The name the lock records.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Apply => "apply",
            Operation::Destroy => "destroy",
        }
    }
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
    pub cloud: Arc<dyn Cloud>,
    /// The region's catalog (for the preflight).
    pub catalog: Arc<dyn Catalog>,
    /// Counts the SDK calls of all clients.
    pub calls: AttemptCounter,
    /// The AMI each image lookup of the spec was resolved (or pinned) to.
    pub images: BTreeMap<String, String>,
    /// Architecture and root device of each AMI the model uses.
    pub image_info: HashMap<String, ImageInfo>,
    /// AMIs of the spec that do not exist, reported by the plan.
    image_problems: Vec<crate::spec::Problem>,
}

impl Direct {
    /// Connects with the standard AWS configuration (AWS_ENDPOINT_URL for an
    /// emulator). Plan and apply then call [`Direct::resolve_images`];
    /// destroy needs no images (and must work when they are gone). Each
    /// AWS service gets at most `parallelism` requests at once.
    pub async fn connect(
        spec: &Spec,
        model: Model,
        parallelism: usize,
    ) -> Result<Direct, DirectError> {
        let clients =
            crate::cloud::Clients::load_bounded(&spec.cluster.spec.region, parallelism).await;
        let (bucket, prefix) =
            state_location(&spec.cluster.spec.state_store, &spec.cluster.metadata.name);
        let store = clients
            .state_store(&bucket, &prefix)
            .await
            .map_err(DirectError::Discover)?;
        let cloud = Arc::new(
            AwsCloud::new(&clients, &model.cluster_name, &bucket, &prefix)
                .with_expected_owner(store.expected_owner().map(str::to_string)),
        );
        let catalog = Arc::new(AwsCatalog::new(&clients));
        let mut d = Direct::with(spec, model, store, cloud, catalog);
        d.calls = clients.attempts.clone();
        Ok(d)
    }

    /// A direct target over any cloud and catalog (tests use the fakes).
    pub fn with(
        spec: &Spec,
        model: Model,
        store: StateStore,
        cloud: Arc<dyn Cloud>,
        catalog: Arc<dyn Catalog>,
    ) -> Direct {
        Direct {
            spec: spec.clone(),
            model,
            store,
            cloud,
            catalog,
            calls: AttemptCounter::default(),
            images: Default::default(),
            image_info: Default::default(),
            image_problems: vec![],
        }
    }

    /// Plans `op` against what exists: for an apply, after the preflight.
    pub async fn plan_for(&self, op: Operation) -> Result<(Plan, IdMap), DirectError> {
        let discovery = self.discover_task();
        self.plan_with(op, discovery).await
    }

    /// Discovery on a task of its own, so that it runs while the caller
    /// does something else. It reads the model's names and the state
    /// objects' contents, which resolving images does not change.
    fn discover_task(&self) -> tokio::task::JoinHandle<Result<Discovery, CloudError>> {
        let (cloud, model) = (self.cloud.clone(), self.model.clone());
        let span = tracing::info_span!("discover", cluster = %model.cluster_name);
        tokio::spawn(tracing::Instrument::instrument(
            async move { cloud.discover(&model).await },
            span,
        ))
    }

    /// Plans `op` against what `discovery` finds. The state's version and
    /// serial, the preflight (for an apply) and the discovery run at once;
    /// their errors are reported in that order, as if they had run one
    /// after another.
    async fn plan_with(
        &self,
        op: Operation,
        discovery: tokio::task::JoinHandle<Result<Discovery, CloudError>>,
    ) -> Result<(Plan, IdMap), DirectError> {
        let state = async {
            let (version, serial) = tokio::join!(self.store.check_version(), self.store.serial());
            version?;
            serial
        };
        let checked = async {
            match op {
                Operation::Apply => {
                    preflight::check(
                        self.catalog.as_ref(),
                        &self.spec,
                        &self.model,
                        &self.image_info,
                        &self.image_problems,
                    )
                    .await
                }
                Operation::Destroy => Ok(()),
            }
        };
        let (serial, checked, found) = tokio::join!(state, checked, discovery);
        let serial = serial?;
        checked?;
        let found = match found {
            Ok(found) => found.map_err(DirectError::Discover)?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let empty;
        let target = match op {
            Operation::Apply => &self.model,
            Operation::Destroy => {
                empty = self.model.emptied();
                &empty
            }
        };
        let (mut plan, ids) = crate::plan::of_discovery(target, found, serial);
        if op == Operation::Apply {
            if !plan.not_ours.is_empty() {
                return Err(DirectError::NotOurs {
                    cluster: self.model.cluster_name.clone(),
                    addresses: plan.not_ours,
                });
            }
            plan.images = self.images.clone();
        }
        Ok((plan, ids))
    }

    /// Resolves the image lookups and plans an apply. Discovery needs no
    /// image, so it starts first and runs while the images are resolved.
    pub async fn resolve_and_plan(&mut self) -> Result<(Plan, IdMap), DirectError> {
        let discovery = self.discover_task();
        if let Err(e) = self.resolve_images().await {
            discovery.abort();
            return Err(e);
        }
        self.plan_with(Operation::Apply, discovery).await
    }

    /// Resolves the model's image lookups to the newest matching AMIs.
    pub async fn resolve_images(&mut self) -> Result<(), DirectError> {
        self.images = preflight::resolve_images(self.catalog.as_ref(), &mut self.model).await?;
        self.inspect_images().await
    }

    /// Uses the AMIs a saved plan resolved its lookups to, so that it is
    /// applied as it was shown even if a newer image appeared since.
    pub async fn pin_images(
        &mut self,
        images: &BTreeMap<String, String>,
    ) -> Result<(), DirectError> {
        let lookups = self.model.pin_images(images);
        if !lookups.is_empty() {
            return Err(DirectError::PlanImages { lookups });
        }
        self.images = images.clone();
        self.inspect_images().await
    }

    async fn inspect_images(&mut self) -> Result<(), DirectError> {
        let (info, problems) = preflight::inspect_images(
            self.catalog.as_ref(),
            &self.spec,
            &mut self.model,
            &self.images,
        )
        .await?;
        self.image_info = info;
        self.image_problems = problems;
        Ok(())
    }

    /// Plans the model.
    pub async fn plan(&self) -> Result<(Plan, IdMap), DirectError> {
        self.plan_for(Operation::Apply).await
    }

    /// Runs `op` under the lock, with a plan made now or a saved one.
    /// Before changing anything an apply makes the cluster's missing secrets
    /// (CAs, service-account key, bootstrap token); a destroy removes them
    /// after everything else is gone. The serial moves only when every
    /// change succeeded.
    pub async fn run(
        &self,
        op: Operation,
        saved: Option<Plan>,
        parallelism: usize,
        lock_timeout: Option<Duration>,
        progress: Arc<dyn Progress>,
    ) -> Result<Applied, DirectError> {
        let lock = self.store.lock(op.name(), lock_timeout).await?;
        let result = self.run_locked(op, saved, parallelism, progress).await;
        let unlocked = self.store.unlock(&lock).await;
        let out = result?;
        unlocked?;
        Ok(out)
    }

    async fn run_locked(
        &self,
        op: Operation,
        saved: Option<Plan>,
        parallelism: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<Applied, DirectError> {
        let (fresh, ids) = self.plan_for(op).await?;
        let plan = match saved {
            Some(p) => {
                if p.cluster != self.model.cluster_name {
                    return Err(DirectError::WrongCluster {
                        plan: p.cluster,
                        spec: self.model.cluster_name.clone(),
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
        let destroy = op == Operation::Destroy;
        let secrets_written = if destroy {
            vec![]
        } else {
            crate::state::secrets::ensure(&self.store).await?
        };
        let target = if destroy {
            self.model.emptied()
        } else {
            self.model.clone()
        };
        if let Err(error) = apply(
            self.cloud.clone(),
            &target,
            &plan,
            &ids,
            parallelism,
            progress,
        )
        .await
        {
            // A destroy stopped by something else (a foreign resource in the
            // VPC, say) after every Auto Scaling group went: no control
            // plane is left, so the init marker goes too.
            if destroy && !error.failed_kinds().contains(&Kind::AutoscalingGroup) {
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
            kind: Kind::AutoscalingGroup,
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
            not_ours: vec![],
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
