//! `clusterctl janitor`: one pass (a CronJob) that deletes what its rules
//! select: superseded empty ReplicaSets of Deployments, finished Jobs,
//! evicted pods, and objects and namespaces whose TTL annotation has
//! expired. Observe ([`observe`]: paginated lists) → decide ([`select`]:
//! pure) → act ([`act`]: uid-preconditioned deletes, paced, with Events),
//! on the controller runtime in `--once` mode.

pub mod act;
pub mod component;
pub mod observe;
pub mod report;
pub mod rules;
pub mod select;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

use act::{Outcome, Pace, Tally};
use observe::Lister;
use rules::RuleSet;
use select::{Candidate, Selection};

use crate::controllers::runtime::events::Events;

/// What one pass decided and did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// What was (or would be) deleted, and why.
    pub delete: Vec<Candidate>,
    /// Each delete's outcome, in the order of `delete` (none in a dry run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<Outcome>,
    /// The deletes that failed, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Per kind: deleted, kept, gone, errors.
    pub summary: BTreeMap<String, Tally>,
    /// Annotations that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// List calls (pages) made.
    pub list_calls: u64,
}

/// Lists and decides.
pub async fn plan(
    lister: &Lister,
    rules: &RuleSet,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Selection, kube::Error> {
    let inv = lister.inventory(rules).await?;
    Ok(select::select(&inv, rules, now))
}

/// Deletes what `selection` holds (or, in a dry run, only reports it).
pub async fn execute(
    client: &kube::Client,
    events: &Events,
    selection: Selection,
    pace: Pace,
    dry_run: bool,
) -> Report {
    let (outcomes, errors) = if dry_run {
        (Vec::new(), Vec::new())
    } else {
        let done = act::delete(client, events, &selection.delete, pace).await;
        let errors = done.iter().filter_map(|(_, e)| e.clone()).collect();
        (done, errors)
    };
    let summary = if dry_run {
        let mut s = act::tally(&selection.kept, &[], &[]);
        for c in &selection.delete {
            s.entry(c.kind.clone()).or_default();
        }
        s
    } else {
        act::tally(&selection.kept, &selection.delete, &outcomes)
    };
    Report {
        dry_run,
        outcomes: outcomes.into_iter().map(|(o, _)| o).collect(),
        errors,
        summary,
        problems: selection.problems,
        delete: selection.delete,
        list_calls: 0,
    }
}
