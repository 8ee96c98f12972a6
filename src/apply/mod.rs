//! Executing a plan through a [`Cloud`]: deletes first, in reverse
//! dependency order, then creates, updates and replacements, each resource
//! as soon as everything it refers to is done, at most `parallelism` at a
//! time. Creates look resources up by name before making them, so running
//! apply again after a crash converges without duplicates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cloud::{Cloud, CloudError, IdMap};
use crate::model::Model;
use crate::plan::{Action, Plan, rank};

/// Errors of apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Some resources failed; the rest of the plan was done where possible.
    #[error("{} of {total} changes failed; the first: {first}", failed.len())]
    Failed {
        /// Every failure.
        failed: Vec<CloudError>,
        /// Changes in the plan.
        total: usize,
        /// The first failure's message.
        first: String,
    },
}

pub mod progress;

pub use progress::{Bar, Lines, Progress, Quiet};

/// Applies `plan` for `model`. `ids` must hold the ids of existing resources.
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
    let mut failed: Vec<CloudError> = Vec::new();

    // 1. Deletes and the delete half of replacements, by type rank, highest first.
    let mut deletes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
        .collect();
    deletes.sort_by_key(|c| std::cmp::Reverse(rank(&c.kind)));
    let mut i = 0;
    while i < deletes.len() {
        let r = rank(&deletes[i].kind);
        let mut set = tokio::task::JoinSet::new();
        while i < deletes.len() && rank(&deletes[i].kind) == r {
            let c = deletes[i].clone();
            let (cloud, sem, progress, ids) =
                (cloud.clone(), sem.clone(), progress.clone(), ids.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                progress.started(Action::Delete, &c.address);
                let res = cloud
                    .delete(&c.kind, &c.address, c.id.as_deref().unwrap_or_default())
                    .await;
                if res.is_ok() {
                    ids.remove(&c.address);
                }
                progress.done(
                    Action::Delete,
                    &c.address,
                    &res.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                );
                res
            });
            i += 1;
        }
        while let Some(res) = set.join_next().await {
            if let Ok(Err(e)) = res {
                failed.push(e);
            }
        }
    }

    // 2. Creates, updates and the create half of replacements, as their dependencies finish.
    let todo: HashMap<String, &crate::plan::ResourceChange> = plan
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
    let mut blocked: HashSet<String> = HashSet::new();
    let mut set = tokio::task::JoinSet::new();
    let mut running = 0usize;
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
            if deps.iter().any(|d| blocked.contains(d)) {
                blocked.insert(addr.clone());
                pending.remove(k);
                continue;
            }
            if deps.iter().all(|d| finished.contains(d)) {
                pending.remove(k);
                let c = todo[&addr];
                let (cloud, sem, progress, ids) =
                    (cloud.clone(), sem.clone(), progress.clone(), ids.clone());
                let res_owned = r.clone();
                let change = c.clone();
                running += 1;
                set.spawn(async move {
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
                        &res.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                    );
                    (change.address, res)
                });
            } else {
                k += 1;
            }
        }
        if running == 0 {
            break;
        }
        if let Some(Ok((addr, res))) = set.join_next().await {
            running -= 1;
            match res {
                Ok(()) => {
                    finished.insert(addr);
                }
                Err(e) => {
                    blocked.insert(addr);
                    failed.push(e);
                }
            }
        } else {
            running = running.saturating_sub(1);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        let first = failed[0].to_string();
        Err(ApplyError::Failed {
            total: plan.changes.len(),
            first,
            failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::plan::diff;
    use crate::spec::Spec;

    fn model(text: &str) -> Model {
        crate::model::build(&Spec::parse(text, "t.yaml").unwrap()).unwrap()
    }

    const DEV: &str = include_str!("../../examples/dev.yaml");
    const HA: &str = include_str!("../../examples/ha.yaml");

    async fn converge(cloud: &Arc<FakeCloud>, m: &Model) -> Plan {
        let actual = cloud.discover(m).await.unwrap();
        let ids = IdMap::default();
        for a in &actual {
            ids.insert(&a.address, &a.id);
        }
        let plan = diff(m, &actual, 0);
        apply(cloud.clone(), m, &plan, &ids, 10, Arc::new(Quiet))
            .await
            .map(|_| plan)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn replan(cloud: &Arc<FakeCloud>, m: &Model) -> Plan {
        diff(m, &cloud.discover(m).await.unwrap(), 0)
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
        let ids = IdMap::default();
        for a in cloud.discover(&edited).await.unwrap() {
            ids.insert(&a.address, &a.id);
        }
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
            .filter(|c| c.kind != "aws_s3_object")
            .collect();
        assert_eq!(infra.len(), 3);
        assert!(infra.iter().all(|c| c.kind == "aws_autoscaling_group"
            && c.changes.len() == 1
            && c.changes[0].attr == "max_size"));
        let objects: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| c.kind == "aws_s3_object")
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
            .filter(|c| c.kind == "aws_launch_template")
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
            let actual = cloud.discover(&m).await.unwrap();
            let plan = diff(&m, &actual, 0);
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

    #[tokio::test]
    async fn foreign_resources_are_never_deleted() {
        let cloud = Arc::new(FakeCloud::default());
        let m = model(DEV);
        converge(&cloud, &m).await;
        cloud.insert_foreign(crate::cloud::Actual {
            address: "aws_subnet.someone-elses".into(),
            kind: "aws_subnet".into(),
            name: "theirs".into(),
            id: "subnet-x".into(),
            attrs: Default::default(),
            owned: false,
        });
        let plan = replan(&cloud, &m).await;
        assert!(plan.is_empty(), "{}", plan.render());
    }
}
