//! `preview up`: one branch deployed into its namespace, with its copied
//! objects, quota, Ingress and DNS name, its ledger written before any DNS
//! change, then the rollout awaited.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

use super::config::{PreviewConfig, ServiceConfig};
use super::ledger::{self, Ledger, LedgerStore};
use super::records::{self, Target};
use super::render::{Rendered, Vars, render_files};
use super::rollout;
use super::{PreviewError, Shared, naming};

/// What `up` is asked to do.
#[derive(Debug, Clone)]
pub struct UpParams {
    /// The repo.
    pub repo: String,
    /// The branch.
    pub branch: String,
    /// The service (None: the config's default).
    pub service: Option<String>,
    /// The image.
    pub image: String,
    /// Time to live from now (None: the config's).
    pub ttl: Option<Duration>,
    /// Who deploys.
    pub owner: String,
    /// The repo's checkout (templates are relative to it).
    pub root: PathBuf,
    /// How long to wait for the rollout (None: do not wait).
    pub wait: Option<Duration>,
}

/// What `up` did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpResult {
    /// The namespace.
    pub namespace: String,
    /// The host.
    pub host: String,
    /// The URL.
    pub url: String,
    /// Whether the namespace was new.
    pub created: bool,
    /// When gc may delete it.
    pub expires_at: DateTime<Utc>,
    /// Objects applied from the templates.
    pub objects: usize,
    /// Objects copied from the source namespace.
    pub copied: usize,
}

/// Whether `ns` is a preview namespace (our label), and whose.
pub fn is_ours(ns: &Namespace) -> bool {
    ns.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ledger::MANAGED_BY))
        .is_some_and(|v| v == ledger::MANAGED_BY_VALUE)
}

fn annotation<'a>(ns: &'a Namespace, key: &str) -> Option<&'a str> {
    ns.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The ledger a namespace carries.
pub fn ledger_of(ns: &Namespace) -> Option<Ledger> {
    annotation(ns, ledger::LEDGER).and_then(|s| Ledger::from_annotation(s).ok())
}

fn apply_params() -> PatchParams {
    PatchParams::apply(ledger::FIELD_MANAGER).force()
}

/// The namespace object (labels, annotations with the ledger).
fn namespace_object(l: &Ledger) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": l.namespace,
            "labels": {
                ledger::MANAGED_BY: ledger::MANAGED_BY_VALUE,
                ledger::REPO_LABEL: ledger::repo_label(&l.repo),
            },
            "annotations": {
                ledger::REPO: l.repo,
                ledger::BRANCH: l.branch,
                ledger::OWNER: l.owner,
                ledger::CREATED: l.created.to_rfc3339(),
                ledger::LAST_DEPLOYED: l.last_deployed.to_rfc3339(),
                ledger::EXPIRES_AT: l.expires_at.to_rfc3339(),
                ledger::LEDGER: l.to_annotation(),
            },
        },
    })
}

/// Writes the ledger to the namespace (creating it) and the state store.
pub async fn write_ledger(s: &Shared, l: &Ledger) -> Result<(), PreviewError> {
    Api::<Namespace>::all(s.client.clone())
        .patch(
            &l.namespace,
            &apply_params(),
            &Patch::Apply(namespace_object(l)),
        )
        .await
        .map_err(PreviewError::kube(format!(
            "writing namespace {}",
            l.namespace
        )))?;
    s.ledgers.put(l).await?;
    Ok(())
}

async fn live_in_repo(s: &Shared, repo: &str) -> Result<Vec<String>, PreviewError> {
    let lp = ListParams::default().labels(&format!(
        "{}={},{}={}",
        ledger::MANAGED_BY,
        ledger::MANAGED_BY_VALUE,
        ledger::REPO_LABEL,
        ledger::repo_label(repo)
    ));
    let list = Api::<Namespace>::all(s.client.clone())
        .list(&lp)
        .await
        .map_err(PreviewError::kube("listing preview namespaces".into()))?;
    Ok(list
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| annotation(&n, ledger::BRANCH).map(str::to_string))
        .collect())
}

async fn target(s: &Shared, c: &PreviewConfig) -> Result<Target, PreviewError> {
    if let Some(t) = &c.dns.target {
        return Ok(match &c.dns.alias_hosted_zone_id {
            Some(z) => Target::Alias(z.clone(), t.clone()),
            None => Target::Cname(t.clone()),
        });
    }
    let spec = c.dns.target_service.as_deref().unwrap_or_default();
    let (ns, name) = spec.split_once('/').unwrap_or(("", spec));
    let svc = Api::<Service>::namespaced(s.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(PreviewError::kube(format!("reading Service {spec}")))?
        .ok_or_else(|| PreviewError::Input(format!("dns.targetService {spec} does not exist")))?;
    let host = svc
        .status
        .and_then(|st| st.load_balancer)
        .and_then(|lb| lb.ingress)
        .and_then(|i| i.into_iter().find_map(|i| i.hostname))
        .ok_or_else(|| {
            PreviewError::Input(format!(
                "Service {spec} has no load balancer hostname yet (is it type LoadBalancer, with the cloud controller running?)"
            ))
        })?;
    Ok(match &c.dns.alias_hosted_zone_id {
        Some(z) => Target::Alias(z.clone(), host),
        None => Target::Cname(host),
    })
}

async fn copy_objects(
    s: &Shared,
    c: &PreviewConfig,
    svc: &ServiceConfig,
    ns: &str,
) -> Result<usize, PreviewError> {
    let Some(source) = &c.source_namespace else {
        return Ok(0);
    };
    let mut n = 0;
    let label = BTreeMap::from([(
        ledger::MANAGED_BY.to_string(),
        ledger::MANAGED_BY_VALUE.to_string(),
    )]);
    for name in &svc.secrets {
        let from = Api::<Secret>::namespaced(s.client.clone(), source)
            .get_opt(name)
            .await
            .map_err(PreviewError::kube(format!(
                "reading Secret {source}/{name}"
            )))?
            .ok_or_else(|| {
                PreviewError::Input(format!("Secret {source}/{name} (to copy) does not exist"))
            })?;
        let mut copy = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name, "namespace": ns, "labels": label },
        });
        if let Some(t) = from.type_ {
            copy["type"] = json!(t);
        }
        if let Some(d) = from.data {
            copy["data"] = json!(d);
        }
        Api::<Secret>::namespaced(s.client.clone(), ns)
            .patch(name, &apply_params(), &Patch::Apply(copy))
            .await
            .map_err(PreviewError::kube(format!("copying Secret {name}")))?;
        n += 1;
    }
    for name in &svc.config_maps {
        let from = Api::<ConfigMap>::namespaced(s.client.clone(), source)
            .get_opt(name)
            .await
            .map_err(PreviewError::kube(format!(
                "reading ConfigMap {source}/{name}"
            )))?
            .ok_or_else(|| {
                PreviewError::Input(format!(
                    "ConfigMap {source}/{name} (to copy) does not exist"
                ))
            })?;
        let mut copy = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": name, "namespace": ns, "labels": label },
        });
        if let Some(d) = from.data {
            copy["data"] = json!(d);
        }
        if let Some(b) = from.binary_data {
            copy["binaryData"] = json!(b);
        }
        Api::<ConfigMap>::namespaced(s.client.clone(), ns)
            .patch(name, &apply_params(), &Patch::Apply(copy))
            .await
            .map_err(PreviewError::kube(format!("copying ConfigMap {name}")))?;
        n += 1;
    }
    Ok(n)
}

/// The quota, the limit range and the Ingress of a preview.
fn fixed_objects(
    c: &PreviewConfig,
    service: &str,
    svc: &ServiceConfig,
    ns: &str,
    host: &str,
) -> Vec<serde_json::Value> {
    let labels = json!({ ledger::MANAGED_BY: ledger::MANAGED_BY_VALUE });
    let mut ingress_meta =
        json!({ "name": format!("preview-{service}"), "namespace": ns, "labels": labels });
    if !c.ingress.annotations.is_empty() {
        ingress_meta["annotations"] = json!(c.ingress.annotations);
    }
    vec![
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": { "name": "preview-quota", "namespace": ns, "labels": labels },
            "spec": { "hard": c.quota },
        }),
        json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": { "name": "preview-limits", "namespace": ns, "labels": labels },
            "spec": { "limits": [{
                "type": "Container",
                "default": { "cpu": c.limits.cpu, "memory": c.limits.memory },
                "defaultRequest": { "cpu": c.limits.request_cpu, "memory": c.limits.request_memory },
            }] },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": ingress_meta,
            "spec": {
                "ingressClassName": c.ingress.class_name,
                "rules": [{ "host": host, "http": { "paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": { "service": {
                        "name": svc.service_name.clone().unwrap_or_else(|| service.to_string()),
                        "port": { "number": svc.port },
                    } },
                }] } }],
            },
        }),
    ]
}

fn fixed_resource(kind: &str) -> kube::api::ApiResource {
    match kind {
        "ResourceQuota" => {
            kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ResourceQuota>(&())
        }
        "LimitRange" => {
            kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::LimitRange>(&())
        }
        _ => kube::api::ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&()),
    }
}

async fn apply_object(
    s: &Shared,
    r: &kube::api::ApiResource,
    ns: &str,
    obj: &serde_json::Value,
) -> Result<(), PreviewError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Api::<DynamicObject>::namespaced_with(s.client.clone(), ns, r)
        .patch(name, &apply_params(), &Patch::Apply(obj))
        .await
        .map_err(PreviewError::kube(format!("applying {} {name}", r.kind)))?;
    Ok(())
}

/// Deploys a branch; `progress` hears each step.
pub async fn up(
    s: &Shared,
    c: &PreviewConfig,
    p: &UpParams,
    now: DateTime<Utc>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<UpResult, PreviewError> {
    super::inputs::check_branch(&p.branch).map_err(PreviewError::Input)?;
    super::inputs::check_image(&p.image).map_err(PreviewError::Input)?;
    let (service, svc) = c
        .service(p.service.as_deref())
        .map_err(PreviewError::Input)?;
    let names = naming::names(&p.repo, &p.branch, service).map_err(PreviewError::Input)?;
    let domain = c.domain.trim_end_matches('.').to_ascii_lowercase();
    let host = format!("{}.{domain}", names.host_label);
    let url = format!("{}://{host}/", c.scheme);
    let ns = names.namespace.clone();
    let ttl = p.ttl.unwrap_or(c.ttl);
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);

    // Ours to redeploy, or free; and within the cap.
    let existing = Api::<Namespace>::all(s.client.clone())
        .get_opt(&ns)
        .await
        .map_err(PreviewError::kube(format!("reading namespace {ns}")))?;
    let previous = match &existing {
        Some(n) if n.metadata.deletion_timestamp.is_some() => {
            return Err(PreviewError::Input(format!(
                "namespace {ns} is still being deleted (a `down` or gc); try again when it is gone"
            )));
        }
        Some(n)
            if !is_ours(n)
                || annotation(n, ledger::REPO) != Some(p.repo.as_str())
                || annotation(n, ledger::BRANCH) != Some(p.branch.as_str()) =>
        {
            return Err(PreviewError::Input(format!(
                "namespace {ns} exists and is not the preview of {} {}; not touching it",
                p.repo, p.branch
            )));
        }
        Some(n) => ledger_of(n),
        None => {
            let live = live_in_repo(s, &p.repo).await?;
            if live.len() >= c.max_per_repo {
                return Err(PreviewError::Cap {
                    repo: p.repo.clone(),
                    cap: c.max_per_repo,
                    live,
                });
            }
            None
        }
    };

    // DNS: check ownership before anything is written.
    let target = target(s, c).await?;
    let want = records::wanted(service, &domain, &host, &target, c.dns.ttl, &ns);
    let zone_id = s.dns.zone_id(&domain).await?;
    let mut present = s.dns.lookup(&zone_id, &want.record.name).await?;
    present.extend(s.dns.lookup(&zone_id, &want.owner.name).await?);
    let changes = records::upsert(&present, &want, &ns).map_err(PreviewError::Input)?;

    // The ledger first (a crash after the DNS write still finds the record).
    let mut l = previous.unwrap_or(Ledger {
        namespace: ns.clone(),
        repo: p.repo.clone(),
        branch: p.branch.clone(),
        owner: p.owner.clone(),
        created: now,
        last_deployed: now,
        expires_at,
        records: vec![],
    });
    l.owner = p.owner.clone();
    l.last_deployed = now;
    l.expires_at = expires_at;
    l.records.retain(|r| r.record.name != want.record.name);
    l.records.push(want);
    progress(&format!("namespace {ns}"));
    write_ledger(s, &l).await?;
    progress(&format!("DNS {host}"));
    s.dns.change(&zone_id, &changes).await?;

    progress("copying objects");
    let copied = copy_objects(s, c, svc, &ns).await?;
    for obj in fixed_objects(c, service, svc, &ns, &host) {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        apply_object(s, &fixed_resource(&kind), &ns, &obj).await?;
    }
    let tag = super::inputs::tag_of(&p.image);
    let vars = Vars {
        image: p.image.clone(),
        tag,
        namespace: ns.clone(),
        host: host.clone(),
        url: url.clone(),
        service: service.to_string(),
        replicas: svc.replicas,
        branch_slug: names
            .host_label
            .trim_end_matches(&format!("-{service}"))
            .to_string(),
        branch: p.branch.clone(),
    };
    let rendered: Vec<Rendered> =
        render_files(&p.root, &svc.templates, &vars).map_err(PreviewError::Input)?;
    progress(&format!("applying {} objects", rendered.len()));
    for r in &rendered {
        let value = serde_json::to_value(&r.object).unwrap_or_default();
        apply_object(s, &r.resource, &ns, &value).await?;
    }
    if let Some(timeout) = p.wait {
        rollout::wait(s, &ns, &rendered, timeout, progress).await?;
    }
    Ok(UpResult {
        namespace: ns,
        host,
        url,
        created: existing.is_none(),
        expires_at,
        objects: rendered.len(),
        copied,
    })
}

/// Sets a preview's expiry to `now + ttl` (activity extends the TTL).
pub async fn extend(
    s: &Shared,
    ns: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Ledger, PreviewError> {
    let n = Api::<Namespace>::all(s.client.clone())
        .get_opt(ns)
        .await
        .map_err(PreviewError::kube(format!("reading namespace {ns}")))?
        .ok_or_else(|| PreviewError::Input(format!("no preview namespace {ns}")))?;
    if !is_ours(&n) {
        return Err(PreviewError::Input(format!(
            "namespace {ns} is not a preview; not touching it"
        )));
    }
    let mut l = ledger_of(&n)
        .ok_or_else(|| PreviewError::Input(format!("namespace {ns} has no readable ledger")))?;
    l.expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    write_ledger(s, &l).await?;
    Ok(l)
}

/// A ledger store handle (for callers that build [`Shared`]).
pub fn ledgers(s3: aws_sdk_s3::Client, url: &str) -> Result<LedgerStore, PreviewError> {
    let (bucket, prefix) = ledger::parse_state(url).map_err(PreviewError::Input)?;
    Ok(LedgerStore::new(s3, &bucket, &prefix))
}
