//! `clusterctl state show|pull` and `clusterctl force-unlock`.

use std::fmt::Write as _;
use std::path::Path;

use clusterctl::spec::Spec;

use super::{AppError, Report, runtime, state_store};

/// Serial, lock holder and objects of the cluster's state store.
pub fn show(file: &Path) -> Result<Report, AppError> {
    let s = Spec::load(file)?;
    runtime()?.block_on(async {
        let store = state_store(&s).await?;
        let serial = store.serial().await?;
        let lock = store.lock_holder().await?;
        let objects = store.list().await?;
        let mut human = format!(
            "state store s3://{}/{}\nserial: {serial}\n",
            store.bucket, store.prefix
        );
        match &lock {
            Some(l) => {
                let _ = writeln!(
                    human,
                    "lock: {} held by {} for {} since {}",
                    l.id, l.who, l.operation, l.created
                );
            }
            None => human.push_str("lock: free\n"),
        }
        let _ = writeln!(human, "{} objects:", objects.len());
        for (k, n) in &objects {
            let _ = writeln!(human, "  {n:>8}  {k}");
        }
        let objs: Vec<_> = objects
            .iter()
            .map(|(k, n)| serde_json::json!({ "key": k, "size": n }))
            .collect();
        let json = serde_json::json!({
            "store": format!("s3://{}/{}", store.bucket, store.prefix),
            "serial": serial, "lock": lock, "objects": objs,
        });
        Ok(Report::ok(human, json))
    })
}

/// Copies the state store into `dir`, owner-only.
pub fn pull(file: &Path, dir: &Path) -> Result<Report, AppError> {
    let s = Spec::load(file)?;
    runtime()?.block_on(async {
        let store = state_store(&s).await?;
        let n = store.pull(dir).await?;
        let human = format!(
            "pulled {n} objects from s3://{}/{} into {} (owner-only: they hold the cluster's CA keys)\n",
            store.bucket,
            store.prefix,
            dir.display()
        );
        let json = serde_json::json!({ "objects": n, "dir": dir });
        Ok(Report::ok(human, json))
    })
}

/// Removes the lock `id`.
pub fn force_unlock(file: &Path, id: &str) -> Result<Report, AppError> {
    let s = Spec::load(file)?;
    runtime()?.block_on(async {
        let store = state_store(&s).await?;
        store.force_unlock(id).await?;
        let human = format!(
            "lock {id} removed from s3://{}/{}\n",
            store.bucket, store.prefix
        );
        Ok(Report::ok(human, serde_json::json!({ "removed": id })))
    })
}
