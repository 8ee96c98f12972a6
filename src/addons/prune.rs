//! Pruning: the objects an addon no longer ships are deleted, as kops'
//! channels do with an addon's `prune` section. An object is pruned only
//! when all of these hold:
//! - it carries the addon's selector label (`k8s-addon: <name>.addons.clusterctl.io`);
//! - clusterctl applied it (an `Apply` entry of field manager `clusterctl`
//!   in its managedFields), so a label copied onto someone else's object
//!   does not make it ours;
//! - it is not in the addon's current manifest.
//!
//! The kinds listed are the addon's current kinds and the kinds recorded
//! when it was last installed, so an addon that stops shipping a whole kind
//! still has its old objects found. Deletes name the uid seen in the list
//! (an object replaced since is kept) and propagate in the background.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions, PropagationPolicy};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde::Serialize;

use super::install::{Applier, FIELD_MANAGER, InstallError};

/// An object, by the coordinates that name it in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjRef {
    /// `group/version`, or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, for namespaced kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjRef {
    /// The identity used to compare objects: the group (not the version,
    /// one object is served at several), kind, namespace and name.
    fn identity(&self) -> (String, String, Option<String>, String) {
        let group = self
            .api_version
            .rsplit_once('/')
            .map(|(g, _)| g.to_string())
            .unwrap_or_default();
        (
            group,
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }
}

impl std::fmt::Display for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// `apps/v1/Deployment` (or `v1/ConfigMap`): how a kind is recorded.
pub fn kind_key(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{}/{}", gvk.version, gvk.kind)
    } else {
        format!("{}/{}/{}", gvk.group, gvk.version, gvk.kind)
    }
}

fn parse_kind_key(key: &str) -> Option<GroupVersionKind> {
    let (api_version, kind) = key.rsplit_once('/')?;
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    (!kind.is_empty() && !version.is_empty()).then(|| GroupVersionKind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    })
}

/// An object found for pruning.
#[derive(Debug, Clone)]
pub struct Prunable {
    /// What it is.
    pub obj: ObjRef,
    uid: String,
    resource: ApiResource,
}

/// What a look for an addon's stale objects found.
#[derive(Debug, Clone, Default)]
pub struct Stale {
    /// Ours and no longer shipped: deleted by apply.
    pub prune: Vec<Prunable>,
    /// Labelled as the addon's, not shipped, but not applied by clusterctl:
    /// kept, and reported.
    pub foreign: Vec<ObjRef>,
}

fn applied_by_us(o: &DynamicObject) -> bool {
    o.metadata.managed_fields.iter().flatten().any(|e| {
        e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
    })
}

/// Finds the objects labelled `selector` (of the given kinds) that are not
/// in `keep`.
pub(super) async fn find(
    applier: &mut Applier,
    selector: &str,
    kinds: &BTreeSet<String>,
    keep: &BTreeSet<ObjRef>,
) -> Result<Stale, InstallError> {
    let keep: BTreeSet<_> = keep.iter().map(ObjRef::identity).collect();
    let mut out = Stale::default();
    for key in kinds {
        let Some(gvk) = parse_kind_key(key) else {
            continue;
        };
        // A kind the cluster no longer serves has no objects left to prune.
        let Ok((ar, namespaced)) = applier.resource(&gvk).await else {
            tracing::warn!(kind = %key, "not served by the cluster; nothing of it to prune");
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(applier.client.clone(), &ar);
        let mut params = ListParams::default().labels(selector).limit(500);
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|source| InstallError::Api {
                    what: format!("listing {} labelled {selector}", gvk.kind),
                    source,
                })?;
            for o in &page.items {
                let obj = ObjRef {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    namespace: if namespaced {
                        o.metadata.namespace.clone()
                    } else {
                        None
                    },
                    name: o.metadata.name.clone().unwrap_or_default(),
                };
                if keep.contains(&obj.identity()) || o.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if applied_by_us(o) {
                    out.prune.push(Prunable {
                        obj,
                        uid: o.metadata.uid.clone().unwrap_or_default(),
                        resource: ar.clone(),
                    });
                } else {
                    out.foreign.push(obj);
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => params = params.continue_token(&c),
                None => break,
            }
        }
    }
    out.prune.sort_by_key(|p| p.obj.to_string());
    out.foreign.sort_by_key(ToString::to_string);
    Ok(out)
}

/// Deletes what [`find`] chose; returns what was deleted (an object
/// already gone, or replaced since it was listed, is not).
pub(super) async fn delete(
    client: &kube::Client,
    prunable: &[Prunable],
) -> Result<Vec<ObjRef>, InstallError> {
    let mut deleted = Vec::new();
    for p in prunable {
        let api: Api<DynamicObject> = match &p.obj.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &p.resource),
            None => Api::all_with(client.clone(), &p.resource),
        };
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(p.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&p.obj.name, &params).await {
            Ok(_) => {
                tracing::info!(object = %p.obj, "pruned");
                deleted.push(p.obj.clone());
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::warn!(object = %p.obj, "replaced since it was listed; kept");
            }
            Err(source) => {
                return Err(InstallError::Api {
                    what: format!("pruning {}", p.obj),
                    source,
                });
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_recorded_and_read_back() {
        for (g, v, k, key) in [
            ("apps", "v1", "Deployment", "apps/v1/Deployment"),
            ("", "v1", "ConfigMap", "v1/ConfigMap"),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "rbac.authorization.k8s.io/v1/ClusterRole",
            ),
        ] {
            let gvk = GroupVersionKind {
                group: g.into(),
                version: v.into(),
                kind: k.into(),
            };
            assert_eq!(kind_key(&gvk), key);
            assert_eq!(parse_kind_key(key), Some(gvk));
        }
        assert_eq!(parse_kind_key("Deployment"), None);
        assert_eq!(parse_kind_key("v1/"), None);
    }

    #[test]
    fn identity_ignores_the_version() {
        let a = ObjRef {
            api_version: "policy/v1".into(),
            kind: "PodDisruptionBudget".into(),
            namespace: Some("kube-system".into()),
            name: "x".into(),
        };
        let b = ObjRef {
            api_version: "policy/v1beta1".into(),
            ..a.clone()
        };
        assert_eq!(a.identity(), b.identity());
        let c = ObjRef {
            namespace: Some("default".into()),
            ..a.clone()
        };
        assert_ne!(a.identity(), c.identity());
        assert_eq!(a.to_string(), "PodDisruptionBudget kube-system/x");
    }
}
