//! Listing what the rules may select: every list paginated (500 a page),
//! narrowed on the server where a selector can (Failed pods by
//! `status.phase`), each kind listed only when a rule needs it. Calls are
//! counted for the report and the benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde::de::DeserializeOwned;

use super::rules::RuleSet;
use super::select::{Annotated, Inventory};

/// Objects a page.
pub const PAGE: u32 = 500;

/// The kinds `--kinds` may name: plural[.group], its group, version, kind.
const KINDS: [(&str, &str, &str, &str); 12] = [
    ("configmaps", "", "v1", "ConfigMap"),
    ("secrets", "", "v1", "Secret"),
    ("services", "", "v1", "Service"),
    ("serviceaccounts", "", "v1", "ServiceAccount"),
    ("persistentvolumeclaims", "", "v1", "PersistentVolumeClaim"),
    ("pods", "", "v1", "Pod"),
    ("deployments", "apps", "v1", "Deployment"),
    ("statefulsets", "apps", "v1", "StatefulSet"),
    ("daemonsets", "apps", "v1", "DaemonSet"),
    ("jobs", "batch", "v1", "Job"),
    ("cronjobs", "batch", "v1", "CronJob"),
    ("ingresses", "networking.k8s.io", "v1", "Ingress"),
];

/// The API resource of a `--kinds` entry (`configmaps`, `deployments.apps`
/// or `Deployment`), or an error naming the known ones.
pub fn resource(name: &str) -> Result<ApiResource, String> {
    let n = name.trim().to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(plural, group, _, kind)| {
            n == *plural
                || n == kind.to_ascii_lowercase()
                || (!group.is_empty() && n == format!("{plural}.{group}"))
        })
        .map(|(plural, group, version, kind)| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
        })
        .ok_or_else(|| {
            format!(
                "--kinds: \"{name}\" is not a kind the janitor knows; known: {}",
                KINDS.map(|k| k.0).join(", ")
            )
        })
}

/// The resource of a kind by its name (`ReplicaSet`, `Namespace`).
pub fn resource_of_kind(kind: &str) -> ApiResource {
    match kind {
        "ReplicaSet" => ApiResource::erase::<ReplicaSet>(&()),
        "Namespace" => ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
        _ => resource(kind).unwrap_or_else(|_| ApiResource::erase::<Pod>(&())),
    }
}

/// A client that counts its list calls.
#[derive(Clone)]
pub struct Lister {
    client: kube::Client,
    /// Only these namespaces (and these namespaces themselves); empty: all.
    scope: Vec<String>,
    /// List calls made (one per page).
    pub calls: Arc<AtomicU64>,
}

impl Lister {
    /// Lists through `client`, in the namespaces of `scope` (every one when
    /// empty).
    pub fn new(client: kube::Client, scope: Vec<String>) -> Lister {
        Lister {
            client,
            scope,
            calls: Default::default(),
        }
    }

    /// Every object of a kind in the scope.
    async fn each<K>(&self, lp: ListParams) -> Result<Vec<K>, kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        if self.scope.is_empty() {
            return self.all(Api::<K>::all(self.client.clone()), lp).await;
        }
        let mut out = Vec::new();
        for ns in &self.scope {
            out.extend(
                self.all(Api::<K>::namespaced(self.client.clone(), ns), lp.clone())
                    .await?,
            );
        }
        Ok(out)
    }

    async fn each_dynamic(&self, ar: &ApiResource) -> Result<Vec<DynamicObject>, kube::Error> {
        let c = self.client.clone();
        if self.scope.is_empty() {
            return self.all(Api::all_with(c, ar), ListParams::default()).await;
        }
        let mut out = Vec::new();
        for ns in &self.scope {
            let (api, lp) = if ar.kind == "Namespace" {
                (
                    Api::all_with(c.clone(), ar),
                    ListParams::default().fields(&format!("metadata.name={ns}")),
                )
            } else {
                (
                    Api::namespaced_with(c.clone(), ns, ar),
                    ListParams::default(),
                )
            };
            out.extend(self.all(api, lp).await?);
        }
        Ok(out)
    }

    async fn all<K>(&self, api: Api<K>, lp: ListParams) -> Result<Vec<K>, kube::Error>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut out = Vec::new();
        let mut lp = lp.limit(PAGE);
        loop {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let page = api.list(&lp).await?;
            out.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => return Ok(out),
            }
        }
    }

    /// Lists what `rules` need, in every namespace.
    pub async fn inventory(&self, rules: &RuleSet) -> Result<Inventory, kube::Error> {
        let any = |f: &dyn Fn(&super::rules::Rules) -> bool| {
            f(&rules.default) || rules.namespaces.values().any(f)
        };
        let mut inv = Inventory::default();
        if any(&|r| r.replicasets.enabled) {
            inv.replicasets = self.each::<ReplicaSet>(ListParams::default()).await?;
            inv.deployments = self.each::<Deployment>(ListParams::default()).await?;
        }
        if any(&|r| r.jobs.enabled) {
            inv.jobs = self.each::<Job>(ListParams::default()).await?;
        }
        if any(&|r| r.pods.enabled) {
            inv.pods = self
                .each::<Pod>(ListParams::default().fields("status.phase=Failed"))
                .await?;
        }
        if any(&|r| r.ttl.enabled) {
            let mut kinds: Vec<String> = rules
                .namespaces
                .values()
                .chain(std::iter::once(&rules.default))
                .flat_map(|r| r.ttl.kinds.iter().cloned())
                .collect();
            kinds.sort();
            kinds.dedup();
            let mut resources = vec![resource_of_kind("Namespace")];
            for k in &kinds {
                let r = resource(k).map_err(|m| {
                    kube::Error::Api(Box::new(
                        kube::core::Status::failure(&m, "BadRequest").with_code(400),
                    ))
                })?;
                if !resources.iter().any(|x| x.kind == r.kind) {
                    resources.push(r);
                }
            }
            for ar in resources {
                for o in self.each_dynamic(&ar).await? {
                    inv.annotated.push(Annotated {
                        kind: ar.kind.clone(),
                        metadata: o.metadata,
                    });
                }
            }
        }
        Ok(inv)
    }
}
