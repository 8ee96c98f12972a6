//! `clusterctl plan`: what `apply` would change in AWS, Terraform-style,
//! optionally saved with its spec and state serial.

use std::fmt::Write as _;
use std::path::Path;

use clusterctl::direct::Direct;
use clusterctl::spec::Spec;

use super::{AppError, Report, ownership_note, runtime};

/// Plans `file`; `out` saves the plan; with `detailed_exitcode` a plan
/// with changes exits 2.
pub fn run(
    file: &Path,
    out: Option<&Path>,
    detailed_exitcode: bool,
    parallelism: usize,
) -> Result<Report, AppError> {
    let s = Spec::load(file)?;
    let m = clusterctl::model::build(&s)?;
    runtime()?.block_on(async {
        let mut d = Direct::connect(&s, m, parallelism).await?;
        let (mut plan, _) = d.resolve_and_plan().await?;
        if let Some(path) = out {
            plan.spec = Some(clusterctl::plan::SavedSpec {
                file: file.display().to_string(),
                text: s.source.clone(),
            });
            std::fs::write(path, serde_json::to_vec_pretty(&plan)?).map_err(|e| {
                AppError::Usage(format!("cannot write the plan to {}: {e}", path.display()))
            })?;
        }
        let mut human = plan.render();
        human.push_str(&plan.untouched_note(&ownership_note(&d.model.cluster_name)));
        if let Some(path) = out {
            let _ = writeln!(
                human,
                "\nSaved the plan to {} (state serial {}, with its spec). Apply it with: clusterctl apply {}",
                path.display(),
                plan.serial,
                path.display()
            );
        } else if !plan.is_empty() {
            let _ = writeln!(
                human,
                "\nMust specify --yes to apply changes: clusterctl apply -f {} --yes",
                file.display()
            );
        }
        let json = serde_json::json!({
            "plan": plan,
            "summary": plan.summary(),
            "apiCalls": d.calls.operations(),
            "retries": d.calls.retries(),
        });
        let report = Report::ok(human, json);
        Ok(if detailed_exitcode && !plan.is_empty() {
            report.with_code(2)
        } else {
            report
        })
    })
}
