//! Installs a rendered bootstrap channel into a live cluster, as kops'
//! channels tool does: each addon's version and manifest hash are recorded
//! in an annotation on the `kube-system` namespace, and an addon is applied
//! only when it is new, its version is higher, or its manifest changed. A
//! lower version is never applied over a higher one: the whole run is
//! refused before anything is written.
//!
//! Objects are applied with server-side apply (field manager `clusterctl`,
//! forcing conflicts: the manifest is the source of truth for the fields it
//! sets, and fields other managers own and it does not set are kept).
//! The annotation is written only after every object of the addon was
//! applied, so an interrupted run applies the addon again next time.
//!
//! An applied addon's objects that it no longer ships are pruned (see
//! [`super::prune`]). [`plan`] computes all of it without writing, and
//! [`apply_channel`] carries out exactly that plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channel::{Channel, ChannelAddon};
use super::prune::{self, ObjRef, Stale, kind_key};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "clusterctl";
/// Prefix of the kube-system annotations recording installed addons.
pub const ANNOTATION_PREFIX: &str = "addons.clusterctl.io/";
/// The namespace that carries the record.
pub const RECORD_NAMESPACE: &str = "kube-system";

/// What is recorded for an installed addon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installed {
    /// Upstream version.
    pub version: String,
    /// Manifest id.
    pub id: String,
    /// SHA-256 of the rendered manifest.
    pub manifest_hash: String,
    /// The kinds it applied (`apps/v1/Deployment`), so that a later version
    /// that drops a whole kind still has its old objects pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

impl Installed {
    fn of(a: &ChannelAddon) -> Installed {
        Installed {
            version: a.version.clone(),
            id: a.id.clone(),
            manifest_hash: a.manifest_hash.clone(),
            kinds: Vec::new(),
        }
    }
}

/// What to do with one addon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Decision {
    /// Not installed: apply it.
    Install,
    /// A higher version: apply it.
    Upgrade {
        /// The version installed.
        from: String,
    },
    /// The same version with another manifest (spec or template changed).
    Reapply,
    /// Installed as wanted.
    UpToDate,
    /// The cluster runs a higher version: refused, the run writes nothing.
    Downgrade {
        /// The version installed.
        installed: String,
    },
}

impl Decision {
    /// Whether the addon's objects are applied.
    pub fn applies(&self) -> bool {
        matches!(
            self,
            Decision::Install | Decision::Upgrade { .. } | Decision::Reapply
        )
    }
}

fn version(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.trim_start_matches('v')).ok()
}

/// Decides one addon from what is recorded and what the channel wants.
pub fn decide(installed: Option<&Installed>, wanted: &Installed) -> Decision {
    let Some(have) = installed else {
        return Decision::Install;
    };
    match (version(&have.version), version(&wanted.version)) {
        (Some(h), Some(w)) if w > h => {
            return Decision::Upgrade {
                from: have.version.clone(),
            };
        }
        (Some(h), Some(w)) if w < h => {
            return Decision::Downgrade {
                installed: have.version.clone(),
            };
        }
        (Some(_), Some(_)) => {}
        // Not semver: only equality means anything.
        _ if have.version != wanted.version => {
            return Decision::Upgrade {
                from: have.version.clone(),
            };
        }
        _ => {}
    }
    if have.manifest_hash != wanted.manifest_hash || have.id != wanted.id {
        Decision::Reapply
    } else {
        Decision::UpToDate
    }
}

/// The outcome for one addon.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The addon (channel name).
    pub name: String,
    /// The version the channel carries.
    pub version: String,
    /// What was decided.
    pub decision: Decision,
    /// Objects applied (or, in a plan, to apply).
    pub objects: usize,
    /// Objects pruned (or, in a plan, to prune).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<ObjRef>,
    /// Objects labelled as the addon's that it no longer ships but that
    /// clusterctl did not apply: kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<ObjRef>,
}

/// Errors installing a channel.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The rendered channel is missing or does not parse.
    #[error("the rendered bootstrap channel: {0}")]
    Channel(String),
    /// A manifest does not parse.
    #[error("addons/{manifest}: document {document}: {message}")]
    Manifest {
        /// Manifest path.
        manifest: String,
        /// 1-based document number.
        document: usize,
        /// Why.
        message: String,
    },
    /// The API refused or failed a request.
    #[error("{what}")]
    Api {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The channel would downgrade addons the cluster runs.
    #[error("{}", downgrade_message(.0))]
    Downgrade(Vec<(String, String, String)>),
    /// The API did not answer in time.
    #[error("the Kubernetes API at {server} did not answer within {waited:?}")]
    Timeout {
        /// Where it was asked.
        server: String,
        /// How long.
        waited: Duration,
        /// The last error seen.
        #[source]
        last: Option<kube::Error>,
    },
}

fn downgrade_message(refused: &[(String, String, String)]) -> String {
    let each: Vec<String> = refused
        .iter()
        .map(|(name, have, want)| {
            format!(
                "addon {name}: the cluster runs {have} and this channel has {want} (to go back on purpose, remove the annotation {ANNOTATION_PREFIX}{name} from namespace {RECORD_NAMESPACE} first)"
            )
        })
        .collect();
    format!(
        "refusing to downgrade {}; nothing was applied. Use a clusterctl whose channel has these versions or later.",
        each.join("; ")
    )
}

/// Reads the rendered channel (path → text, as `channel::render` returns).
pub fn read_channel(rendered: &BTreeMap<String, String>) -> Result<Channel, InstallError> {
    let text = rendered
        .get("bootstrap-channel.yaml")
        .ok_or_else(|| InstallError::Channel("bootstrap-channel.yaml is missing".into()))?;
    serde_norway::from_str(text).map_err(|e| InstallError::Channel(e.to_string()))
}

/// The objects of a manifest, in apply order: namespaces, then custom
/// resource definitions, then the rest in manifest order, and API services
/// last (they point at a Service that must exist).
pub fn objects(manifest: &str, text: &str) -> Result<Vec<DynamicObject>, InstallError> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let bad = |message: String| InstallError::Manifest {
            manifest: manifest.to_string(),
            document: i + 1,
            message,
        };
        let v = Value::deserialize(doc).map_err(|e| bad(e.to_string()))?;
        if v.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        if obj.types.is_none() || obj.metadata.name.is_none() {
            return Err(bad("apiVersion, kind and metadata.name are required".into()));
        }
        out.push(obj);
    }
    let rank = |o: &DynamicObject| match o.types.as_ref().map(|t| t.kind.as_str()) {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        Some("APIService") => 3,
        _ => 2,
    };
    out.sort_by_key(rank);
    Ok(out)
}

fn gvk(o: &DynamicObject) -> GroupVersionKind {
    let t = o.types.clone().unwrap_or_default();
    let (group, version) = match t.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), t.api_version.clone()),
    };
    GroupVersionKind {
        group,
        version,
        kind: t.kind,
    }
}

/// Applies objects to a cluster, resolving each kind once.
pub(super) struct Applier {
    pub(super) client: kube::Client,
    kinds: HashMap<GroupVersionKind, (ApiResource, bool)>,
}

impl Applier {
    fn new(client: &kube::Client) -> Applier {
        Applier {
            client: client.clone(),
            kinds: HashMap::new(),
        }
    }

    /// Where `obj` lives once applied. A kind the cluster does not serve
    /// yet (a custom resource whose definition the same addon applies)
    /// keeps the namespace the manifest gives.
    async fn locate(&mut self, obj: &DynamicObject) -> ObjRef {
        let gvk = gvk(obj);
        let namespace = match self.resource(&gvk).await {
            Ok((_, true)) => Some(
                obj.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            Ok((_, false)) => None,
            Err(_) => obj.metadata.namespace.clone(),
        };
        ObjRef {
            api_version: obj
                .types
                .as_ref()
                .map(|t| t.api_version.clone())
                .unwrap_or_default(),
            kind: gvk.kind,
            namespace,
            name: obj.metadata.name.clone().unwrap_or_default(),
        }
    }

    pub(super) async fn resource(
        &mut self,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, bool), InstallError> {
        if let Some(r) = self.kinds.get(gvk) {
            return Ok(r.clone());
        }
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, gvk)
            .await
            .map_err(|source| InstallError::Api {
                what: format!(
                    "finding {} {} in the API",
                    gvk.kind,
                    if gvk.group.is_empty() {
                        gvk.version.clone()
                    } else {
                        format!("{}/{}", gvk.group, gvk.version)
                    }
                ),
                source,
            })?;
        let namespaced = caps.scope == Scope::Namespaced;
        self.kinds.insert(gvk.clone(), (ar.clone(), namespaced));
        Ok((ar, namespaced))
    }

    async fn apply(
        &mut self,
        mut obj: DynamicObject,
        selector: &BTreeMap<String, String>,
    ) -> Result<(), InstallError> {
        let gvk = gvk(&obj);
        let (ar, namespaced) = self.resource(&gvk).await?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        let labels = obj.metadata.labels.get_or_insert_with(Default::default);
        for (k, v) in selector {
            labels.insert(k.clone(), v.clone());
        }
        let api: Api<DynamicObject> = if namespaced {
            let ns = obj
                .metadata
                .namespace
                .get_or_insert_with(|| "default".into())
                .clone();
            Api::namespaced_with(self.client.clone(), &ns, &ar)
        } else {
            obj.metadata.namespace = None;
            Api::all_with(self.client.clone(), &ar)
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|source| InstallError::Api {
                what: format!(
                    "applying {} {}{name}",
                    gvk.kind,
                    obj.metadata
                        .namespace
                        .as_deref()
                        .map(|n| format!("{n}/"))
                        .unwrap_or_default()
                ),
                source,
            })?;
        Ok(())
    }
}

/// The addons recorded on kube-system.
pub async fn installed(client: &kube::Client) -> Result<BTreeMap<String, Installed>, InstallError> {
    use k8s_openapi::api::core::v1::Namespace;
    let ns = Api::<Namespace>::all(client.clone())
        .get(RECORD_NAMESPACE)
        .await
        .map_err(|source| InstallError::Api {
            what: format!("reading namespace {RECORD_NAMESPACE}"),
            source,
        })?;
    let mut out = BTreeMap::new();
    for (k, v) in ns.metadata.annotations.unwrap_or_default() {
        if let Some(name) = k.strip_prefix(ANNOTATION_PREFIX) {
            // A record we cannot read is treated as absent: the addon is
            // applied again, which is safe, and the record rewritten.
            if let Ok(rec) = serde_json::from_str::<Installed>(&v) {
                out.insert(name.to_string(), rec);
            }
        }
    }
    Ok(out)
}

async fn record(client: &kube::Client, name: &str, rec: &Installed) -> Result<(), InstallError> {
    use k8s_openapi::api::core::v1::Namespace;
    let value = serde_json::to_string(rec).unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": { "annotations": { format!("{ANNOTATION_PREFIX}{name}"): value } }
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            RECORD_NAMESPACE,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| InstallError::Api {
            what: format!("recording addon {name} on namespace {RECORD_NAMESPACE}"),
            source,
        })?;
    Ok(())
}

/// The short name of a channel entry (`coredns.addons.clusterctl.io` →
/// `coredns`), the key of its record.
pub fn short_name(channel_name: &str) -> &str {
    channel_name
        .strip_suffix(".addons.clusterctl.io")
        .unwrap_or(channel_name)
}

/// Decides every addon of the channel against what the cluster records.
pub fn decide_all(
    channel: &Channel,
    recorded: &BTreeMap<String, Installed>,
) -> Vec<(ChannelAddon, Decision)> {
    channel
        .spec
        .addons
        .iter()
        .map(|a| {
            let d = decide(recorded.get(short_name(&a.name)), &Installed::of(a));
            (a.clone(), d)
        })
        .collect()
}

/// One addon's part of a plan.
pub struct AddonPlan {
    /// The channel entry.
    pub addon: ChannelAddon,
    /// What to do with it.
    pub decision: Decision,
    objects: Vec<DynamicObject>,
    kinds: Vec<String>,
    /// Its objects to prune, and look-alikes kept.
    pub stale: Stale,
}

impl AddonPlan {
    fn outcome(&self, pruned: Vec<ObjRef>) -> Outcome {
        Outcome {
            name: short_name(&self.addon.name).to_string(),
            version: self.addon.version.clone(),
            decision: self.decision.clone(),
            objects: self.objects.len(),
            pruned,
            kept: self.stale.foreign.clone(),
        }
    }
}

/// What applying a channel would do, computed with reads only.
pub struct Plan {
    /// One entry per addon, in channel order.
    pub addons: Vec<AddonPlan>,
    applier: Applier,
}

impl Plan {
    /// The plan as outcomes (objects and prunes to come).
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.addons
            .iter()
            .map(|p| p.outcome(p.stale.prune.iter().map(|x| x.obj.clone()).collect()))
            .collect()
    }

    /// The refusal, when the plan would downgrade an addon.
    pub fn refusal(&self) -> Option<InstallError> {
        let refused: Vec<_> = self
            .addons
            .iter()
            .filter_map(|p| match &p.decision {
                Decision::Downgrade { installed } => Some((
                    short_name(&p.addon.name).to_string(),
                    installed.clone(),
                    p.addon.version.clone(),
                )),
                _ => None,
            })
            .collect();
        (!refused.is_empty()).then_some(InstallError::Downgrade(refused))
    }
}

fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Plans the rendered channel against the cluster: decisions, objects to
/// apply and objects to prune. Writes nothing.
pub async fn plan(
    client: &kube::Client,
    rendered: &BTreeMap<String, String>,
) -> Result<Plan, InstallError> {
    let channel = read_channel(rendered)?;
    let recorded = installed(client).await?;
    let mut applier = Applier::new(client);
    let mut addons = Vec::new();
    for (addon, decision) in decide_all(&channel, &recorded) {
        let mut p = AddonPlan {
            addon,
            decision,
            objects: Vec::new(),
            kinds: Vec::new(),
            stale: Stale::default(),
        };
        if p.decision.applies() {
            let text = rendered.get(&p.addon.manifest).ok_or_else(|| {
                InstallError::Channel(format!(
                    "{} names {}, which was not rendered",
                    p.addon.name, p.addon.manifest
                ))
            })?;
            p.objects = objects(&p.addon.manifest, text)?;
            let mut keep = BTreeSet::new();
            let mut kinds = BTreeSet::new();
            for o in &p.objects {
                kinds.insert(kind_key(&gvk(o)));
                keep.insert(applier.locate(o).await);
            }
            if p.addon.prune {
                let mut listed = kinds.clone();
                if let Some(rec) = recorded.get(short_name(&p.addon.name)) {
                    listed.extend(rec.kinds.iter().cloned());
                }
                let selector = selector_string(&p.addon.selector);
                p.stale = prune::find(&mut applier, &selector, &listed, &keep).await?;
            }
            p.kinds = kinds.into_iter().collect();
        }
        addons.push(p);
    }
    Ok(Plan { addons, applier })
}

/// Applies the rendered channel to the cluster: the [`plan`], refused as a
/// whole if it would downgrade an addon. For each addon to apply: its
/// objects, then its prunes, then its record. Returns one outcome per
/// addon, in channel order.
pub async fn apply_channel(
    client: &kube::Client,
    rendered: &BTreeMap<String, String>,
) -> Result<Vec<Outcome>, InstallError> {
    apply_plan(client, plan(client, rendered).await?).await
}

/// Carries out a [`plan`] (refused as a whole if it would downgrade an
/// addon).
pub async fn apply_plan(client: &kube::Client, plan: Plan) -> Result<Vec<Outcome>, InstallError> {
    if let Some(refused) = plan.refusal() {
        return Err(refused);
    }
    let Plan {
        addons,
        mut applier,
    } = plan;
    let mut out = Vec::new();
    for p in addons {
        let mut pruned = Vec::new();
        if p.decision.applies() {
            for obj in p.objects.iter().cloned() {
                applier.apply(obj, &p.addon.selector).await?;
            }
            pruned = prune::delete(client, &p.stale.prune).await?;
            let mut rec = Installed::of(&p.addon);
            rec.kinds = p.kinds.clone();
            record(client, short_name(&p.addon.name), &rec).await?;
            tracing::info!(addon = %p.addon.name, version = %p.addon.version, objects = p.objects.len(), pruned = pruned.len(), decision = ?p.decision, "addon applied");
        }
        out.push(p.outcome(pruned));
    }
    Ok(out)
}

/// Waits until the API answers `/version`, polling every `every`, for up to
/// `timeout`; `tick` is told the time waited and the last error after each
/// failed attempt.
pub async fn wait_for_api(
    client: &kube::Client,
    server: &str,
    timeout: Duration,
    every: Duration,
    mut tick: impl FnMut(Duration, &kube::Error),
) -> Result<String, InstallError> {
    let start = tokio::time::Instant::now();
    loop {
        let attempt = tokio::time::timeout(
            every.max(Duration::from_secs(5)),
            client.apiserver_version(),
        )
        .await;
        let err = match attempt {
            Ok(Ok(info)) => return Ok(info.git_version),
            Ok(Err(e)) => e,
            Err(_) => kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer",
            ))),
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(InstallError::Timeout {
                server: server.to_string(),
                waited,
                last: Some(err),
            });
        }
        tick(waited, &err);
        tokio::time::sleep(every.min(timeout.saturating_sub(waited))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str, hash: &str) -> Installed {
        Installed {
            version: v.into(),
            id: "k8s-1.29".into(),
            manifest_hash: hash.into(),
            kinds: Vec::new(),
        }
    }

    #[test]
    fn decisions_follow_kops_channels() {
        let table: &[(Option<Installed>, Installed, Decision)] = &[
            (None, rec("1.0.0", "a"), Decision::Install),
            (
                Some(rec("1.0.0", "a")),
                rec("1.0.0", "a"),
                Decision::UpToDate,
            ),
            (
                Some(rec("1.0.0", "a")),
                rec("1.0.0", "b"),
                Decision::Reapply,
            ),
            (
                Some(rec("1.0.0", "a")),
                rec("1.1.0", "b"),
                Decision::Upgrade {
                    from: "1.0.0".into(),
                },
            ),
            // A higher version in the cluster is never replaced, whatever the hash.
            (
                Some(rec("1.2.0", "a")),
                rec("1.1.0", "b"),
                Decision::Downgrade {
                    installed: "1.2.0".into(),
                },
            ),
            // Semver, not string order.
            (
                Some(rec("1.9.0", "a")),
                rec("1.10.0", "a"),
                Decision::Upgrade {
                    from: "1.9.0".into(),
                },
            ),
            // Not semver: any other version is applied.
            (
                Some(rec("latest", "a")),
                rec("1.0.0", "a"),
                Decision::Upgrade {
                    from: "latest".into(),
                },
            ),
        ];
        for (have, want, expect) in table {
            assert_eq!(&decide(have.as_ref(), want), expect, "{have:?} → {want:?}");
        }
        let mut other_id = rec("1.0.0", "a");
        other_id.id = "k8s-1.33".into();
        assert_eq!(
            decide(Some(&rec("1.0.0", "a")), &other_id),
            Decision::Reapply
        );
    }

    #[test]
    fn objects_are_ordered_for_apply_and_checked() {
        let text = "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1beta1.metrics.k8s.io\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: kube-system\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n";
        let objs = objects("x/y.yaml", text).unwrap();
        let kinds: Vec<_> = objs
            .iter()
            .map(|o| o.types.as_ref().unwrap().kind.clone())
            .collect();
        assert_eq!(kinds, ["Namespace", "Service", "APIService"]);
        let err = objects("x/y.yaml", "apiVersion: v1\nkind: Service\n").unwrap_err();
        assert!(
            err.to_string().contains("addons/x/y.yaml: document 1"),
            "{err}"
        );
    }

    #[test]
    fn every_rendered_addon_manifest_parses_into_objects() {
        let spec = crate::spec::Spec::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/ha.yaml"
        )))
        .unwrap();
        let rendered = super::super::channel::render(&spec).unwrap();
        let ch = read_channel(&rendered).unwrap();
        assert!(!ch.spec.addons.is_empty());
        for a in &ch.spec.addons {
            let objs = objects(&a.manifest, &rendered[&a.manifest]).unwrap();
            assert!(!objs.is_empty(), "{}", a.manifest);
        }
    }
}
