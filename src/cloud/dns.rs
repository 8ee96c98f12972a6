//! [`Dns`]: the few Route53 operations previews need, record sets as plain
//! data, and [`Route53`], the AWS SDK implementation (moto_server in tests).
//! Ownership (which TXT value marks a record as whose) is the caller's: this
//! layer only lists, looks up and applies change batches.

use aws_sdk_route53 as r53;

/// One record set, as Route53 holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordSet {
    /// Its name, lowercase, without the trailing dot.
    pub name: String,
    /// `CNAME`, `A`, `TXT`, ...
    pub kind: String,
    /// TTL (None for an alias).
    pub ttl: Option<i64>,
    /// Values (TXT values quoted, as Route53 returns them).
    pub values: Vec<String>,
    /// An alias: (hosted zone id, DNS name).
    pub alias: Option<(String, String)>,
}

/// A change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create or replace.
    Upsert(RecordSet),
    /// Delete, exactly as it is (Route53 needs its current values).
    Delete(RecordSet),
}

/// A DNS call that failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No public hosted zone of that name.
    #[error(
        "no public Route53 hosted zone named {0}: create it, or set the preview domain to one that exists"
    )]
    NoZone(String),
    /// A call failed.
    #[error("Route53 {op} ({what}): {message}")]
    Call {
        /// The operation.
        op: &'static str,
        /// What it was about.
        what: String,
        /// The error, with its code.
        message: String,
    },
}

/// Route53 as previews use it.
#[async_trait::async_trait]
pub trait Dns: Send + Sync {
    /// The id of the public hosted zone `zone`.
    async fn zone_id(&self, zone: &str) -> Result<String, DnsError>;
    /// Every record set of the zone (all pages).
    async fn records(&self, zone_id: &str) -> Result<Vec<RecordSet>, DnsError>;
    /// The record sets named `name` (every type).
    async fn lookup(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, DnsError>;
    /// Applies `changes` as one batch: all or nothing.
    async fn change(&self, zone_id: &str, changes: &[Change]) -> Result<(), DnsError>;
    /// API calls made so far.
    fn calls(&self) -> u64;
}

/// [`Dns`] through the AWS SDK.
pub struct Route53 {
    client: r53::Client,
    calls: std::sync::atomic::AtomicU64,
}

impl Route53 {
    /// Over `client`.
    pub fn new(client: r53::Client) -> Route53 {
        Route53 {
            client,
            calls: Default::default(),
        }
    }

    fn count(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn call_err<E>(op: &'static str, what: &str, e: r53::error::SdkError<E>) -> DnsError
where
    E: std::error::Error + Send + Sync + 'static,
{
    DnsError::Call {
        op,
        what: what.to_string(),
        message: r53::error::DisplayErrorContext(e).to_string(),
    }
}

fn build_err(what: &str, e: r53::error::BuildError) -> DnsError {
    DnsError::Call {
        op: "build",
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn plain(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn from_sdk(s: &r53::types::ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: plain(s.name()),
        kind: s.r#type().as_str().to_string(),
        ttl: s.ttl(),
        values: s
            .resource_records()
            .iter()
            .map(|r| r.value().to_string())
            .collect(),
        alias: s
            .alias_target()
            .map(|a| (a.hosted_zone_id().to_string(), plain(a.dns_name()))),
    }
}

fn to_sdk(r: &RecordSet) -> Result<r53::types::ResourceRecordSet, DnsError> {
    let mut set = r53::types::ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(r53::types::RrType::from(r.kind.as_str()));
    if let Some((zone, dns)) = &r.alias {
        set = set.alias_target(
            r53::types::AliasTarget::builder()
                .hosted_zone_id(zone)
                .dns_name(dns)
                .evaluate_target_health(false)
                .build()
                .map_err(|e| build_err(&r.name, e))?,
        );
    } else {
        set = set.set_ttl(r.ttl);
        for v in &r.values {
            set = set.resource_records(
                r53::types::ResourceRecord::builder()
                    .value(v)
                    .build()
                    .map_err(|e| build_err(&r.name, e))?,
            );
        }
    }
    set.build().map_err(|e| build_err(&r.name, e))
}

#[async_trait::async_trait]
impl Dns for Route53 {
    async fn zone_id(&self, zone: &str) -> Result<String, DnsError> {
        self.count();
        let out = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(zone)
            .send()
            .await
            .map_err(|e| call_err("ListHostedZonesByName", zone, e))?;
        let want = plain(zone);
        out.hosted_zones()
            .iter()
            .find(|h| plain(h.name()) == want && !h.config().is_some_and(|c| c.private_zone()))
            .map(|h| h.id().trim_start_matches("/hostedzone/").to_string())
            .ok_or(DnsError::NoZone(want))
    }

    async fn records(&self, zone_id: &str) -> Result<Vec<RecordSet>, DnsError> {
        let mut out = Vec::new();
        let mut next: Option<(String, r53::types::RrType, Option<String>)> = None;
        loop {
            self.count();
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .max_items(300);
            if let Some((name, ty, id)) = next.take() {
                req = req
                    .start_record_name(name)
                    .start_record_type(ty)
                    .set_start_record_identifier(id);
            }
            let page = req
                .send()
                .await
                .map_err(|e| call_err("ListResourceRecordSets", zone_id, e))?;
            out.extend(page.resource_record_sets().iter().map(from_sdk));
            match (
                page.is_truncated(),
                page.next_record_name(),
                page.next_record_type(),
            ) {
                (true, Some(n), Some(t)) => {
                    next = Some((
                        n.to_string(),
                        t.clone(),
                        page.next_record_identifier().map(str::to_string),
                    ))
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn lookup(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, DnsError> {
        self.count();
        let page = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(name)
            .max_items(10)
            .send()
            .await
            .map_err(|e| call_err("ListResourceRecordSets", name, e))?;
        let want = plain(name);
        Ok(page
            .resource_record_sets()
            .iter()
            .map(from_sdk)
            .filter(|s| s.name == want)
            .collect())
    }

    async fn change(&self, zone_id: &str, changes: &[Change]) -> Result<(), DnsError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = r53::types::ChangeBatch::builder();
        for c in changes {
            let (action, set) = match c {
                Change::Upsert(s) => (r53::types::ChangeAction::Upsert, s),
                Change::Delete(s) => (r53::types::ChangeAction::Delete, s),
            };
            batch = batch.changes(
                r53::types::Change::builder()
                    .action(action)
                    .resource_record_set(to_sdk(set)?)
                    .build()
                    .map_err(|e| build_err(&set.name, e))?,
            );
        }
        let what = match changes.first() {
            Some(Change::Upsert(s) | Change::Delete(s)) if changes.len() == 1 => s.name.clone(),
            Some(Change::Upsert(s) | Change::Delete(s)) => {
                format!("{} and {} more", s.name, changes.len() - 1)
            }
            None => String::new(),
        };
        self.count();
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch.build().map_err(|e| build_err("ChangeBatch", e))?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call_err("ChangeResourceRecordSets", &what, e))
    }

    fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }
}
