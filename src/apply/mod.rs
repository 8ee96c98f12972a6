//! Executing a plan through a [`Cloud`]: deletes first, in reverse
//! dependency order, then creates, updates and replacements, each resource
//! as soon as everything it refers to is done, at most `parallelism` at a
//! time. Creates look resources up by name before making them, so running
//! apply again after a crash converges without duplicates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::Instrument;

use crate::cloud::{Cloud, CloudError, IdMap};
use crate::model::Model;
use crate::plan::{Action, Plan, ResourceChange};
use crate::resource::Kind;

/// Why one change failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The cloud call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The task running the change panicked (a bug): what it did is unknown.
    #[error("the change panicked: {0}")]
    Panicked(String),
    /// The task running the change was cancelled before it finished.
    #[error("the change was cancelled before it finished")]
    Cancelled,
    /// A resource this one refers to failed, so it was not attempted.
    #[error("not attempted: {0} failed")]
    Blocked(String),
}

/// One change that did not happen.
#[derive(Debug)]
pub struct Failure {
    /// The resource's address.
    pub address: String,
    /// Its kind.
    pub kind: Kind,
    /// Why.
    pub error: StepError,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.address,
            match &self.error {
                StepError::Cloud(c) => crate::cloud::describe(c),
                other => crate::cloud::error_chain(other),
            }
        )
    }
}

/// Errors of apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Some resources failed; the rest of the plan was done where possible.
    #[error("{} of {total} changes failed; the first: {}", failed.len(), failed.first().map(|f| f.to_string()).unwrap_or_default())]
    Failed {
        /// Every failure (changes not attempted because of one included).
        failed: Vec<Failure>,
        /// Changes in the plan.
        total: usize,
    },
}

impl ApplyError {
    /// The kinds of the resources whose change failed (or was not attempted).
    pub fn failed_kinds(&self) -> Vec<Kind> {
        match self {
            ApplyError::Failed { failed, .. } => failed.iter().map(|f| f.kind).collect(),
        }
    }
}

pub mod progress;

pub use progress::{Bar, Lines, Progress, Quiet};

/// What a task's join says, as a step's outcome.
fn joined(e: JoinError) -> StepError {
    if e.is_panic() {
        let payload = e.into_panic();
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".to_string());
        StepError::Panicked(msg)
    } else {
        StepError::Cancelled
    }
}

/// Applies `plan` for `model`. `ids` must hold the ids of existing
/// resources. A change that fails, panics or is cancelled fails apply, and
/// blocks every change that refers to it.
pub async fn apply(
    cloud: Arc<dyn Cloud>,
    model: &Model,
    plan: &Plan,
    ids: &IdMap,
    parallelism: usize,
    progress: Arc<dyn Progress>,
) -> Result<(), ApplyError> {
    // A replacement reports twice: its delete half and its create half.
    progress.begin(
        plan.changes.len()
            + plan
                .changes
                .iter()
                .filter(|c| c.action == Action::Replace)
                .count(),
    );
    let sem = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut failed: Vec<Failure> = Vec::new();

    // 1. Deletes and the delete half of replacements, by type rank, highest first.
    let mut deletes: Vec<&ResourceChange> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
        .collect();
    deletes.sort_by_key(|c| std::cmp::Reverse(c.kind.rank()));
    for rank_group in deletes.chunk_by(|a, b| a.kind.rank() == b.kind.rank()) {
        let mut set = JoinSet::new();
        let mut running: HashMap<Id, &ResourceChange> = HashMap::new();
        for c in rank_group {
            let change = (*c).clone();
            let (cloud, sem, progress, ids) =
                (cloud.clone(), sem.clone(), progress.clone(), ids.clone());
            let span =
                tracing::info_span!("apply_step", action = "delete", address = %change.address);
            let handle = set.spawn(
                async move {
                    let _permit = sem.acquire_owned().await;
                    progress.started(Action::Delete, &change.address);
                    let res = cloud
                        .delete(
                            change.kind,
                            &change.address,
                            change.id.as_deref().unwrap_or_default(),
                        )
                        .await;
                    if res.is_ok() {
                        ids.remove(&change.address);
                    }
                    progress.done(
                        Action::Delete,
                        &change.address,
                        &res.as_ref().map(|_| ()).map_err(crate::cloud::describe),
                    );
                    res
                }
                .instrument(span),
            );
            running.insert(handle.id(), c);
        }
        while let Some(res) = set.join_next_with_id().await {
            let (id, outcome) = match res {
                Ok((id, Ok(()))) => (id, None),
                Ok((id, Err(e))) => (id, Some(StepError::Cloud(e))),
                Err(e) => (e.id(), Some(joined(e))),
            };
            if let (Some(error), Some(c)) = (outcome, running.get(&id)) {
                if !matches!(error, StepError::Cloud(_)) {
                    progress.done(Action::Delete, &c.address, &Err(error.to_string()));
                }
                failed.push(Failure {
                    address: c.address.clone(),
                    kind: c.kind,
                    error,
                });
            }
        }
    }

    // 2. Creates, updates and the create half of replacements, as their dependencies finish.
    let todo: HashMap<String, &ResourceChange> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .map(|c| (c.address.clone(), c))
        .collect();
    let resources: HashMap<String, &crate::model::Resource> = model
        .resources
        .iter()
        .map(|r| (r.id.address(), r))
        .collect();
    let mut pending: Vec<String> = model
        .resources
        .iter()
        .map(|r| r.id.address())
        .filter(|a| todo.contains_key(a))
        .collect();
    let mut finished: HashSet<String> = HashSet::new();
    let mut blocked: HashMap<String, String> = HashMap::new();
    let mut set = JoinSet::new();
    let mut running: HashMap<Id, String> = HashMap::new();
    loop {
        // Start everything whose dependencies are done.
        let mut k = 0;
        while k < pending.len() {
            let addr = pending[k].clone();
            let r = resources[&addr];
            let deps: Vec<String> = r
                .deps()
                .iter()
                .map(|d| d.address())
                .filter(|d| todo.contains_key(d))
                .collect();
            if let Some(d) = deps.iter().find(|d| blocked.contains_key(*d)) {
                let root = blocked[d].clone();
                blocked.insert(addr.clone(), root.clone());
                failed.push(Failure {
                    address: addr,
                    kind: r.id.kind,
                    error: StepError::Blocked(root),
                });
                pending.remove(k);
                continue;
            }
            if deps.iter().all(|d| finished.contains(d)) {
                pending.remove(k);
                let change = todo[&addr].clone();
                let (cloud, sem, progress, ids) =
                    (cloud.clone(), sem.clone(), progress.clone(), ids.clone());
                let res_owned = r.clone();
                let span = tracing::info_span!(
                    "apply_step",
                    action = ?change.action,
                    address = %change.address
                );
                let handle = set.spawn(
                    async move {
                        let _permit = sem.acquire_owned().await;
                        progress.started(change.action, &change.address);
                        let res = match change.action {
                            Action::Update => {
                                cloud
                                    .update(
                                        &res_owned,
                                        change.id.as_deref().unwrap_or_default(),
                                        &change.changes,
                                        &ids,
                                    )
                                    .await
                            }
                            _ => cloud
                                .create(&res_owned, &ids)
                                .await
                                .map(|id| ids.insert(&change.address, &id)),
                        };
                        progress.done(
                            change.action,
                            &change.address,
                            &res.as_ref().map(|_| ()).map_err(crate::cloud::describe),
                        );
                        res
                    }
                    .instrument(span),
                );
                running.insert(handle.id(), addr);
            } else {
                k += 1;
            }
        }
        let Some(res) = set.join_next_with_id().await else {
            break;
        };
        let (id, outcome) = match res {
            Ok((id, Ok(()))) => (id, None),
            Ok((id, Err(e))) => (id, Some(StepError::Cloud(e))),
            Err(e) => (e.id(), Some(joined(e))),
        };
        let Some(addr) = running.remove(&id) else {
            continue;
        };
        match outcome {
            None => {
                finished.insert(addr);
            }
            Some(error) => {
                if !matches!(error, StepError::Cloud(_)) {
                    progress.done(todo[&addr].action, &addr, &Err(error.to_string()));
                }
                blocked.insert(addr.clone(), addr.clone());
                failed.push(Failure {
                    kind: todo[&addr].kind,
                    address: addr,
                    error,
                });
            }
        }
    }
    // Nothing may be left undone without a reason.
    for addr in pending {
        failed.push(Failure {
            kind: todo[&addr].kind,
            error: StepError::Blocked(format!("a dependency of {addr}")),
            address: addr,
        });
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Failed {
            total: plan.changes.len(),
            failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::resource::Kind;
    use crate::spec::Spec;

    fn model(text: &str) -> Model {
        crate::model::build(&Spec::parse(text, "t.yaml").unwrap()).unwrap()
    }

    const DEV: &str = include_str!("../../examples/dev.yaml");
    const HA: &str = include_str!("../../examples/ha.yaml");

    async fn converge(cloud: &Arc<FakeCloud>, m: &Model) -> Plan {
        let (plan, ids) = crate::plan::refresh(cloud.as_ref(), m, m, 0).await.unwrap();
        apply(cloud.clone(), m, &plan, &ids, 10, Arc::new(Quiet))
            .await
            .map(|_| plan)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn replan(cloud: &Arc<FakeCloud>, m: &Model) -> Plan {
        crate::plan::refresh(cloud.as_ref(), m, m, 0)
            .await
            .unwrap()
            .0
    }

    /// A replacement finishes twice (delete half, create half); the bar's
    /// length counts both, so it ends exactly full.
    #[tokio::test]
    async fn progress_length_counts_both_halves_of_a_replacement() {
        let cloud = Arc::new(FakeCloud::default());
        converge(&cloud, &model(HA)).await;
        let edited = model(&HA.replace("sshAccess: [", "sshAccess: [198.51.100.0/24, "));
        let plan = replan(&cloud, &edited).await;
        assert!(
            plan.changes.iter().any(|c| c.action == Action::Replace),
            "{}",
            plan.render()
        );
        let bar = Arc::new(Bar::new(indicatif::ProgressDrawTarget::hidden()));
        let ids = IdMap::of(&cloud.discover(&edited).await.unwrap().actual);
        apply(cloud.clone(), &edited, &plan, &ids, 4, bar.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(bar.position()), bar.length());
    }

    #[tokio::test]
    async fn apply_then_plan_shows_no_changes() {
        for text in [DEV, HA] {
            let cloud = Arc::new(FakeCloud::default());
            let m = model(text);
            let first = converge(&cloud, &m).await;
            assert_eq!(first.summary().add, m.resources.len());
            let again = replan(&cloud, &m).await;
            assert!(again.is_empty(), "{}", again.render());
            assert!(
                again
                    .render()
                    .starts_with("No changes. Your infrastructure matches the configuration.")
            );
        }
    }

    #[tokio::test]
    async fn editing_max_size_is_exactly_one_update_per_zone() {
        let cloud = Arc::new(FakeCloud::default());
        converge(&cloud, &model(HA)).await;
        let edited = model(&HA.replace(
            "  minSize: 3\n  maxSize: 30\n",
            "  minSize: 3\n  maxSize: 33\n",
        ));
        let plan = replan(&cloud, &edited).await;
        // Three per-zone ASGs, plus the state store's copy of the group.
        assert_eq!(
            plan.summary(),
            crate::plan::Summary {
                add: 0,
                change: 4,
                destroy: 0
            },
            "{}",
            plan.render()
        );
        let infra: Vec<_> = plan
            .changes
            .iter()
            .filter(|c| c.kind != Kind::S3Object)
            .collect();
        assert_eq!(infra.len(), 3);
        assert!(infra.iter().all(|c| c.kind == Kind::AutoscalingGroup
            && c.changes.len() == 1
            && c.changes[0].attr == "max_size"));
        let objects: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| c.kind == Kind::S3Object)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(objects, ["clusters/ha.example.com/instancegroup/nodes"]);
        assert!(
            plan.render().contains("~ max_size: \"10\" -> \"11\""),
            "{}",
            plan.render()
        );
        converge(&cloud, &edited).await;
        assert!(replan(&cloud, &edited).await.is_empty());
    }

    #[tokio::test]
    async fn machine_type_change_needs_a_rolling_update() {
        let cloud = Arc::new(FakeCloud::default());
        converge(&cloud, &model(DEV)).await;
        let edited = model(&DEV.replace("machineType: t3.large", "machineType: m6i.large"));
        let plan = replan(&cloud, &edited).await;
        let lt: Vec<_> = plan
            .changes
            .iter()
            .filter(|c| c.kind == Kind::LaunchTemplate)
            .collect();
        assert_eq!(lt.len(), 1);
        assert!(lt[0].rolling_update);
        assert!(
            plan.render().contains("Rolling update needed"),
            "{}",
            plan.render()
        );
    }

    #[tokio::test]
    async fn removing_a_node_group_deletes_only_its_resources() {
        let cloud = Arc::new(FakeCloud::default());
        converge(&cloud, &model(HA)).await;
        let cut = HA.find("---\napiVersion: clusterctl.io/v1alpha1\nkind: InstanceGroup\nmetadata:\n  name: spot-batch").unwrap();
        let edited = model(&HA[..cut]);
        let plan = replan(&cloud, &edited).await;
        let s = plan.summary();
        // Its launch template, 3 ASGs and its state object go; the channel-free spec objects change.
        assert_eq!(s.destroy, 1 + 3 + 1, "{}", plan.render());
        assert!(
            plan.changes
                .iter()
                .filter(|c| c.action == Action::Delete)
                .all(|c| c.name.contains("spot-batch")),
            "{}",
            plan.render()
        );
        converge(&cloud, &edited).await;
        assert!(replan(&cloud, &edited).await.is_empty());
    }

    #[tokio::test]
    async fn crash_at_any_point_then_reapply_converges_without_duplicates() {
        let m = model(HA);
        let n = m.resources.len() as u64;
        for crash_after in [0, 1, n / 4, n / 2, n - 1] {
            let cloud = Arc::new(FakeCloud::default());
            *cloud.fail_after.lock().unwrap() = Some(crash_after);
            let plan = replan(&cloud, &m).await;
            let r = apply(
                cloud.clone(),
                &m,
                &plan,
                &IdMap::default(),
                10,
                Arc::new(Quiet),
            )
            .await;
            assert!(r.is_err());
            *cloud.fail_after.lock().unwrap() = None;
            converge(&cloud, &m).await;
            assert_eq!(
                cloud.resources().len(),
                m.resources.len(),
                "crash after {crash_after}"
            );
            assert!(replan(&cloud, &m).await.is_empty());
        }
    }

    /// A panic in a cloud call must fail its resource and block its
    /// dependents; before, the join error was dropped, the dependents never
    /// started, and apply returned success.
    #[tokio::test]
    async fn a_panicking_change_fails_apply_and_blocks_its_dependents() {
        let m = model(DEV);
        let cloud = Arc::new(FakeCloud::default());
        let vpc = m.of_kind(Kind::Vpc).next().unwrap().id.address();
        *cloud.panic_on.lock().unwrap() = Some(vpc.clone());
        let plan = replan(&cloud, &m).await;
        let err = apply(
            cloud.clone(),
            &m,
            &plan,
            &IdMap::default(),
            4,
            Arc::new(Quiet),
        )
        .await
        .unwrap_err();
        let ApplyError::Failed { failed, total } = &err;
        assert_eq!(*total, m.resources.len());
        let panicked: Vec<_> = failed
            .iter()
            .filter(|f| matches!(f.error, StepError::Panicked(_)))
            .collect();
        assert_eq!(panicked.len(), 1, "{err}");
        assert_eq!(panicked[0].address, vpc);
        assert!(err.to_string().contains("injected panic"), "{err}");
        // Everything inside the VPC was blocked, not silently skipped.
        let subnet = m.of_kind(Kind::Subnet).next().unwrap().id.address();
        assert!(
            failed.iter().any(|f| f.address == subnet
                && matches!(&f.error, StepError::Blocked(root) if *root == vpc)),
            "{err}"
        );
        // Every change is either done or reported: nothing falls through.
        let done = cloud.resources().len();
        assert_eq!(done + failed.len(), m.resources.len());
        // The same with a panicking delete.
        *cloud.panic_on.lock().unwrap() = None;
        converge(&cloud, &m).await;
        *cloud.panic_on.lock().unwrap() = Some(vpc.clone());
        let destroy = crate::plan::refresh(cloud.as_ref(), &m, &m.emptied(), 0)
            .await
            .unwrap()
            .0;
        let err = apply(
            cloud.clone(),
            &m.emptied(),
            &destroy,
            &IdMap::of(&cloud.resources()),
            4,
            Arc::new(Quiet),
        )
        .await
        .unwrap_err();
        assert_eq!(err.failed_kinds(), [Kind::Vpc], "{err}");
    }

    /// What exists at an address the model wants, without the cluster's
    /// mark, is neither adopted nor changed: the plan names it instead.
    #[tokio::test]
    async fn a_resource_of_the_models_name_that_is_not_ours_is_named_not_changed() {
        let cloud = Arc::new(FakeCloud::default());
        let m = model(DEV);
        let role = m.of_kind(Kind::IamRole).next().unwrap();
        cloud.insert_foreign(crate::cloud::Actual {
            address: role.id.address(),
            kind: Kind::IamRole,
            name: role.name.clone(),
            id: role.name.clone(),
            attrs: Default::default(),
            owned: false,
        });
        let plan = replan(&cloud, &m).await;
        assert_eq!(plan.not_ours, [role.id.address()]);
        assert!(
            plan.changes.iter().all(|c| c.address != role.id.address()),
            "{}",
            plan.render()
        );
    }

    #[tokio::test]
    async fn foreign_resources_are_never_deleted() {
        let cloud = Arc::new(FakeCloud::default());
        let m = model(DEV);
        converge(&cloud, &m).await;
        cloud.insert_foreign(crate::cloud::Actual {
            address: "aws_subnet.someone-elses".into(),
            kind: Kind::Subnet,
            name: "theirs".into(),
            id: "subnet-x".into(),
            attrs: Default::default(),
            owned: false,
        });
        let plan = replan(&cloud, &m).await;
        assert!(plan.is_empty(), "{}", plan.render());
    }
}
