//! `clusterctl node-autoscaler simulate --snapshot FILE`: the decision on a
//! recorded snapshot, with its reasons.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use clusterctl::controllers::node_autoscaler::{Settings, Snapshot, decide};

use super::{AppError, Report};

/// Reads a snapshot (YAML or JSON).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AppError::Usage(format!(
            "cannot read snapshot {}: {}",
            path.display(),
            clusterctl::io_reason(&e)
        ))
    })?;
    let de = serde_norway::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        AppError::Usage(format!("{}{line}: {at}: {inner}", path.display()))
    })
}

/// Decides on the snapshot at `path`.
pub fn simulate(path: &Path, settings: &Settings) -> Result<Report, AppError> {
    let snap = read_snapshot(path)?;
    let started = Instant::now();
    let d = decide(&snap, settings);
    let took = started.elapsed();
    let mut h = String::new();
    let _ = writeln!(
        h,
        "Snapshot {}: {} nodes, {} pods, {} groups; decided in {:.1} ms.",
        path.display(),
        snap.nodes.len(),
        snap.pods.len(),
        snap.groups.len(),
        took.as_secs_f64() * 1000.0
    );
    if d.set_desired.is_empty() && d.remove.is_empty() {
        h.push_str("\nNo changes.\n");
    }
    for s in &d.set_desired {
        let _ = writeln!(
            h,
            "\n~ {} ({}, {}): desired {} -> {}: {}",
            s.asg, s.group, s.zone, s.from, s.to, s.reason
        );
    }
    for r in &d.remove {
        let _ = writeln!(
            h,
            "\n- node {} ({} in {}, instance {}): {}; evicts {} pods",
            r.node,
            r.asg,
            r.zone,
            r.instance,
            r.reason,
            r.evict.len()
        );
    }
    if !d.notes.is_empty() {
        let _ = writeln!(h, "\nEvents:");
        for n in &d.notes {
            let _ = writeln!(h, "  {:?} {:?}: {}", n.kind, n.target, n.message);
        }
    }
    if !d.reasons.is_empty() {
        let _ = writeln!(h, "\nNot done, and why:");
        for r in &d.reasons {
            let _ = writeln!(h, "  {r}");
        }
    }
    let mut json = serde_json::to_value(&d)?;
    json["decisionMillis"] = (took.as_secs_f64() * 1000.0).into();
    Ok(Report::ok(h, json))
}

/// `clusterctl node-autoscaler`: the controller, until SIGTERM.
pub fn run(
    cluster: Option<String>,
    region: Option<String>,
    drain_timeout: std::time::Duration,
    runtime: clusterctl::controllers::runtime::RuntimeArgs,
    settings: Settings,
    verbose: u8,
) -> std::process::ExitCode {
    use clusterctl::controllers::drain::DrainOptions;
    use clusterctl::controllers::node_autoscaler::cloud::AwsNodeGroups;
    use clusterctl::controllers::node_autoscaler::component::NodeAutoscaler;
    let (Some(cluster), Some(region)) = (cluster, region) else {
        eprintln!(
            "error: the following required arguments were not provided:\n  --cluster-name <CLUSTER_NAME>\n  --region <REGION>\n\nFor more information, try '--help'."
        );
        return std::process::ExitCode::from(2);
    };
    // The AWS clients load inside the component's runtime.
    let groups = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            let clients = clusterctl::cloud::Clients::load(&region).await;
            AwsNodeGroups::new(&clients, &cluster)
        }),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let component = NodeAutoscaler::new(
        std::sync::Arc::new(groups),
        settings,
        DrainOptions {
            timeout: drain_timeout,
            ..DrainOptions::default()
        },
    );
    super::component::run(component, runtime, verbose)
}
