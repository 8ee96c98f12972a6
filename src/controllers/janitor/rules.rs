//! What the janitor may delete: each rule switched on or off and tuned by
//! flags, and by a rules file (YAML) with per-namespace overrides. The file
//! is read strictly: an unknown key or a bad value is an error at its line.
//!
//! ```yaml
//! replicasets: { enabled: true, minAge: 7d, keepRevisions: 3, orphans: false }
//! jobs: { enabled: true, ttl: 24h, includeCronJobJobs: false }
//! pods: { enabled: true, ttl: 1h, allFailed: false }
//! ttl: { enabled: true, kinds: [configmaps, deployments.apps] }
//! namespaces:
//!   kube-system: { replicasets: { enabled: false } }
//!   ci: { jobs: { ttl: 1h } }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// ReplicaSets of Deployments, scaled to zero and superseded.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetRule {
    /// On or off.
    pub enabled: bool,
    /// Only older than this.
    pub min_age: Duration,
    /// Keep the Deployment's newest revisions.
    pub keep_revisions: u32,
    /// ReplicaSets without an owner too.
    pub orphans: bool,
}

/// Finished Jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRule {
    /// On or off.
    pub enabled: bool,
    /// Finished longer ago than this.
    pub ttl: Duration,
    /// Jobs of CronJobs too (otherwise left to their history limits).
    pub include_cron_job_jobs: bool,
}

/// Failed pods.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRule {
    /// On or off.
    pub enabled: bool,
    /// Failed longer ago than this.
    pub ttl: Duration,
    /// Every Failed pod, not only evicted ones.
    pub all_failed: bool,
}

/// TTL annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct TtlRule {
    /// On or off.
    pub enabled: bool,
    /// The kinds whose TTL annotations count (namespaces always do).
    pub kinds: Vec<String>,
}

/// The rules for one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// ReplicaSets.
    pub replicasets: ReplicaSetRule,
    /// Jobs.
    pub jobs: JobRule,
    /// Pods.
    pub pods: PodRule,
    /// TTL annotations.
    pub ttl: TtlRule,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            replicasets: ReplicaSetRule {
                enabled: true,
                min_age: Duration::from_secs(7 * 86400),
                keep_revisions: 3,
                orphans: false,
            },
            jobs: JobRule {
                enabled: true,
                ttl: Duration::from_secs(86400),
                include_cron_job_jobs: false,
            },
            pods: PodRule {
                enabled: true,
                ttl: Duration::from_secs(3600),
                all_failed: false,
            },
            ttl: TtlRule {
                enabled: true,
                kinds: vec![],
            },
        }
    }
}

/// The rules everywhere, and where a namespace differs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    /// Every namespace without an override.
    pub default: Rules,
    /// Per namespace.
    pub namespaces: BTreeMap<String, Rules>,
}

impl RuleSet {
    /// The rules of `namespace` (`None`: cluster-scoped objects).
    pub fn for_namespace(&self, namespace: Option<&str>) -> &Rules {
        namespace
            .and_then(|n| self.namespaces.get(n))
            .unwrap_or(&self.default)
    }
}

// The file's shape: every field optional, so a file (or a namespace) says
// only what it changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplicaSetPatch {
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    min_age: Option<Duration>,
    keep_revisions: Option<u32>,
    orphans: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JobPatch {
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    ttl: Option<Duration>,
    #[serde(rename = "includeCronJobJobs")]
    include_cron_job_jobs: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodPatch {
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    ttl: Option<Duration>,
    all_failed: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TtlPatch {
    enabled: Option<bool>,
    kinds: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RulesPatch {
    #[serde(default)]
    replicasets: Option<ReplicaSetPatch>,
    #[serde(default)]
    jobs: Option<JobPatch>,
    #[serde(default)]
    pods: Option<PodPatch>,
    #[serde(default)]
    ttl: Option<TtlPatch>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FilePatch {
    #[serde(default)]
    replicasets: Option<ReplicaSetPatch>,
    #[serde(default)]
    jobs: Option<JobPatch>,
    #[serde(default)]
    pods: Option<PodPatch>,
    #[serde(default)]
    ttl: Option<TtlPatch>,
    #[serde(default)]
    namespaces: BTreeMap<String, RulesPatch>,
}

impl Rules {
    fn apply(&mut self, p: &RulesPatch) {
        if let Some(r) = &p.replicasets {
            set(&mut self.replicasets.enabled, r.enabled);
            set(&mut self.replicasets.min_age, r.min_age);
            set(&mut self.replicasets.keep_revisions, r.keep_revisions);
            set(&mut self.replicasets.orphans, r.orphans);
        }
        if let Some(j) = &p.jobs {
            set(&mut self.jobs.enabled, j.enabled);
            set(&mut self.jobs.ttl, j.ttl);
            set(
                &mut self.jobs.include_cron_job_jobs,
                j.include_cron_job_jobs,
            );
        }
        if let Some(q) = &p.pods {
            set(&mut self.pods.enabled, q.enabled);
            set(&mut self.pods.ttl, q.ttl);
            set(&mut self.pods.all_failed, q.all_failed);
        }
        if let Some(t) = &p.ttl {
            set(&mut self.ttl.enabled, t.enabled);
            set(&mut self.ttl.kinds, t.kinds.clone());
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim()).map(Some).map_err(|e| {
        serde::de::Error::custom(format!("\"{s}\" is not a duration (like 36h or 7d): {e}"))
    })
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// A rules file that could not be read, at its line.
pub type RulesError = crate::spec::location::FileError;

/// Applies the rules file `text` (named `file` in errors) over `base` (the
/// flags): its top level changes every namespace, and `namespaces.<ns>`
/// changes one, on top of that.
pub fn parse_file(text: &str, file: &str, base: Rules) -> Result<RuleSet, RulesError> {
    let (patch, _): (FilePatch, _) = crate::spec::location::from_yaml_strict(text, file)?;
    let mut default = base;
    default.apply(&RulesPatch {
        replicasets: patch.replicasets,
        jobs: patch.jobs,
        pods: patch.pods,
        ttl: patch.ttl,
    });
    let namespaces = patch
        .namespaces
        .iter()
        .map(|(ns, p)| {
            let mut r = default.clone();
            r.apply(p);
            (ns.clone(), r)
        })
        .collect();
    Ok(RuleSet {
        default,
        namespaces,
    })
}
