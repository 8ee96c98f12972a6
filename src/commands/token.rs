//! `clusterctl bootstrap-token rotate`: one rotation pass.

use std::path::Path;

use clusterctl::controllers::bootstrap_token::{self, Decision, Options};

use super::{AppError, Report, runtime};

/// The human line for a rotation decision.
pub fn describe(d: &Decision, dry_run: bool) -> String {
    match d {
        Decision::Keep { id, expires } => {
            format!(
                "Bootstrap token {id} kept: valid until {}.",
                expires.to_rfc3339()
            )
        }
        Decision::Rotate { reason, .. } if dry_run => {
            format!("Bootstrap token would be rotated (dry run): {reason}.")
        }
        Decision::Rotate { reason, .. } => format!("Bootstrap token rotated: {reason}."),
    }
}

/// Runs one pass against the cluster of `kubeconfig` (in-cluster or
/// $KUBECONFIG without one).
pub fn rotate(
    state_store: &str,
    cluster: &str,
    region: &str,
    kubeconfig: Option<&Path>,
    opts: Options,
) -> Result<Report, AppError> {
    runtime()?.block_on(async {
        let client = match kubeconfig {
            Some(p) => clusterctl::kubeconfig::client_from_file(p).await?,
            None => kube::Client::try_default().await.map_err(|e| {
                AppError::Usage(format!(
                    "no Kubernetes client (not in a cluster, and no usable $KUBECONFIG): {e}"
                ))
            })?,
        };
        let (bucket, prefix) = clusterctl::model::state_location(state_store, cluster);
        let clients = clusterctl::cloud::Clients::load(region).await;
        let store = clients.state_store(&bucket, &prefix).await?;
        let d = bootstrap_token::run(&client, &store, &opts).await?;
        let human = format!("{}\n", describe(&d, opts.dry_run));
        Ok(Report::ok(human, serde_json::to_value(&d)?))
    })
}
