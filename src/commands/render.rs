//! `clusterctl render`: Terraform files and addon manifests from a spec,
//! or, with `--check`, which files of an earlier render are stale.

use std::fmt::Write as _;
use std::path::Path;

use clusterctl::spec::Spec;

use super::{AppError, Report};

/// Renders `file` into `out` (or checks `out` against it).
pub fn run(file: &Path, out: &Path, check: bool) -> Result<Report, AppError> {
    let s = Spec::load(file)?;
    let m = clusterctl::model::build(&s)?;
    let rendered = clusterctl::render::render(&m)?;
    if check {
        let diffs = rendered.check(out);
        let mut human = String::new();
        if diffs.is_empty() {
            let _ = writeln!(
                human,
                "{} is up to date ({} files)",
                out.display(),
                rendered.files.len()
            );
        } else {
            let _ = writeln!(
                human,
                "{} is stale; {} files differ:",
                out.display(),
                diffs.len()
            );
            for d in &diffs {
                let _ = writeln!(human, "  {:<8} {}", d.kind, d.path);
            }
        }
        let json = serde_json::json!({ "upToDate": diffs.is_empty(), "differences": diffs });
        let report = Report::ok(human, json);
        return Ok(if diffs.is_empty() {
            report
        } else {
            report.with_code(1)
        });
    }
    let written = rendered.write(out)?;
    let counts = m.counts();
    let mut human = format!(
        "cluster {} ({}): {} resources\n",
        m.cluster_name,
        m.region,
        m.resources.len()
    );
    for (kind, n) in &counts {
        let _ = writeln!(human, "  {n:>4}  {kind}");
    }
    let tf = rendered
        .files
        .keys()
        .filter(|k| k.starts_with("terraform/"))
        .count();
    let addons = rendered.files.len() - tf;
    let _ = writeln!(
        human,
        "wrote {written} of {} files to {} ({tf} under terraform/, {addons} under addons/)",
        rendered.files.len(),
        out.display()
    );
    let json = serde_json::json!({
        "cluster": m.cluster_name,
        "out": out,
        "resources": counts,
        "files": rendered.files.keys().collect::<Vec<_>>(),
        "written": written,
    });
    Ok(Report::ok(human, json))
}
