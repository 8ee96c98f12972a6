//! `preview gc`: expired previews removed, one failure never blocking the
//! others.
//!
//! - **observe**: one label-selected, paginated list of namespaces, and the
//!   ledger names in the state store;
//! - **decide** ([`decide`], pure): which namespaces go, whose DNS goes
//!   (expired ones, and ledgers whose namespace is already gone: a failure
//!   of an earlier run);
//! - **act**: namespaces deleted (uid precondition, bounded concurrency);
//!   then each zone listed once and the marked records deleted in batches
//!   (a batch that fails is split in halves until the failing previews are
//!   alone, so only they fail); then the ledgers of the finished ones. A failed preview
//!   keeps its ledger and is finished by the next run.
//!
//! A namespace without our label is never listed, and is checked again
//! before any delete.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use crate::cloud::dns::{Change, RecordSet};

use super::ledger::{self, Ledger};
use super::manage::{delete_namespace, preview_namespaces};
use super::records::{self, Removal};
use super::up::{is_ours, ledger_of};
use super::{PreviewError, Shared};

/// A preview namespace as gc sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Name.
    pub name: String,
    /// Carries our label.
    pub ours: bool,
    /// Being deleted already.
    pub terminating: bool,
    /// Its `expires-at`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its `last-deployed`, else its creation.
    pub last_deployed: Option<DateTime<Utc>>,
}

/// What gc will do.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Namespaces to delete.
    pub delete: Vec<String>,
    /// Previews whose DNS records go (the above, those already
    /// terminating, and ledgers left by earlier runs).
    pub dns: Vec<String>,
    /// Ledgers whose namespace is gone.
    pub leftovers: Vec<String>,
    /// Live previews kept.
    pub kept: usize,
}

/// When `s` expires: its `expires-at`, else its last deploy plus
/// `default_ttl`.
pub fn expiry(s: &Seen, default_ttl: Duration) -> Option<DateTime<Utc>> {
    s.expires_at.or_else(|| {
        s.last_deployed
            .map(|t| t + chrono::Duration::from_std(default_ttl).unwrap_or(chrono::Duration::MAX))
    })
}

/// The plan for the namespaces `seen` and the stored ledgers `stored`.
pub fn decide(
    seen: &[Seen],
    stored: &BTreeSet<String>,
    now: DateTime<Utc>,
    default_ttl: Duration,
) -> Plan {
    let mut plan = Plan::default();
    let names: BTreeSet<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    for s in seen {
        if !s.ours {
            continue;
        }
        let expired = expiry(s, default_ttl).is_some_and(|e| e <= now);
        if s.terminating {
            plan.dns.push(s.name.clone());
        } else if expired {
            plan.delete.push(s.name.clone());
            plan.dns.push(s.name.clone());
        } else {
            plan.kept += 1;
        }
    }
    for l in stored {
        if !names.contains(l.as_str()) {
            plan.leftovers.push(l.clone());
            plan.dns.push(l.clone());
        }
    }
    plan
}

/// One preview that gc could not finish.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// The namespace.
    pub namespace: String,
    /// What failed.
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The plan.
    pub plan: Plan,
    /// Namespaces deleted.
    pub namespaces_deleted: usize,
    /// DNS records (with their marks) deleted.
    pub records_deleted: usize,
    /// Previews finished (namespace, records and ledger gone).
    pub finished: Vec<String>,
    /// Previews that failed (retried by the next run).
    pub failed: Vec<Failure>,
    /// Names left alone (not ours).
    pub notes: Vec<String>,
    /// Kubernetes API calls.
    pub kube_calls: u64,
    /// Route53 calls.
    pub dns_calls: u64,
    /// Whether nothing was changed (dry run).
    pub dry_run: bool,
}

/// Changes per Route53 batch (Route53 allows 1,000).
const BATCH: usize = 400;
/// Concurrent deletes (namespaces, ledgers).
const CONCURRENCY: usize = 8;

fn seen_of(n: &Namespace) -> Seen {
    let a = n.metadata.annotations.clone().unwrap_or_default();
    let time = |k: &str| {
        a.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let created = n
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
    Seen {
        name: n.metadata.name.clone().unwrap_or_default(),
        ours: is_ours(n),
        terminating: n.metadata.deletion_timestamp.is_some(),
        expires_at: time(ledger::EXPIRES_AT),
        last_deployed: time(ledger::LAST_DEPLOYED).or(created),
    }
}

/// One gc run.
pub async fn run(
    s: &Shared,
    now: DateTime<Utc>,
    default_ttl: Duration,
    dry_run: bool,
) -> Result<Report, PreviewError> {
    let kube_calls = AtomicU64::new(0);
    let dns_before = s.dns.calls();
    let namespaces = preview_namespaces(&s.client).await?;
    kube_calls.fetch_add(
        namespaces.len().div_ceil(500).max(1) as u64,
        Ordering::Relaxed,
    );
    let stored: BTreeSet<String> = s.ledgers.namespaces().await?.into_iter().collect();
    let seen: Vec<Seen> = namespaces.iter().map(seen_of).collect();
    let plan = decide(&seen, &stored, now, default_ttl);
    let mut report = Report {
        plan: plan.clone(),
        dry_run,
        ..Default::default()
    };
    if dry_run {
        report.kube_calls = kube_calls.load(Ordering::Relaxed);
        report.dns_calls = s.dns.calls() - dns_before;
        return Ok(report);
    }
    let by_name: HashMap<&str, &Namespace> = namespaces
        .iter()
        .map(|n| (n.metadata.name.as_deref().unwrap_or_default(), n))
        .collect();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();

    // 1. Namespaces.
    kube_calls.fetch_add(plan.delete.len() as u64, Ordering::Relaxed);
    let jobs: Vec<(String, Option<Namespace>)> = plan
        .delete
        .iter()
        .map(|n| (n.clone(), by_name.get(n.as_str()).map(|ns| (*ns).clone())))
        .collect();
    let results: Vec<(String, Result<(), PreviewError>)> = futures::stream::iter(jobs)
        .map(|(name, ns)| {
            let client = s.client.clone();
            async move {
                let r = match &ns {
                    Some(ns) => delete_namespace(&client, ns).await,
                    None => Ok(()),
                };
                (name, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (name, r) in results {
        match r {
            Ok(()) => report.namespaces_deleted += 1,
            Err(e) => {
                failed.insert(name, e.to_string());
            }
        }
    }

    // 2. Ledgers of the previews whose DNS goes.
    let mut ledgers: Vec<Ledger> = Vec::new();
    for name in &plan.dns {
        if failed.contains_key(name) {
            continue;
        }
        let from_ns = by_name.get(name.as_str()).and_then(|n| ledger_of(n));
        let l = match from_ns {
            Some(l) => Some(l),
            None => {
                // A leftover: only if no namespace of that name came back
                // (or lost our label) since.
                if !by_name.contains_key(name.as_str()) {
                    kube_calls.fetch_add(1, Ordering::Relaxed);
                    let back = Api::<Namespace>::all(s.client.clone())
                        .get_opt(name)
                        .await
                        .map_err(PreviewError::kube(format!("reading namespace {name}")));
                    match back {
                        Ok(Some(_)) => {
                            report.notes.push(format!(
                                "{name}: a namespace of that name exists without our label; its ledger is left"
                            ));
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            failed.insert(name.clone(), e.to_string());
                            continue;
                        }
                    }
                }
                match s.ledgers.get(name).await {
                    Ok(l) => l,
                    Err(e) => {
                        failed.insert(name.clone(), e.to_string());
                        continue;
                    }
                }
            }
        };
        match l {
            Some(l) => ledgers.push(l),
            None => report.finished.push(name.clone()),
        }
    }

    // 3. DNS: each zone listed once, marked records deleted in batches.
    let mut zone_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut zone_sets: BTreeMap<String, Vec<RecordSet>> = BTreeMap::new();
    for z in ledgers
        .iter()
        .flat_map(|l| l.records.iter().map(|r| r.zone.clone()))
        .collect::<BTreeSet<_>>()
    {
        let listed = async {
            let id = s.dns.zone_id(&z).await?;
            let sets = s.dns.records(&id).await?;
            Ok::<_, PreviewError>((id, sets))
        }
        .await;
        match listed {
            Ok((id, sets)) => {
                zone_ids.insert(z.clone(), id);
                zone_sets.insert(z, sets);
            }
            Err(e) => {
                for l in ledgers
                    .iter()
                    .filter(|l| l.records.iter().any(|r| r.zone == z))
                {
                    failed.insert(l.namespace.clone(), e.to_string());
                }
            }
        }
    }
    // Per zone: (namespace, its changes).
    let mut work: BTreeMap<String, Vec<(String, Vec<Change>)>> = BTreeMap::new();
    let mut done: Vec<String> = Vec::new();
    for l in &ledgers {
        if failed.contains_key(&l.namespace) {
            continue;
        }
        let mut per_zone: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for r in &l.records {
            let Some(sets) = zone_sets.get(&r.zone) else {
                continue;
            };
            let present: Vec<RecordSet> = sets
                .iter()
                .filter(|x| x.name == r.record.name || x.name == r.owner.name)
                .cloned()
                .collect();
            match records::remove(&present, r, &l.namespace) {
                Removal::Gone => {}
                Removal::Delete(c) => per_zone.entry(r.zone.clone()).or_default().extend(c),
                Removal::NotOurs(why) => report.notes.push(format!("{}: {why}", l.namespace)),
            }
        }
        if per_zone.is_empty() {
            done.push(l.namespace.clone());
        }
        for (z, c) in per_zone {
            work.entry(z).or_default().push((l.namespace.clone(), c));
        }
    }
    let mut dns_failed: BTreeSet<String> = BTreeSet::new();
    let mut dns_ok: BTreeSet<String> = BTreeSet::new();
    for (zone, items) in &work {
        let id = &zone_ids[zone];
        let mut chunk: Vec<&(String, Vec<Change>)> = Vec::new();
        let mut size = 0;
        let mut chunks = Vec::new();
        for it in items {
            if size + it.1.len() > BATCH && !chunk.is_empty() {
                chunks.push(std::mem::take(&mut chunk));
                size = 0;
            }
            size += it.1.len();
            chunk.push(it);
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        // A batch that fails is split in halves until the failing previews
        // are alone: one bad preview costs about 2·log2(batch) calls, and
        // never holds back the others.
        let mut stack = chunks;
        while let Some(chunk) = stack.pop() {
            let all: Vec<Change> = chunk.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
            match s.dns.change(id, &all).await {
                Ok(()) => {
                    report.records_deleted += all.len();
                    dns_ok.extend(chunk.iter().map(|(n, _)| n.clone()));
                }
                Err(e) if chunk.len() == 1 => {
                    dns_failed.insert(chunk[0].0.clone());
                    failed.insert(chunk[0].0.clone(), e.to_string());
                }
                Err(_) => {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    stack.push(b.to_vec());
                    stack.push(a.to_vec());
                }
            }
        }
    }
    done.extend(dns_ok.into_iter().filter(|n| !dns_failed.contains(n)));

    // 4. Ledgers of the finished ones.
    let results: Vec<(String, Result<(), crate::state::StateError>)> = futures::stream::iter(done)
        .map(|ns| {
            let ledgers = s.ledgers.clone();
            async move {
                let r = ledgers.delete(&ns).await;
                (ns, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (ns, r) in results {
        match r {
            Ok(()) => report.finished.push(ns),
            Err(e) => {
                failed.insert(ns, e.to_string());
            }
        }
    }
    report.finished.sort();
    report.failed = failed
        .into_iter()
        .map(|(namespace, error)| Failure { namespace, error })
        .collect();
    report.kube_calls = kube_calls.load(Ordering::Relaxed);
    report.dns_calls = s.dns.calls() - dns_before;
    Ok(report)
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "{} expired, {} left over from earlier runs, {} kept{}\n",
        r.plan.delete.len(),
        r.plan.leftovers.len(),
        r.plan.kept,
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    if r.dry_run {
        for n in &r.plan.delete {
            out.push_str(&format!("  would delete {n}\n"));
        }
        return out;
    }
    out.push_str(&format!(
        "deleted {} namespaces and {} DNS records; {} previews finished, {} failed\n",
        r.namespaces_deleted,
        r.records_deleted,
        r.finished.len(),
        r.failed.len()
    ));
    for f in &r.failed {
        out.push_str(&format!("  failed {}: {}\n", f.namespace, f.error));
    }
    for n in &r.notes {
        out.push_str(&format!("  note {n}\n"));
    }
    out.push_str(&format!(
        "API calls: {} Kubernetes, {} Route53\n",
        r.kube_calls, r.dns_calls
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn seen(name: &str, expires_in_h: Option<i64>, deployed_h_ago: Option<i64>) -> Seen {
        Seen {
            name: name.into(),
            ours: true,
            terminating: false,
            expires_at: expires_in_h.map(|h| now() + chrono::Duration::hours(h)),
            last_deployed: deployed_h_ago.map(|h| now() - chrono::Duration::hours(h)),
        }
    }

    #[test]
    fn decide_cases() {
        let ttl = Duration::from_secs(72 * 3600);
        let none = BTreeSet::new();
        type Check = fn(&Plan) -> bool;
        let cases: Vec<(&str, Vec<Seen>, BTreeSet<String>, Check)> = vec![
            ("nothing: nothing", vec![], none.clone(), |p| {
                *p == Plan::default()
            }),
            (
                "live: kept",
                vec![seen("a", Some(1), None)],
                none.clone(),
                |p| p.kept == 1 && p.delete.is_empty(),
            ),
            (
                "expired: namespace and DNS",
                vec![seen("a", Some(-1), None)],
                none.clone(),
                |p| p.delete == ["a"] && p.dns == ["a"],
            ),
            (
                "expires exactly now: goes",
                vec![seen("a", Some(0), None)],
                none.clone(),
                |p| p.delete == ["a"],
            ),
            (
                "no expiry: the default TTL from the last deploy",
                vec![seen("a", None, Some(73)), seen("b", None, Some(71))],
                none.clone(),
                |p| p.delete == ["a"] && p.kept == 1,
            ),
            (
                "no dates at all: kept",
                vec![seen("a", None, None)],
                none.clone(),
                |p| p.kept == 1,
            ),
            (
                "expires-at wins over the last deploy",
                vec![seen("a", Some(5), Some(100))],
                none.clone(),
                |p| p.kept == 1,
            ),
            (
                "not ours: never",
                vec![Seen {
                    ours: false,
                    ..seen("a", Some(-5), None)
                }],
                none.clone(),
                |p| p.delete.is_empty() && p.dns.is_empty() && p.kept == 0,
            ),
            (
                "terminating: DNS only",
                vec![Seen {
                    terminating: true,
                    ..seen("a", Some(-5), None)
                }],
                none.clone(),
                |p| p.delete.is_empty() && p.dns == ["a"],
            ),
            (
                "a ledger without its namespace: DNS",
                vec![seen("a", Some(5), None)],
                BTreeSet::from(["a".to_string(), "gone".to_string()]),
                |p| p.leftovers == ["gone"] && p.dns == ["gone"] && p.kept == 1,
            ),
        ];
        for (name, s, stored, check) in cases {
            let p = decide(&s, &stored, now(), ttl);
            assert!(check(&p), "{name}: {p:?}");
        }
    }
}
