//! `clusterctl validate`: check a spec, report every problem at once, and
//! show the defaulted spec.

use std::path::Path;

use clusterctl::spec::Spec;

use super::{AppError, Report, plural};
use crate::cli::Format;

/// Validates `file`; `-o yaml|json` shows the defaulted spec.
pub fn run(file: &Path, format: Format) -> Result<Report, AppError> {
    let s = Spec::load(file)?;
    let topo = s
        .cluster
        .spec
        .topology
        .map(|t| format!("{t:?}").to_lowercase())
        .unwrap_or_default();
    let human = match format {
        Format::Yaml => s.completed_yaml(),
        _ => format!(
            "{}: cluster {} is valid ({}, {}, {topo} topology)\n",
            s.file,
            s.cluster.metadata.name,
            plural(s.cluster.spec.zones.len(), "zone"),
            plural(s.groups.len(), "instance group")
        ),
    };
    Ok(Report::ok(human, s.completed_json()))
}
