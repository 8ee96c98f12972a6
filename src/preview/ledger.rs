//! What a preview owns, written down twice: as an annotation on its
//! namespace, and as `<namespace>.json` in the state store (under
//! `<prefix>/previews/`). The namespace's copy is what `list` and `gc`
//! read; the state store's outlives the namespace, so that DNS records whose
//! deletion failed after the namespace went are still found and retried.
//!
//! Also the label and annotation keys, and the TXT value that marks a DNS
//! record as a preview's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cloud::dns::RecordSet;
use crate::state::{StateError, StateStore};

/// The label every preview namespace carries (with [`MANAGED_BY_VALUE`]).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The managed-by value of previews.
pub const MANAGED_BY_VALUE: &str = "clusterctl-preview";
/// Label: a hash of the repo (label values cannot hold every repo name).
pub const REPO_LABEL: &str = "preview.clusterctl.io/repo";
/// Annotation prefix.
pub const PREFIX: &str = "preview.clusterctl.io/";
/// Annotation: the repo, exactly.
pub const REPO: &str = "preview.clusterctl.io/repo";
/// Annotation: the branch, exactly.
pub const BRANCH: &str = "preview.clusterctl.io/branch";
/// Annotation: who deployed it last.
pub const OWNER: &str = "preview.clusterctl.io/owner";
/// Annotation: when it was first deployed (RFC 3339).
pub const CREATED: &str = "preview.clusterctl.io/created";
/// Annotation: when it was last deployed.
pub const LAST_DEPLOYED: &str = "preview.clusterctl.io/last-deployed";
/// Annotation: when gc may delete it.
pub const EXPIRES_AT: &str = "preview.clusterctl.io/expires-at";
/// Annotation: the ledger (JSON).
pub const LEDGER: &str = "preview.clusterctl.io/ledger";
/// The field manager of every write.
pub const FIELD_MANAGER: &str = "clusterctl-preview";

/// The label value for `repo`: 16 hex digits of its SHA-256.
pub fn repo_label(repo: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(repo.as_bytes()))[..16].to_string()
}

/// The name of the TXT record that marks `host` (a CNAME cannot share its
/// name with a TXT record).
pub fn owner_name(host: &str) -> String {
    format!("_clusterctl-owner.{host}")
}

/// The TXT value that marks a record as the preview in `namespace`'s
/// (quoted, as Route53 holds TXT values).
pub fn owner_value(namespace: &str) -> String {
    format!("\"heritage=clusterctl,clusterctl/preview={namespace}\"")
}

/// One DNS name a preview owns, with its TXT mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRecord {
    /// The service it serves.
    pub service: String,
    /// The zone (the preview domain).
    pub zone: String,
    /// The record (CNAME or alias A) as it was written.
    pub record: RecordSet,
    /// The TXT record that marks it.
    pub owner: RecordSet,
}

/// A preview's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// Its namespace.
    pub namespace: String,
    /// The repo.
    pub repo: String,
    /// The branch.
    pub branch: String,
    /// Who deployed it last.
    pub owner: String,
    /// First deploy.
    pub created: DateTime<Utc>,
    /// Last deploy.
    pub last_deployed: DateTime<Utc>,
    /// When gc may delete it.
    pub expires_at: DateTime<Utc>,
    /// Its DNS names.
    #[serde(default)]
    pub records: Vec<LedgerRecord>,
}

impl Ledger {
    /// The ledger as an annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A ledger from an annotation value.
    pub fn from_annotation(s: &str) -> Result<Ledger, String> {
        serde_json::from_str(s).map_err(|e| format!("unreadable ledger annotation: {e}"))
    }
}

/// The ledgers in the state store.
#[derive(Clone)]
pub struct LedgerStore {
    store: StateStore,
}

/// `s3://bucket/prefix` → (bucket, prefix).
pub fn parse_state(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("state store `{url}` must be s3://bucket[/prefix]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("state store `{url}` names no bucket"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl LedgerStore {
    /// The ledgers under `<prefix>/previews/` of `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> LedgerStore {
        let p = if prefix.is_empty() {
            "previews".to_string()
        } else {
            format!("{prefix}/previews")
        };
        LedgerStore {
            store: StateStore::new(s3, bucket, &p),
        }
    }

    /// Over an existing store handle (its prefix is the previews folder).
    pub fn from_store(store: StateStore) -> LedgerStore {
        LedgerStore { store }
    }

    fn name(namespace: &str) -> String {
        format!("{namespace}.json")
    }

    /// Writes `l`.
    pub async fn put(&self, l: &Ledger) -> Result<(), StateError> {
        let body = serde_json::to_vec_pretty(l).unwrap_or_default();
        self.store.put(&Self::name(&l.namespace), body).await
    }

    /// Reads the ledger of `namespace`.
    pub async fn get(&self, namespace: &str) -> Result<Option<Ledger>, StateError> {
        let Some((body, _)) = self.store.get(&Self::name(namespace)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&body).ok())
    }

    /// Deletes the ledger of `namespace` (gone already is fine).
    pub async fn delete(&self, namespace: &str) -> Result<(), StateError> {
        self.store.delete(&Self::name(namespace)).await
    }

    /// The namespaces that have a ledger.
    pub async fn namespaces(&self) -> Result<Vec<String>, StateError> {
        Ok(self
            .store
            .list()
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_suffix(".json").map(str::to_string))
            .filter(|k| !k.contains('/'))
            .collect())
    }

    /// Where the ledgers are, `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.store.bucket, self.store.prefix)
    }
}
