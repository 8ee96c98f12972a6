//! Route53 records: the API's alias record and, next to each, the TXT
//! record that marks it as this cluster's (as external-dns does). A record
//! is ours only when that TXT record names this cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_route53 as r53;
use tokio::sync::OnceCell;

use super::{AwsCloud, err};
use crate::cloud::{CloudError, IdMap};
use crate::model::naming::tf_label;
use crate::model::{Model, Props, Resource};
use crate::resource::attrs::list;
use crate::resource::{Actual, Attrs, Kind};

/// The value of the TXT record that marks a DNS name as this cluster's
/// (quoted, as Route53 returns TXT values).
fn owner_value(cluster: &str) -> String {
    format!("\"heritage=clusterctl,clusterctl/owner={cluster}\"")
}

fn build_err(
    what: &str,
    address: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> CloudError {
    CloudError::Build {
        what: what.to_string(),
        address: address.to_string(),
        source: Box::new(e),
    }
}

/// The ids of public hosted zones by name, each looked up once per run and
/// shared by the preflight (does the zone exist?) and the records (which
/// zone holds them): a zone's id does not change while clusterctl runs.
/// Concurrent askers of one zone wait for one call; a failed call is not
/// remembered.
#[derive(Debug, Clone, Default)]
pub struct ZoneIds(Arc<Mutex<HashMap<String, ZoneId>>>);

/// One zone's id, once looked up (None: no such public zone).
type ZoneId = Arc<OnceCell<Option<String>>>;

impl ZoneIds {
    /// The id of the public hosted zone `zone`, or None when the account
    /// has no such public zone.
    pub(super) async fn get(
        &self,
        route53: &r53::Client,
        zone: &str,
    ) -> Result<Option<String>, CloudError> {
        let cell = self
            .0
            .lock()
            .expect("the zone ids' lock is never poisoned")
            .entry(zone.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let z = route53
                .list_hosted_zones_by_name()
                .dns_name(zone)
                .send()
                .await
                .map_err(|e| err("ListHostedZonesByName", zone, e))?;
            let want = format!("{}.", zone.trim_end_matches('.'));
            Ok(z.hosted_zones()
                .iter()
                .find(|h| h.name() == want && !h.config().is_some_and(|c| c.private_zone()))
                .map(|h| h.id().to_string()))
        })
        .await
        .cloned()
    }
}

async fn zone_id(cloud: &AwsCloud, zone: &str) -> Result<Option<String>, CloudError> {
    cloud.zone_ids.get(&cloud.route53, zone).await
}

/// One of the model's zones as discovery read it: name, id and every
/// record set.
pub(super) type ZoneRecords = (String, String, Vec<r53::types::ResourceRecordSet>);

/// Reads the record sets of the zones the model's records are in (the
/// zones at once, each zone's pages in order); a zone that does not exist
/// is left out.
pub(super) async fn fetch(cloud: &AwsCloud, model: &Model) -> Result<Vec<ZoneRecords>, CloudError> {
    let zones =
        futures::future::try_join_all(model.dns_zones().into_iter().map(|zone| async move {
            let Some(zid) = zone_id(cloud, zone).await? else {
                return Ok(None);
            };
            let mut sets = Vec::new();
            let mut start: Option<(String, r53::types::RrType)> = None;
            loop {
                let mut req = cloud
                    .route53
                    .list_resource_record_sets()
                    .hosted_zone_id(&zid);
                if let Some((n, t)) = &start {
                    req = req.start_record_name(n).start_record_type(t.clone());
                }
                let page = req
                    .send()
                    .await
                    .map_err(|e| err("ListResourceRecordSets", zone, e))?;
                sets.extend(page.resource_record_sets().iter().cloned());
                match (
                    page.is_truncated(),
                    page.next_record_name(),
                    page.next_record_type(),
                ) {
                    (true, Some(n), Some(t)) => start = Some((n.to_string(), t.clone())),
                    _ => break,
                }
            }
            Ok::<_, CloudError>(Some((zone.to_string(), zid, sets)))
        }))
        .await?;
    Ok(zones.into_iter().flatten().collect())
}

/// The records of the model's zones that carry this cluster's TXT mark,
/// from what [`fetch`] read; `lb_dns` maps load balancer DNS names to their
/// addresses.
pub(super) fn actuals(
    cloud: &AwsCloud,
    model: &Model,
    zones: &[ZoneRecords],
    lb_dns: &HashMap<String, String>,
) -> Vec<Actual> {
    let mut out = Vec::new();
    let records: Vec<&Resource> = model
        .resources
        .iter()
        .filter(|r| r.id.kind == Kind::DnsRecord)
        .collect();
    let owner_value = owner_value(&cloud.cluster);
    for (zone, zid, sets) in zones {
        let owned_names: Vec<String> = sets
            .iter()
            .filter(|s| {
                s.r#type() == &r53::types::RrType::Txt
                    && s.resource_records()
                        .iter()
                        .any(|r| r.value() == owner_value)
            })
            .map(|s| s.name().trim_end_matches('.').to_string())
            .collect();
        for s in sets {
            let name = s.name().trim_end_matches('.').to_string();
            if !owned_names.contains(&name)
                || !matches!(s.r#type(), r53::types::RrType::A | r53::types::RrType::Txt)
            {
                continue;
            }
            let ty = s.r#type().as_str().to_string();
            let model_r = records.iter().find(|r| matches!(&r.props, Props::DnsRecord { record_name, record_type, .. } if *record_name == name && *record_type == ty));
            let address = model_r.map(|r| r.id.address()).unwrap_or_else(|| {
                format!(
                    "aws_route53_record.{}-{}",
                    tf_label(&name),
                    ty.to_lowercase()
                )
            });
            let mut a = Attrs::new();
            a.insert("zone".into(), zone.into());
            a.insert("name".into(), name.clone());
            a.insert("type".into(), ty.clone());
            if let Some(al) = s.alias_target() {
                let dns = al.dns_name().trim_end_matches('.').to_lowercase();
                a.insert("alias".into(), lb_dns.get(&dns).cloned().unwrap_or(dns));
            }
            if ty == "TXT" {
                a.insert(
                    "records".into(),
                    list(
                        s.resource_records()
                            .iter()
                            .map(|r| r.value().trim_matches('"').to_string()),
                    ),
                );
            }
            out.push(Actual {
                address,
                kind: Kind::DnsRecord,
                name: name.clone(),
                id: format!("{zid}|{name}|{ty}"),
                attrs: a,
                owned: true,
            });
        }
    }
    out
}

async fn record_set(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<(String, r53::types::ResourceRecordSet), CloudError> {
    let a = r.id.address();
    let Props::DnsRecord {
        zone_name,
        record_name,
        record_type,
        alias,
        values,
        ..
    } = &r.props
    else {
        return Err(CloudError::WrongArea(r.id.kind));
    };
    let zid = zone_id(cloud, zone_name)
        .await?
        .ok_or_else(|| CloudError::NoZone {
            address: a.clone(),
            zone: zone_name.clone(),
        })?;
    let mut set = r53::types::ResourceRecordSet::builder()
        .name(record_name)
        .r#type(r53::types::RrType::from(record_type.as_str()));
    if let Some(lb) = alias {
        let arn = ids.resolve(&a, lb)?;
        let d = cloud
            .elb
            .describe_load_balancers()
            .load_balancer_arns(&arn)
            .send()
            .await
            .map_err(|e| err("DescribeLoadBalancers", &a, e))?;
        let l = d
            .load_balancers()
            .first()
            .ok_or_else(|| CloudError::Unresolved {
                address: a.clone(),
                missing: lb.address(),
            })?;
        set = set.alias_target(
            r53::types::AliasTarget::builder()
                .dns_name(l.dns_name().unwrap_or_default())
                .hosted_zone_id(l.canonical_hosted_zone_id().unwrap_or_default())
                .evaluate_target_health(false)
                .build()
                .map_err(|e| build_err("AliasTarget", &a, e))?,
        );
    } else {
        set = set.ttl(300);
        for v in values {
            set = set.resource_records(
                r53::types::ResourceRecord::builder()
                    .value(format!("\"{v}\""))
                    .build()
                    .map_err(|e| build_err("ResourceRecord", &a, e))?,
            );
        }
    }
    Ok((
        zid,
        set.build()
            .map_err(|e| build_err("ResourceRecordSet", &a, e))?,
    ))
}

async fn change(
    cloud: &AwsCloud,
    address: &str,
    zid: &str,
    action: r53::types::ChangeAction,
    set: r53::types::ResourceRecordSet,
) -> Result<(), CloudError> {
    let change = r53::types::Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| build_err("Change", address, e))?;
    let batch = r53::types::ChangeBatch::builder()
        .changes(change)
        .build()
        .map_err(|e| build_err("ChangeBatch", address, e))?;
    cloud
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(zid)
        .change_batch(batch)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err("ChangeResourceRecordSets", address, e))
}

/// Upserts a record (creating it and updating it are the same call).
pub(super) async fn upsert(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<String, CloudError> {
    let a = r.id.address();
    match &r.props {
        Props::DnsRecord {
            record_name,
            record_type,
            ..
        } => {
            let (zid, set) = record_set(cloud, r, ids).await?;
            change(cloud, &a, &zid, r53::types::ChangeAction::Upsert, set).await?;
            Ok(format!("{zid}|{record_name}|{record_type}"))
        }
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// The record sets of `name` in the zone (every type).
async fn sets_of(
    cloud: &AwsCloud,
    address: &str,
    zid: &str,
    name: &str,
) -> Result<Vec<r53::types::ResourceRecordSet>, CloudError> {
    let found = cloud
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(zid)
        .start_record_name(name)
        .max_items(20)
        .send()
        .await
        .map_err(|e| err("ListResourceRecordSets", address, e))?;
    Ok(found
        .resource_record_sets()
        .iter()
        .filter(|s| s.name().trim_end_matches('.') == name)
        .cloned()
        .collect())
}

fn is_owner_record(set: &r53::types::ResourceRecordSet, owner: &str) -> bool {
    set.r#type() == &r53::types::RrType::Txt
        && set.resource_records().iter().any(|r| r.value() == owner)
}

/// Deletes a record, exactly as it is (Route53's DELETE needs its values),
/// after checking, with a call of its own, that the TXT record of its name
/// marks it as this cluster's. A record that is already gone is done.
/// Deleting the TXT ownership record first deletes the records it marks, so
/// that whatever order (or crash) the deletes come in, no record is ever
/// left without its mark and no record is deleted without one.
pub(super) async fn delete(cloud: &AwsCloud, address: &str, id: &str) -> Result<(), CloudError> {
    let mut parts = id.splitn(3, '|');
    let (zid, name, ty) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let sets = sets_of(cloud, address, zid, name).await?;
    let Some(target) = sets.iter().find(|s| s.r#type().as_str() == ty) else {
        return Ok(());
    };
    let owner = owner_value(&cloud.cluster);
    if !sets.iter().any(|s| is_owner_record(s, &owner)) {
        return cloud.refuse_unless(false, Kind::DnsRecord, address, id);
    }
    if is_owner_record(target, &owner) {
        for marked in sets
            .iter()
            .filter(|s| s.r#type() != &r53::types::RrType::Txt)
        {
            change(
                cloud,
                address,
                zid,
                r53::types::ChangeAction::Delete,
                marked.clone(),
            )
            .await?;
        }
    }
    change(
        cloud,
        address,
        zid,
        r53::types::ChangeAction::Delete,
        target.clone(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_s3::primitives::SdkBody;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_runtime_api::http::Response;
    use aws_smithy_runtime_api::shared::IntoShared;

    use super::*;

    /// Route53 answering every ListHostedZonesByName with the public zone
    /// `example.com.` (id Z1), after 20 ms, counting the calls.
    #[derive(Debug, Clone, Default)]
    struct OneZone(Arc<AtomicUsize>);

    impl HttpConnector for OneZone {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            HttpConnectorFuture::new(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let body = r#"<?xml version="1.0"?>
<ListHostedZonesByNameResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><HostedZones><HostedZone><Id>/hostedzone/Z1</Id><Name>example.com.</Name><CallerReference>t</CallerReference><Config><PrivateZone>false</PrivateZone></Config></HostedZone></HostedZones><IsTruncated>false</IsTruncated><MaxItems>100</MaxItems></ListHostedZonesByNameResponse>"#;
                Ok(Response::new(200.try_into().unwrap(), SdkBody::from(body)))
            })
        }
    }

    impl HttpClient for OneZone {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.clone().into_shared()
        }
    }

    #[tokio::test]
    async fn each_zone_is_looked_up_once_however_many_ask_at_once() {
        let route53 = OneZone::default();
        let client = r53::Client::from_conf(
            r53::Config::builder()
                .behavior_version(r53::config::BehaviorVersion::latest())
                .region(r53::config::Region::new("us-east-1"))
                .credentials_provider(r53::config::Credentials::new("a", "b", None, None, "t"))
                .http_client(route53.clone())
                .build(),
        );
        let ids = ZoneIds::default();
        let (a, b) = tokio::join!(
            ids.get(&client, "example.com"),
            ids.get(&client, "example.com")
        );
        assert_eq!(a.unwrap().as_deref(), Some("/hostedzone/Z1"));
        assert_eq!(b.unwrap().as_deref(), Some("/hostedzone/Z1"));
        assert_eq!(
            ids.get(&client, "example.com").await.unwrap().as_deref(),
            Some("/hostedzone/Z1")
        );
        assert_eq!(
            route53.0.load(Ordering::SeqCst),
            1,
            "one call for example.com"
        );
        // Another name is another lookup (and not this zone).
        assert_eq!(ids.get(&client, "other.org").await.unwrap(), None);
        assert_eq!(route53.0.load(Ordering::SeqCst), 2);
    }
}
