//! `clusterctl janitor`: one pass of the janitor (a CronJob runs it), on
//! the runtime in `--once` mode, without leader election (the CronJob's
//! `concurrencyPolicy: Forbid` keeps runs apart).

use std::process::ExitCode;

use clusterctl::controllers::janitor::act::Pace;
use clusterctl::controllers::janitor::component::{Janitor, Output};
use clusterctl::controllers::janitor::observe::resource;
use clusterctl::controllers::janitor::rules::{RuleSet, Rules, parse_file};
use clusterctl::controllers::runtime::RuntimeArgs;

use crate::cli::{JanitorArgs, JanitorOutput, JanitorRule};

/// The rules from the flags, then the rules file over them.
pub fn rules(a: &JanitorArgs) -> Result<RuleSet, String> {
    let mut base = Rules::default();
    base.replicasets.min_age = a.replicaset_min_age;
    base.replicasets.keep_revisions = a.keep_revisions;
    base.replicasets.orphans = a.orphans;
    base.jobs.ttl = a.job_ttl;
    base.jobs.include_cron_job_jobs = a.include_cronjob_jobs;
    base.pods.ttl = a.pod_ttl;
    base.pods.all_failed = a.all_failed_pods;
    base.ttl.kinds = a.kinds.clone();
    for d in &a.disable {
        match d {
            JanitorRule::Replicasets => base.replicasets.enabled = false,
            JanitorRule::Jobs => base.jobs.enabled = false,
            JanitorRule::Pods => base.pods.enabled = false,
            JanitorRule::Ttl => base.ttl.enabled = false,
        }
    }
    let set = match &a.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read rules file {}: {}", path.display(), e))?;
            parse_file(&text, &path.display().to_string(), base).map_err(|e| e.to_string())?
        }
        None => RuleSet {
            default: base,
            namespaces: Default::default(),
        },
    };
    for r in std::iter::once(&set.default).chain(set.namespaces.values()) {
        for k in &r.ttl.kinds {
            resource(k)?;
        }
    }
    if !(a.max_deletes_per_second > 0.0 && a.max_deletes_per_second.is_finite()) {
        return Err(format!(
            "invalid value '{}' for '--max-deletes-per-second <N>': must be above zero",
            a.max_deletes_per_second
        ));
    }
    Ok(set)
}

/// Runs one pass.
pub fn run(a: &JanitorArgs, mut runtime: RuntimeArgs, verbose: u8) -> ExitCode {
    let set = match rules(a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.once = true;
    runtime.leader_elect = false;
    let output = match a.output {
        JanitorOutput::Table => Output::Table,
        JanitorOutput::Json => Output::Json,
    };
    let pace = Pace {
        max_per_second: a.max_deletes_per_second,
        concurrency: a.concurrency,
    };
    super::component::run(
        Janitor::new(set, a.namespace.clone(), pace, output),
        runtime,
        verbose,
    )
}
