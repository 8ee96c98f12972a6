//! Deleting what was selected: each delete with `propagationPolicy:
//! Background` and a precondition on the uid that was listed, so an object
//! replaced since (same name, new uid) is never deleted; at most
//! `max_per_second` deletes started a second, `concurrency` at once; an
//! Event on each deleted object's owner (or its namespace). A failure on
//! one object never stops the pass.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use kube::api::{Api, DeleteParams, DynamicObject, Preconditions, PropagationPolicy};
use kube::runtime::events::EventType;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::observe::resource_of_kind;
use super::select::Candidate;
use crate::controllers::runtime::events::Events;

/// How one delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Deleted (or its deletion started).
    Deleted,
    /// Already gone.
    Gone,
    /// Replaced since the list (another uid): kept.
    Replaced,
    /// The delete failed.
    Failed,
}

/// Per kind: how many of each outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Deleted.
    pub deleted: usize,
    /// Kept: not selected, replaced since the list.
    pub kept: usize,
    /// Already gone.
    pub gone: usize,
    /// Deletes that failed.
    pub errors: usize,
}

/// Limits on deleting.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Deletes started a second, at most.
    pub max_per_second: f64,
    /// Deletes in flight, at most.
    pub concurrency: usize,
}

/// Deletes `candidates`; returns each one's outcome (and the error of a
/// failed one), in order.
pub async fn delete(
    client: &kube::Client,
    events: &Events,
    candidates: &[Candidate],
    pace: Pace,
) -> Vec<(Outcome, Option<String>)> {
    let gap = Duration::from_secs_f64(1.0 / pace.max_per_second.max(0.001));
    let mut ticker = tokio::time::interval(gap);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let slots = Arc::new(Semaphore::new(pace.concurrency.max(1)));
    let mut running = JoinSet::new();
    for (i, c) in candidates.iter().cloned().enumerate() {
        // One start per gap, and no more than `concurrency` in flight.
        ticker.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (client, events) = (client.clone(), events.clone());
        running.spawn(async move {
            let r = delete_one(&client, &events, &c).await;
            drop(slot);
            (i, r)
        });
    }
    let mut results = running.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

async fn delete_one(
    client: &kube::Client,
    events: &Events,
    c: &Candidate,
) -> (Outcome, Option<String>) {
    let ar = resource_of_kind(&c.kind);
    let api: Api<DynamicObject> = match &c.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(c.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let what = format!(
        "{} {}{}",
        c.kind,
        c.namespace
            .as_ref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        c.name
    );
    match api.delete(&c.name, &dp).await {
        Ok(_) => {
            tracing::info!(kind = %c.kind, namespace = ?c.namespace, name = %c.name, reason = %c.reason, "deleted");
            events
                .publish(
                    &c.event_on,
                    EventType::Normal,
                    "JanitorDeleted",
                    "Delete",
                    &format!("deleted {what}: {}", c.reason),
                )
                .await;
            (Outcome::Deleted, None)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => (Outcome::Gone, None),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::info!(kind = %c.kind, namespace = ?c.namespace, name = %c.name, "replaced since it was listed; kept");
            (Outcome::Replaced, None)
        }
        Err(e) => {
            tracing::warn!(kind = %c.kind, namespace = ?c.namespace, name = %c.name, error = %e, "delete failed");
            (Outcome::Failed, Some(format!("{what}: {e}")))
        }
    }
}

/// Adds the outcomes to the per-kind tally.
pub fn tally(
    kept: &BTreeMap<String, usize>,
    candidates: &[Candidate],
    outcomes: &[(Outcome, Option<String>)],
) -> BTreeMap<String, Tally> {
    let mut out: BTreeMap<String, Tally> = kept
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                Tally {
                    kept: *n,
                    ..Default::default()
                },
            )
        })
        .collect();
    for (c, (o, _)) in candidates.iter().zip(outcomes) {
        let t = out.entry(c.kind.clone()).or_default();
        match o {
            Outcome::Deleted => t.deleted += 1,
            Outcome::Gone => t.gone += 1,
            Outcome::Replaced => t.kept += 1,
            Outcome::Failed => t.errors += 1,
        }
    }
    out
}
