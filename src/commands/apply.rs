//! `clusterctl apply` and `clusterctl destroy`: the direct target under
//! the state lock, with live progress on stdout.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use clusterctl::direct::{Direct, DirectError, Operation};
use clusterctl::plan::Plan;
use clusterctl::spec::Spec;

use super::{AppError, Report, ownership_note, runtime};
use crate::cli::{AddonsArgs, RunArgs};

/// Reads a plan saved by `plan --out`.
pub fn read_saved_plan(path: &Path) -> Result<Plan, AppError> {
    let bad = |why: String| {
        AppError::Usage(format!(
            "{}: not a plan saved by `clusterctl plan --out`: {why}",
            path.display()
        ))
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if plan.format_version != clusterctl::plan::PLAN_FORMAT {
        return Err(bad(format!(
            "format version {}, this clusterctl reads {}",
            plan.format_version,
            clusterctl::plan::PLAN_FORMAT
        )));
    }
    Ok(plan)
}

/// The spec to apply: the file given, the one a saved plan carries, or
/// both when they are the same.
pub fn spec_for(file: Option<&Path>, saved: Option<&Plan>) -> Result<Spec, AppError> {
    match (file, saved.and_then(|p| p.spec.as_ref())) {
        (Some(f), Some(embedded)) => {
            let s = Spec::load(f)?;
            if s.source != embedded.text {
                return Err(AppError::Usage(format!(
                    "{} is not the spec the saved plan was made from ({} as it was then); run plan again, or apply the plan without -f",
                    f.display(),
                    embedded.file
                )));
            }
            Ok(s)
        }
        (Some(f), None) => Ok(Spec::load(f)?),
        (None, Some(embedded)) => Ok(Spec::parse(&embedded.text, &embedded.file)?),
        (None, None) => Err(AppError::Usage(
            "give the spec with -f FILE (or a plan saved with `clusterctl plan --out`)".into(),
        )),
    }
}

/// Runs `op` for `s` (with a saved plan, for apply), printing progress as
/// it goes; the report is the summary. An apply then installs the addons
/// unless `addons` says not to.
pub fn run(
    s: &Spec,
    op: Operation,
    saved: Option<Plan>,
    args: &RunArgs,
    addons: Option<&AddonsArgs>,
) -> Result<Report, AppError> {
    let m = clusterctl::model::build(s)?;
    let lock_timeout: Option<Duration> = args.lock_timeout.map(|d| d.0);
    runtime()?.block_on(async {
        let mut d = Direct::connect(s, m, args.parallelism).await?;
        match (&saved, op) {
            (_, Operation::Destroy) => {}
            (Some(p), Operation::Apply) => d.pin_images(&p.images).await?,
            (None, Operation::Apply) => d.resolve_images().await?,
        }
        let progress = clusterctl::apply::progress::for_stdout();
        let result = d
            .run(op, saved, args.parallelism, lock_timeout, progress.clone())
            .await;
        progress.finish();
        let note = ownership_note(&d.model.cluster_name);
        let applied = match result {
            Ok(r) => r,
            Err(e) => {
                if let DirectError::Apply { plan, .. } = &e {
                    print!("{}", plan.untouched_note(&note));
                }
                return Err(e.into());
            }
        };
        let (plan, serial) = (&applied.plan, applied.serial);
        let mut human = plan.untouched_note(&note);
        if !applied.secrets_written.is_empty() {
            let _ = writeln!(
                human,
                "\nWrote the cluster's secrets to the state store: {}",
                applied.secrets_written.join(", ")
            );
        }
        if applied.secrets_removed > 0 {
            let _ = writeln!(
                human,
                "\nRemoved {} secret objects (pki/, secrets/) from the state store.",
                applied.secrets_removed
            );
        }
        let sum = plan.summary();
        let (calls, retries) = (d.calls.operations(), d.calls.retries());
        let _ = writeln!(
            human,
            "\n{} complete! Resources: {} added, {} changed, {} destroyed. State serial {serial}. ({calls} AWS API calls, {retries} retried after throttling or transient errors)",
            match op {
                Operation::Apply => "Apply",
                Operation::Destroy => "Destroy",
            },
            sum.add,
            sum.change,
            sum.destroy,
        );
        let mut installed = serde_json::Value::Null;
        if let Some(a) = addons.filter(|a| !a.skip_addons && op == Operation::Apply) {
            let done =
                super::addons::install(s, &d.store, a.api_kubeconfig.as_deref(), a.api_timeout.0)
                    .await
                    .map_err(|e| AppError::AddonsPending {
                        serial,
                        file: s.file.clone(),
                        source: Box::new(e),
                    })?;
            human.push_str(&super::addons::summary(&done));
            installed = serde_json::to_value(&done)?;
        }
        let json = serde_json::json!({
            "addons": installed,
            "operation": op.name(),
            "summary": sum,
            "serial": serial,
            "untouched": plan.untouched,
            "secretsWritten": applied.secrets_written,
            "secretsRemoved": applied.secrets_removed,
            "apiCalls": calls,
            "retries": retries,
        });
        Ok(Report::ok(human, json))
    })
}
