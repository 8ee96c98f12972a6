//! DNS ownership, decided without I/O: which changes write a preview's
//! record and its TXT mark, and which delete them. A name is only ever
//! written or deleted when its TXT mark names the same preview (or, for a
//! first write, when the name is free).

use crate::cloud::dns::{Change, RecordSet};

use super::ledger::{LedgerRecord, owner_name, owner_value};

/// Where a preview's DNS name points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A CNAME to this DNS name.
    Cname(String),
    /// An alias A record: (the load balancer's hosted zone, its DNS name).
    Alias(String, String),
}

/// The record and TXT mark of `host` for the preview in `namespace`.
pub fn wanted(
    service: &str,
    zone: &str,
    host: &str,
    target: &Target,
    ttl: i64,
    namespace: &str,
) -> LedgerRecord {
    let record = match target {
        Target::Cname(to) => RecordSet {
            name: host.to_string(),
            kind: "CNAME".into(),
            ttl: Some(ttl),
            values: vec![to.trim_end_matches('.').to_string()],
            alias: None,
        },
        Target::Alias(zone_id, dns) => RecordSet {
            name: host.to_string(),
            kind: "A".into(),
            ttl: None,
            values: vec![],
            alias: Some((
                zone_id.clone(),
                dns.trim_end_matches('.').to_ascii_lowercase(),
            )),
        },
    };
    LedgerRecord {
        service: service.to_string(),
        zone: zone.to_string(),
        record,
        owner: RecordSet {
            name: owner_name(host),
            kind: "TXT".into(),
            ttl: Some(300),
            values: vec![owner_value(namespace)],
            alias: None,
        },
    }
}

fn address_records<'a>(present: &'a [RecordSet], name: &str) -> Vec<&'a RecordSet> {
    present
        .iter()
        .filter(|r| r.name == name && matches!(r.kind.as_str(), "CNAME" | "A" | "AAAA"))
        .collect()
}

fn mark<'a>(present: &'a [RecordSet], name: &str) -> Option<&'a RecordSet> {
    present.iter().find(|r| r.name == name && r.kind == "TXT")
}

/// The changes that write `want` for the preview in `namespace`, given
/// the record sets `present` at its two names; an error when the name is
/// held by something that is not this preview.
pub fn upsert(
    present: &[RecordSet],
    want: &LedgerRecord,
    namespace: &str,
) -> Result<Vec<Change>, String> {
    let ours = owner_value(namespace);
    let owned = match mark(present, &want.owner.name) {
        Some(t) if t.values.contains(&ours) => true,
        Some(t) => {
            return Err(format!(
                "{} is marked as another owner's ({}); not touching it",
                want.record.name,
                t.values.join(" ")
            ));
        }
        None => false,
    };
    let mut changes = Vec::new();
    for r in address_records(present, &want.record.name) {
        if !owned {
            return Err(format!(
                "{} already exists ({} record) without this preview's TXT mark; not touching it",
                want.record.name, r.kind
            ));
        }
        // Ours, of another type (CNAME → alias): replaced in the same batch.
        if r.kind != want.record.kind {
            changes.push(Change::Delete(r.clone()));
        }
    }
    changes.push(Change::Upsert(want.owner.clone()));
    changes.push(Change::Upsert(want.record.clone()));
    Ok(changes)
}

/// What deleting a ledger record takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Nothing of it is left.
    Gone,
    /// These deletes (one batch: the TXT mark and what it marks).
    Delete(Vec<Change>),
    /// The name is marked as someone else's, or holds a record without
    /// our mark: left alone.
    NotOurs(String),
}

/// How to delete `rec` of the preview in `namespace`, given the record
/// sets `present` at its names (exactly as they are now: Route53 deletes
/// need the current values).
pub fn remove(present: &[RecordSet], rec: &LedgerRecord, namespace: &str) -> Removal {
    let ours = owner_value(namespace);
    let addresses = address_records(present, &rec.record.name);
    match mark(present, &rec.owner.name) {
        Some(t) if t.values.contains(&ours) => {
            let mut changes: Vec<Change> =
                addresses.into_iter().cloned().map(Change::Delete).collect();
            changes.push(Change::Delete(t.clone()));
            Removal::Delete(changes)
        }
        Some(t) => Removal::NotOurs(format!(
            "{} is marked as another owner's ({}); left alone",
            rec.record.name,
            t.values.join(" ")
        )),
        None if addresses.is_empty() => Removal::Gone,
        None => Removal::NotOurs(format!(
            "{} has no TXT mark of this preview; left alone",
            rec.record.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ns: &str) -> LedgerRecord {
        wanted(
            "web",
            "preview.example.com",
            "shop-main-web.preview.example.com",
            &Target::Cname("lb.example.com".into()),
            60,
            ns,
        )
    }

    #[test]
    fn upserts_write_only_free_or_own_names() {
        let want = rec("shop-main");
        // A free name: TXT then record.
        let c = upsert(&[], &want, "shop-main").unwrap();
        assert_eq!(c.len(), 2);
        // Ours already: the same two upserts.
        let present = vec![want.record.clone(), want.owner.clone()];
        assert_eq!(upsert(&present, &want, "shop-main").unwrap().len(), 2);
        // Another preview's mark, or a record with no mark: refused.
        assert!(
            upsert(&present, &want, "shop-other")
                .unwrap_err()
                .contains("another owner")
        );
        assert!(
            upsert(std::slice::from_ref(&want.record), &want, "shop-main")
                .unwrap_err()
                .contains("without this preview's TXT mark")
        );
        // Ours as a CNAME, now an alias: the CNAME goes in the same batch.
        let alias = wanted(
            "web",
            "preview.example.com",
            "shop-main-web.preview.example.com",
            &Target::Alias("Z2".into(), "lb.example.com".into()),
            60,
            "shop-main",
        );
        let c = upsert(&present, &alias, "shop-main").unwrap();
        assert_eq!(c[0], Change::Delete(want.record.clone()));
    }

    #[test]
    fn removals_touch_only_what_the_mark_names() {
        let r = rec("shop-main");
        let both = vec![r.record.clone(), r.owner.clone()];
        assert_eq!(
            remove(&both, &r, "shop-main"),
            Removal::Delete(vec![
                Change::Delete(r.record.clone()),
                Change::Delete(r.owner.clone())
            ])
        );
        // A crash after the record went but before the TXT did: the TXT goes.
        assert_eq!(
            remove(std::slice::from_ref(&r.owner), &r, "shop-main"),
            Removal::Delete(vec![Change::Delete(r.owner.clone())])
        );
        assert_eq!(remove(&[], &r, "shop-main"), Removal::Gone);
        assert!(matches!(
            remove(&both, &r, "shop-other"),
            Removal::NotOurs(_)
        ));
        assert!(matches!(
            remove(std::slice::from_ref(&r.record), &r, "shop-main"),
            Removal::NotOurs(_)
        ));
        // The record as it is now (another target) is what is deleted.
        let mut moved = r.record.clone();
        moved.values = vec!["lb2.example.com".into()];
        assert_eq!(
            remove(&[moved.clone(), r.owner.clone()], &r, "shop-main"),
            Removal::Delete(vec![Change::Delete(moved), Change::Delete(r.owner.clone())])
        );
    }
}
