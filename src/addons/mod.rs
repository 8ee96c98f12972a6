//! Addons: the catalogue (the manifests in `addons/`, embedded in the
//! binary, and the source channel `addons/bootstrap-channel.yaml` that
//! lists them) here, and rendering them for one cluster in [`channel`].

pub mod channel;
pub mod install;
pub mod prune;

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};

static ADDONS_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/addons");

/// Errors reading the embedded catalogue.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    /// The source channel is missing.
    #[error("the embedded addons/bootstrap-channel.yaml is missing")]
    NoChannel,
    /// The source channel does not parse.
    #[error("addons/bootstrap-channel.yaml: {0}")]
    Channel(#[source] serde_norway::Error),
    /// A manifest named by the channel is missing.
    #[error("addons/bootstrap-channel.yaml names {0}, which is not in addons/")]
    MissingManifest(String),
    /// A manifest template failed to render.
    #[error("rendering addons/{manifest}: {source}")]
    Template {
        /// The manifest path under addons/.
        manifest: String,
        /// The tera error.
        #[source]
        source: tera::Error,
    },
    /// A manifest is not UTF-8.
    #[error("addons/{0} is not UTF-8")]
    NotUtf8(String),
}

/// The source channel: `kind: Addons` with entries without hashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceChannel {
    kind: String,
    spec: SourceSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    addons: Vec<CatalogueEntry>,
}

/// One addon of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogueEntry {
    /// Short name, used in `spec.addons`.
    pub name: String,
    /// Upstream version of what it installs.
    pub version: String,
    /// Manifest id (file stem), e.g. `k8s-1.29`.
    pub id: String,
    /// Path of the manifest template under `addons/`.
    pub manifest: String,
    /// Semver range of Kubernetes versions it supports.
    pub kubernetes_version: String,
    /// For clusterctl's own components: the `spec.components` key that
    /// enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Installed in every cluster (part of how clusterctl runs one).
    #[serde(default)]
    pub required: bool,
    /// For a pod network: the `spec.cni` value that selects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<String>,
    /// Remove objects the addon no longer ships.
    #[serde(default)]
    pub prune: bool,
}

/// The embedded catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Entries in channel order.
    pub entries: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// Reads the catalogue embedded at build time.
    pub fn embedded() -> Result<Catalogue, AddonError> {
        let file = ADDONS_DIR
            .get_file("bootstrap-channel.yaml")
            .ok_or(AddonError::NoChannel)?;
        let text = file
            .contents_utf8()
            .ok_or_else(|| AddonError::NotUtf8("bootstrap-channel.yaml".into()))?;
        let ch: SourceChannel = serde_norway::from_str(text).map_err(AddonError::Channel)?;
        if ch.kind != "Addons" {
            return Err(AddonError::MissingManifest(
                "a channel of kind Addons".into(),
            ));
        }
        for e in &ch.spec.addons {
            if ADDONS_DIR.get_file(&e.manifest).is_none() {
                return Err(AddonError::MissingManifest(e.manifest.clone()));
            }
        }
        Ok(Catalogue {
            entries: ch.spec.addons,
        })
    }

    /// The first entry called `name`.
    pub fn addon(&self, name: &str) -> Option<&CatalogueEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry of `name` for Kubernetes `version`: as in kops channels,
    /// an addon can be listed once per range of Kubernetes versions, and
    /// the first entry whose range holds the version is the one installed.
    /// A version that does not parse takes the first entry.
    pub fn pick(&self, name: &str, version: &str) -> Option<&CatalogueEntry> {
        let v = semver::Version::parse(version.trim_start_matches('v')).ok();
        self.entries.iter().filter(|e| e.name == name).find(|e| {
            match (&v, semver::VersionReq::parse(&e.kubernetes_version)) {
                (Some(v), Ok(req)) => req.matches(v),
                _ => true,
            }
        })
    }

    /// One entry per addon name (in catalogue order) for Kubernetes
    /// `version` (see [`Catalogue::pick`]); names without an entry for it
    /// are left out.
    pub fn for_version(&self, version: &str) -> Vec<&CatalogueEntry> {
        let mut seen = std::collections::BTreeSet::new();
        self.entries
            .iter()
            .filter(|e| seen.insert(e.name.as_str()))
            .filter_map(|e| self.pick(&e.name, version))
            .collect()
    }

    /// Names of the addons a user may list (not the components).
    pub fn addon_names(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.component.is_none() && e.cni.is_none() && !e.required)
            .map(|e| e.name.as_str())
            .collect()
    }

    /// The manifest template of an entry.
    pub fn manifest(&self, entry: &CatalogueEntry) -> Result<&'static str, AddonError> {
        let f = ADDONS_DIR
            .get_file(&entry.manifest)
            .ok_or_else(|| AddonError::MissingManifest(entry.manifest.clone()))?;
        f.contents_utf8()
            .ok_or_else(|| AddonError::NotUtf8(entry.manifest.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_is_complete() {
        let c = Catalogue::embedded().unwrap();
        for name in ["cilium", "coredns", "metrics-server", "traefik"] {
            assert!(c.addon(name).is_some(), "{name}");
        }
        for comp in [
            "nodeAutoscaler",
            "queueAutoscaler",
            "janitor",
            "nodeCleanup",
            "preview",
        ] {
            assert!(
                c.entries
                    .iter()
                    .any(|e| e.component.as_deref() == Some(comp)),
                "{comp}"
            );
        }
        for e in &c.entries {
            semver::VersionReq::parse(&e.kubernetes_version).unwrap();
            assert!(!c.manifest(e).unwrap().is_empty());
        }
    }

    #[test]
    fn the_cloud_controller_manager_is_pinned_to_the_kubernetes_minor() {
        let c = Catalogue::embedded().unwrap();
        let ccm = |v: &str| {
            c.pick("aws-cloud-controller-manager", v)
                .map(|e| e.version.as_str())
        };
        assert_eq!(ccm("1.29.5"), Some("1.29.8"));
        assert_eq!(ccm("1.33.2"), Some("1.33.2"));
        assert_eq!(ccm("v1.34.1"), Some("1.34.0"));
        assert_eq!(ccm("1.35.0"), None);
        // One entry per name in for_version, in catalogue order.
        let names: Vec<&str> = c
            .for_version("1.31.0")
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        let ccms = names
            .iter()
            .filter(|n| **n == "aws-cloud-controller-manager")
            .count();
        assert_eq!(ccms, 1, "{names:?}");
        assert!(names.contains(&"aws-ebs-csi-driver"));
    }
}
