//! The janitor's decision: a pure function of what was listed, the rules
//! and the time. It returns what to delete (each with its reason, uid and
//! the owner its Event goes to) and how many of each kind it keeps.
//! Nothing a rule does not select is ever a candidate.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::rules::RuleSet;

/// The TTL annotation: `36h`, `7d`.
pub const TTL: &str = "janitor.clusterctl.io/ttl";
/// The expiry annotation: an RFC 3339 time.
pub const EXPIRES: &str = "janitor.clusterctl.io/expires";
/// A redeploy's time (RFC 3339): a TTL counts from it when it is newer than
/// the creation.
pub const LAST_DEPLOYED: &str = "janitor.clusterctl.io/last-deployed";
/// The Deployment controller's revision annotation.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Namespaces never deleted, whatever their annotations say.
pub const PROTECTED_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// An object listed only for its metadata (a TTL kind or a namespace).
#[derive(Debug, Clone)]
pub struct Annotated {
    /// Its kind (`ConfigMap`, `Namespace`).
    pub kind: String,
    /// Its metadata.
    pub metadata: ObjectMeta,
}

/// What the janitor listed.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every Deployment.
    pub deployments: Vec<Deployment>,
    /// Every ReplicaSet.
    pub replicasets: Vec<ReplicaSet>,
    /// Every Job.
    pub jobs: Vec<Job>,
    /// The Failed pods.
    pub pods: Vec<Pod>,
    /// Objects of the TTL kinds, and namespaces.
    pub annotated: Vec<Annotated>,
}

/// One object to delete.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Kind.
    pub kind: String,
    /// Namespace (none for a Namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The uid it had when listed: the delete's precondition.
    pub uid: String,
    /// Seconds since it was created.
    pub age_seconds: i64,
    /// Why, in words.
    pub reason: String,
    /// Where its Event goes: its owner, or its namespace.
    #[serde(skip)]
    pub event_on: ObjectReference,
}

/// The decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Selection {
    /// What to delete, by kind then namespace and name.
    pub delete: Vec<Candidate>,
    /// Objects looked at and kept, per kind.
    pub kept: BTreeMap<String, usize>,
    /// Annotations that could not be read (kept, and said).
    pub problems: Vec<String>,
}

fn age(meta: &ObjectMeta, now: Timestamp) -> SignedDuration {
    meta.creation_timestamp
        .as_ref()
        .map_or(SignedDuration::ZERO, |t| now.duration_since(t.0))
}

fn older(d: SignedDuration, than: Duration) -> bool {
    SignedDuration::try_from(than).is_ok_and(|t| d >= t)
}

fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

fn owner_ref(o: &OwnerReference, namespace: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(o.api_version.clone()),
        kind: Some(o.kind.clone()),
        name: Some(o.name.clone()),
        namespace: namespace.map(str::to_string),
        uid: Some(o.uid.clone()),
        ..Default::default()
    }
}

/// The Event of an object without an owner goes to its namespace.
fn namespace_ref(namespace: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Namespace".into()),
        name: namespace.map(str::to_string),
        ..Default::default()
    }
}

fn revision(meta: &ObjectMeta) -> Option<u64> {
    meta.annotations.as_ref()?.get(REVISION)?.parse().ok()
}

/// A pod template without the hash label the Deployment controller adds,
/// for "is this the Deployment's current template".
fn template_key(t: Option<&PodTemplateSpec>) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(|l| l.as_object_mut())
    {
        labels.remove("pod-template-hash");
    }
    v
}

fn candidate(
    kind: &str,
    meta: &ObjectMeta,
    now: Timestamp,
    reason: String,
    event_on: ObjectReference,
) -> Candidate {
    Candidate {
        kind: kind.to_string(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        age_seconds: age(meta, now).as_secs(),
        reason,
        event_on,
    }
}

fn replicasets(inv: &Inventory, rules: &RuleSet, now: Timestamp, out: &mut Selection) {
    let deployments: HashMap<&str, &Deployment> = inv
        .deployments
        .iter()
        .filter_map(|d| Some((d.metadata.uid.as_deref()?, d)))
        .collect();
    // The ReplicaSets of each Deployment, newest revision first.
    let mut by_owner: HashMap<&str, Vec<&ReplicaSet>> = HashMap::new();
    for rs in &inv.replicasets {
        if let Some(o) = controller(&rs.metadata).filter(|o| o.kind == "Deployment") {
            by_owner.entry(o.uid.as_str()).or_default().push(rs);
        }
    }
    for list in by_owner.values_mut() {
        list.sort_by_key(|rs| {
            std::cmp::Reverse((
                revision(&rs.metadata),
                rs.metadata.creation_timestamp.clone(),
            ))
        });
    }
    let mut kept = 0;
    for rs in &inv.replicasets {
        let ns = rs.metadata.namespace.as_deref();
        let rule = &rules.for_namespace(ns).replicasets;
        let empty = rs.spec.as_ref().and_then(|s| s.replicas) == Some(0)
            && rs.status.as_ref().is_none_or(|s| s.replicas == 0);
        let old = older(age(&rs.metadata, now), rule.min_age);
        if !rule.enabled || !empty || !old {
            kept += 1;
            continue;
        }
        let owner = controller(&rs.metadata);
        let reason = match owner {
            None if rule.orphans => Some(format!(
                "an orphan ReplicaSet with no replicas, {} old",
                human(age(&rs.metadata, now))
            )),
            None => None,
            Some(o) if o.kind != "Deployment" => None,
            Some(o) => {
                // The owner must be listed: a ReplicaSet whose Deployment
                // is gone is the garbage collector's.
                deployments.get(o.uid.as_str()).and_then(|d| {
                    let current_rev = revision(&d.metadata);
                    let is_current = (current_rev.is_some() && current_rev == revision(&rs.metadata))
                        || template_key(d.spec.as_ref().map(|s| &s.template))
                            == template_key(rs.spec.as_ref().and_then(|s| s.template.as_ref()));
                    let newest = by_owner
                        .get(o.uid.as_str())
                        .map(|l| {
                            l.iter()
                                .take(rule.keep_revisions as usize)
                                .any(|r| r.metadata.uid == rs.metadata.uid)
                        })
                        .unwrap_or(true);
                    (!is_current && !newest).then(|| {
                        format!(
                            "revision {} of Deployment {}, not among its newest {}, no replicas, {} old",
                            revision(&rs.metadata).map_or("?".into(), |r| r.to_string()),
                            o.name,
                            rule.keep_revisions,
                            human(age(&rs.metadata, now))
                        )
                    })
                })
            }
        };
        match reason {
            Some(reason) => {
                let on = owner.map_or_else(|| namespace_ref(ns), |o| owner_ref(o, ns));
                out.delete
                    .push(candidate("ReplicaSet", &rs.metadata, now, reason, on));
            }
            None => kept += 1,
        }
    }
    out.kept.insert("ReplicaSet".into(), kept);
}

/// When a Job finished (Complete or Failed), if it has.
fn finished(job: &Job) -> Option<(&'static str, Timestamp)> {
    let status = job.status.as_ref()?;
    let cond = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let kind = if cond.type_ == "Complete" {
        "completed"
    } else {
        "failed"
    };
    let at = status
        .completion_time
        .as_ref()
        .or(cond.last_transition_time.as_ref())
        .map(|t| t.0)
        .or(job.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    Some((kind, at))
}

fn jobs(inv: &Inventory, rules: &RuleSet, now: Timestamp, out: &mut Selection) {
    let mut kept = 0;
    for job in &inv.jobs {
        let ns = job.metadata.namespace.as_deref();
        let rule = &rules.for_namespace(ns).jobs;
        let owner = controller(&job.metadata);
        let of_cronjob = owner.is_some_and(|o| o.kind == "CronJob");
        let left_to_k8s = job
            .spec
            .as_ref()
            .is_some_and(|s| s.ttl_seconds_after_finished.is_some());
        let done = finished(job).filter(|(_, at)| older(now.duration_since(*at), rule.ttl));
        match done {
            Some((how, at))
                if rule.enabled && !left_to_k8s && (!of_cronjob || rule.include_cron_job_jobs) =>
            {
                let reason = format!("{how} {} ago", human(now.duration_since(at)));
                let on = owner.map_or_else(|| namespace_ref(ns), |o| owner_ref(o, ns));
                out.delete
                    .push(candidate("Job", &job.metadata, now, reason, on));
            }
            _ => kept += 1,
        }
    }
    out.kept.insert("Job".into(), kept);
}

fn pods(inv: &Inventory, rules: &RuleSet, now: Timestamp, out: &mut Selection) {
    let mut kept = 0;
    for pod in &inv.pods {
        let ns = pod.metadata.namespace.as_deref();
        let rule = &rules.for_namespace(ns).pods;
        let status = pod.status.as_ref();
        let failed = status.and_then(|s| s.phase.as_deref()) == Some("Failed");
        let evicted = status.and_then(|s| s.reason.as_deref()) == Some("Evicted");
        // Since it failed: its newest condition, else its creation.
        let since = status
            .and_then(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
                    .max()
            })
            .or(pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let old = older(now.duration_since(since), rule.ttl);
        if rule.enabled && failed && (evicted || rule.all_failed) && old {
            let reason = format!(
                "{} {} ago",
                if evicted { "evicted" } else { "failed" },
                human(now.duration_since(since))
            );
            let on =
                controller(&pod.metadata).map_or_else(|| namespace_ref(ns), |o| owner_ref(o, ns));
            out.delete
                .push(candidate("Pod", &pod.metadata, now, reason, on));
        } else {
            kept += 1;
        }
    }
    out.kept.insert("Pod".into(), kept);
}

/// When an object's TTL annotations say it expires (`Err`: they cannot be
/// read), or `None` without them.
pub fn expiry(meta: &ObjectMeta) -> Result<Option<Timestamp>, String> {
    let Some(a) = meta.annotations.as_ref() else {
        return Ok(None);
    };
    let created = meta.creation_timestamp.as_ref().map(|t| t.0);
    let deployed = match a.get(LAST_DEPLOYED) {
        Some(v) => Some(
            v.parse::<Timestamp>()
                .map_err(|e| format!("{LAST_DEPLOYED}: \"{v}\" is not an RFC 3339 time: {e}"))?,
        ),
        None => None,
    };
    let from = created.max(deployed);
    let by_ttl = match a.get(TTL) {
        Some(v) => {
            let d = humantime::parse_duration(v.trim())
                .map_err(|e| format!("{TTL}: \"{v}\" is not a duration (like 36h or 7d): {e}"))?;
            let d = SignedDuration::try_from(d).map_err(|e| format!("{TTL}: {e}"))?;
            from.and_then(|f| f.checked_add(d).ok())
        }
        None => None,
    };
    let by_date = match a.get(EXPIRES) {
        Some(v) => Some(
            v.parse::<Timestamp>()
                .map_err(|e| format!("{EXPIRES}: \"{v}\" is not an RFC 3339 time: {e}"))?,
        ),
        None => None,
    };
    Ok(match (by_ttl, by_date) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

fn annotated(inv: &Inventory, rules: &RuleSet, now: Timestamp, out: &mut Selection) {
    for o in &inv.annotated {
        let ns = o.metadata.namespace.as_deref();
        let scope = if o.kind == "Namespace" {
            o.metadata.name.as_deref()
        } else {
            ns
        };
        let rule = &rules.for_namespace(scope).ttl;
        let protected = o.kind == "Namespace"
            && PROTECTED_NAMESPACES.contains(&o.metadata.name.as_deref().unwrap_or_default());
        let kept = out.kept.entry(o.kind.clone()).or_default();
        match expiry(&o.metadata) {
            Err(why) => {
                *kept += 1;
                out.problems.push(format!(
                    "{} {}{}: {why}",
                    o.kind,
                    ns.map(|n| format!("{n}/")).unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                ));
            }
            Ok(Some(at)) if rule.enabled && !protected && at <= now => {
                let reason = format!("its TTL expired {} ago", human(now.duration_since(at)));
                let on = if o.kind == "Namespace" {
                    namespace_ref(o.metadata.name.as_deref())
                } else {
                    controller(&o.metadata).map_or_else(|| namespace_ref(ns), |r| owner_ref(r, ns))
                };
                out.delete
                    .push(candidate(&o.kind, &o.metadata, now, reason, on));
            }
            Ok(_) => *kept += 1,
        }
    }
}

/// Decides what to delete.
pub fn select(inv: &Inventory, rules: &RuleSet, now: Timestamp) -> Selection {
    let mut out = Selection::default();
    replicasets(inv, rules, now, &mut out);
    jobs(inv, rules, now, &mut out);
    pods(inv, rules, now, &mut out);
    annotated(inv, rules, now, &mut out);
    out.delete
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    out
}
