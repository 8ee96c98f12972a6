//! Installs a rendered bootstrap channel into a live cluster, as kops'
//! channels tool does: each addon's version and manifest hash are recorded
//! in an annotation on the `kube-system` namespace, and an addon is applied
//! only when it is new, its version is higher, or its manifest changed. A
//! lower version is never applied over a higher one.
//!
//! Objects are applied with server-side apply (field manager `clusterctl`,
//! forcing conflicts: the manifest is the source of truth for the fields it
//! sets, and fields other managers own and it does not set are kept).
//! The annotation is written only after every object of the addon was
//! applied, so an interrupted run applies the addon again next time.
//!
//! Pruning the objects an addon dropped is the addons issue's to build; the
//! `k8s-addon` label every object carries is what it will select on.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channel::{Channel, ChannelAddon};

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
}

impl Installed {
    fn of(a: &ChannelAddon) -> Installed {
        Installed {
            version: a.version.clone(),
            id: a.id.clone(),
            manifest_hash: a.manifest_hash.clone(),
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
    /// The cluster runs a higher version; left alone.
    NoDowngrade {
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
            return Decision::NoDowngrade {
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
    /// Objects applied.
    pub objects: usize,
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
struct Applier {
    client: kube::Client,
    kinds: HashMap<GroupVersionKind, (ApiResource, bool)>,
}

impl Applier {
    async fn resource(
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

/// Applies the rendered channel to the cluster; returns one outcome per
/// addon, in channel order.
pub async fn apply_channel(
    client: &kube::Client,
    rendered: &BTreeMap<String, String>,
) -> Result<Vec<Outcome>, InstallError> {
    let channel = read_channel(rendered)?;
    let recorded = installed(client).await?;
    let mut applier = Applier {
        client: client.clone(),
        kinds: HashMap::new(),
    };
    let mut out = Vec::new();
    for (addon, decision) in decide_all(&channel, &recorded) {
        let mut count = 0;
        if decision.applies() {
            let text = rendered.get(&addon.manifest).ok_or_else(|| {
                InstallError::Channel(format!(
                    "{} names {}, which was not rendered",
                    addon.name, addon.manifest
                ))
            })?;
            for obj in objects(&addon.manifest, text)? {
                applier.apply(obj, &addon.selector).await?;
                count += 1;
            }
            record(client, short_name(&addon.name), &Installed::of(&addon)).await?;
            tracing::info!(addon = %addon.name, version = %addon.version, objects = count, ?decision, "addon applied");
        }
        out.push(Outcome {
            name: short_name(&addon.name).to_string(),
            version: addon.version.clone(),
            decision,
            objects: count,
        });
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
                Decision::NoDowngrade {
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
