//! `clusterctl secrets create|delete`: the cluster's secrets for the
//! Terraform path. Terraform makes the infrastructure; these write the CAs,
//! service-account key and bootstrap token its instances fetch at boot, and
//! remove them (with the init claim and the etcd backups) once the cluster
//! is gone, so that a later cluster of the same name never trusts them.
//! Both run under the state lock and first look at what exists.

use std::fmt::Write as _;
use std::path::Path;

use clusterctl::cloud::aws::AwsCloud;
use clusterctl::cloud::{Clients, Cloud};
use clusterctl::model::{Model, state_location};
use clusterctl::resource::Kind;
use clusterctl::spec::Spec;
use clusterctl::state::secrets;

use super::{AppError, Report, runtime};
use crate::cli::RunArgs;

/// The cluster's resources that exist and carry its ownership mark, as
/// `kind address` (state objects aside).
async fn remaining(
    model: &Model,
    clients: &Clients,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, AppError> {
    let cloud = AwsCloud::new(clients, &model.cluster_name, bucket, prefix);
    let found = cloud
        .discover(model)
        .await
        .map_err(clusterctl::direct::DirectError::Discover)?;
    Ok(found
        .actual
        .iter()
        .filter(|a| a.owned && a.kind != Kind::S3Object)
        .map(|a| format!("{} {}", a.kind, a.address))
        .collect())
}

fn connect(file: &Path) -> Result<(Spec, Model, String, String), AppError> {
    let s = Spec::load(file)?;
    let m = clusterctl::model::build(&s)?;
    let (bucket, prefix) = state_location(&s.cluster.spec.state_store, &s.cluster.metadata.name);
    Ok((s, m, bucket, prefix))
}

/// Writes the missing secrets.
pub fn create(file: &Path, args: &RunArgs) -> Result<Report, AppError> {
    let (s, m, bucket, prefix) = connect(file)?;
    runtime()?.block_on(async {
        let clients = Clients::load(&s.cluster.spec.region).await;
        let store = clients.state_store(&bucket, &prefix).await?;
        let lock = store.lock("secrets create", args.lock_timeout.map(|t| t.0)).await?;
        let result = async {
            let missing = secrets::missing(&store).await?;
            if missing.is_empty() {
                return Ok(vec![]);
            }
            let running: Vec<String> = remaining(&m, &clients, &bucket, &prefix)
                .await?
                .into_iter()
                .filter(|r| r.starts_with("aws_autoscaling_group "))
                .collect();
            if !running.is_empty() {
                return Err(AppError::Usage(format!(
                    "refusing to write new secrets ({}) for {}: its Auto Scaling groups exist ({}), and instances that trust the old CAs would not trust new ones; destroy the cluster first, or restore the missing objects from the bucket's versions",
                    missing.join(", "),
                    m.cluster_name,
                    running.join(", ")
                )));
            }
            Ok(secrets::ensure(&store).await?)
        }
        .await;
        let unlocked = store.unlock(&lock).await;
        let written = result?;
        unlocked?;
        let human = if written.is_empty() {
            format!("All secrets of {} are in s3://{bucket}/{prefix}; nothing written.\n", m.cluster_name)
        } else {
            format!(
                "Wrote the secrets of {} to s3://{bucket}/{prefix}: {}\nInstances that `terraform apply` starts fetch them at boot.\n",
                m.cluster_name,
                written.join(", ")
            )
        };
        Ok(Report::ok(human, serde_json::json!({ "written": written })))
    })
}

/// Removes the secrets, the init claim and the etcd backups.
pub fn delete(file: &Path, yes: bool, args: &RunArgs) -> Result<Report, AppError> {
    if !yes {
        return Err(AppError::Usage(
            "Must specify --yes to delete the cluster's secrets.".into(),
        ));
    }
    let (s, m, bucket, prefix) = connect(file)?;
    runtime()?.block_on(async {
        let clients = Clients::load(&s.cluster.spec.region).await;
        let store = clients.state_store(&bucket, &prefix).await?;
        let lock = store.lock("secrets delete", args.lock_timeout.map(|t| t.0)).await?;
        let result = async {
            let left = remaining(&m, &clients, &bucket, &prefix).await?;
            if !left.is_empty() {
                return Err(AppError::Usage(format!(
                    "refusing to delete the secrets of {}: {} of its resources still exist ({}{}); run `terraform destroy` (or `clusterctl destroy`) first",
                    m.cluster_name,
                    left.len(),
                    left.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    if left.len() > 5 { ", …" } else { "" }
                )));
            }
            let n = secrets::remove(&store).await?;
            let backups = store.delete_dir("backups").await?;
            Ok((n, backups))
        }
        .await;
        let unlocked = store.unlock(&lock).await;
        let (n, backups) = result?;
        unlocked?;
        let mut human = format!(
            "Removed {n} secret objects and the init claim, and {backups} etcd backups, from s3://{bucket}/{prefix}.\n"
        );
        let rest = store.list().await?;
        if !rest.is_empty() {
            let _ = writeln!(
                human,
                "Left in the store: {}",
                rest.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(Report::ok(
            human,
            serde_json::json!({ "removed": n, "backupsRemoved": backups, "left": rest.iter().map(|(k, _)| k).collect::<Vec<_>>() }),
        ))
    })
}
