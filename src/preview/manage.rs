//! `preview list` and `preview down`, and the removal both `down` and gc
//! use: the namespace (ours, by uid), then each DNS record of the ledger
//! whose TXT mark names the preview, then the ledger.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};

use super::ledger::{self, Ledger};
use super::records::{self, Removal};
use super::up::{is_ours, ledger_of};
use super::{PreviewError, Shared};

/// One row of `preview list`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The repo.
    pub repo: String,
    /// The branch.
    pub branch: String,
    /// The namespace.
    pub namespace: String,
    /// Its URLs.
    pub urls: Vec<String>,
    /// First deploy.
    pub created: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// `Active`, `Expired` or `Terminating`.
    pub status: String,
}

/// A row for a preview namespace.
pub fn row(ns: &Namespace, scheme: &str, now: DateTime<Utc>) -> Row {
    let a = ns.metadata.annotations.clone().unwrap_or_default();
    let l = ledger_of(ns);
    let time = |k: &str| {
        a.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let expires_at = time(ledger::EXPIRES_AT);
    let status = if ns.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if expires_at.is_some_and(|e| e <= now) {
        "Expired"
    } else {
        "Active"
    };
    Row {
        repo: a.get(ledger::REPO).cloned().unwrap_or_default(),
        branch: a.get(ledger::BRANCH).cloned().unwrap_or_default(),
        namespace: ns.metadata.name.clone().unwrap_or_default(),
        urls: l
            .map(|l| {
                l.records
                    .iter()
                    .map(|r| format!("{scheme}://{}/", r.record.name))
                    .collect()
            })
            .unwrap_or_default(),
        created: time(ledger::CREATED),
        expires_at,
        status: status.into(),
    }
}

/// Every preview namespace (one paginated, label-selected list).
pub async fn preview_namespaces(client: &kube::Client) -> Result<Vec<Namespace>, PreviewError> {
    let api = Api::<Namespace>::all(client.clone());
    let mut lp = ListParams::default()
        .labels(&format!(
            "{}={}",
            ledger::MANAGED_BY,
            ledger::MANAGED_BY_VALUE
        ))
        .limit(500);
    let mut out = Vec::new();
    loop {
        let page = api
            .list(&lp)
            .await
            .map_err(PreviewError::kube("listing preview namespaces".into()))?;
        out.extend(page.items.into_iter().filter(is_ours));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    Ok(out)
}

/// The rows of `preview list`, optionally of one repo.
pub async fn list_with(
    client: &kube::Client,
    repo: Option<&str>,
    scheme: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Row>, PreviewError> {
    let mut rows: Vec<Row> = preview_namespaces(client)
        .await?
        .iter()
        .map(|n| row(n, scheme, now))
        .filter(|r| repo.is_none_or(|want| r.repo == want))
        .collect();
    rows.sort_by(|a, b| (&a.repo, &a.branch).cmp(&(&b.repo, &b.branch)));
    Ok(rows)
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    let (sign, s) = if s < 0 { ("-", -s) } else { ("", s) };
    if s >= 86_400 {
        format!("{sign}{}d{}h", s / 86_400, (s % 86_400) / 3600)
    } else if s >= 3600 {
        format!("{sign}{}h{}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{sign}{}m", s / 60)
    }
}

/// The table of `preview list`.
pub fn table(rows: &[Row], now: DateTime<Utc>) -> String {
    let mut cells = vec![[
        "BRANCH".to_string(),
        "NAMESPACE".into(),
        "URL".into(),
        "AGE".into(),
        "EXPIRES IN".into(),
        "STATUS".into(),
    ]];
    for r in rows {
        cells.push([
            r.branch.escape_default().to_string(),
            r.namespace.clone(),
            r.urls.join(" "),
            r.created
                .map(|c| human(now - c))
                .unwrap_or_else(|| "-".into()),
            r.expires_at
                .map(|e| human(e - now))
                .unwrap_or_else(|| "-".into()),
            r.status.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for c in &cells {
        let line: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The DNS side of removing a preview: every ledger record whose mark is
/// the preview's is deleted (each name in one batch); names that are gone
/// count as done; names that are not ours are left and said. Returns the
/// notes.
pub async fn remove_records(s: &Shared, l: &Ledger) -> Result<Vec<String>, PreviewError> {
    let mut notes = Vec::new();
    for r in &l.records {
        let zone_id = s.dns.zone_id(&r.zone).await?;
        let mut present = s.dns.lookup(&zone_id, &r.record.name).await?;
        present.extend(s.dns.lookup(&zone_id, &r.owner.name).await?);
        match records::remove(&present, r, &l.namespace) {
            Removal::Gone => {}
            Removal::Delete(changes) => s.dns.change(&zone_id, &changes).await?,
            Removal::NotOurs(why) => notes.push(why),
        }
    }
    Ok(notes)
}

/// Deletes a preview namespace, only if it carries our label, and only
/// the very object that was read (uid precondition). Gone is done.
pub async fn delete_namespace(client: &kube::Client, ns: &Namespace) -> Result<(), PreviewError> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    if !is_ours(ns) {
        return Err(PreviewError::Input(format!(
            "namespace {name} does not carry {}={}; not deleting it",
            ledger::MANAGED_BY,
            ledger::MANAGED_BY_VALUE
        )));
    }
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: ns.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match Api::<Namespace>::all(client.clone())
        .delete(&name, &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(PreviewError::kube(format!("deleting namespace {name}"))(e)),
    }
}

/// What `down` removed.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Down {
    /// The namespace.
    pub namespace: String,
    /// Whether the namespace was there.
    pub namespace_deleted: bool,
    /// DNS names removed (or already gone).
    pub records: Vec<String>,
    /// Names left alone, and why.
    pub notes: Vec<String>,
}

/// Removes the preview in namespace `ns`: the namespace, its DNS records,
/// its ledger. Running it again after a failure finishes the job.
pub async fn down(s: &Shared, ns: &str) -> Result<Down, PreviewError> {
    let existing = Api::<Namespace>::all(s.client.clone())
        .get_opt(ns)
        .await
        .map_err(PreviewError::kube(format!("reading namespace {ns}")))?;
    let stored = s.ledgers.get(ns).await?;
    let ledger = match &existing {
        Some(n) => {
            if !is_ours(n) {
                return Err(PreviewError::Input(format!(
                    "namespace {ns} is not a preview (no {}={} label); not touching it",
                    ledger::MANAGED_BY,
                    ledger::MANAGED_BY_VALUE
                )));
            }
            ledger_of(n).or(stored)
        }
        None => stored,
    };
    if existing.is_none() && ledger.is_none() {
        return Err(PreviewError::Input(format!("no preview in namespace {ns}")));
    }
    if let Some(n) = &existing {
        delete_namespace(&s.client, n).await?;
    }
    let mut out = Down {
        namespace: ns.to_string(),
        namespace_deleted: existing.is_some(),
        records: vec![],
        notes: vec![],
    };
    if let Some(l) = ledger {
        out.notes = remove_records(s, &l).await?;
        out.records = l.records.iter().map(|r| r.record.name.clone()).collect();
    }
    s.ledgers.delete(ns).await?;
    Ok(out)
}
