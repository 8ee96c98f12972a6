//! Renders the addons of one cluster: the selected manifests from the
//! embedded catalogue, rendered with tera, and the kops-format bootstrap
//! channel that lists them with their SHA-256 hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tera::{Context, Tera};

use super::{AddonError, Catalogue};
use crate::spec::{ComponentsSpec, Spec};

/// One entry of the rendered channel (kops `spec.addons[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAddon {
    /// `<name>.addons.clusterctl.io`.
    pub name: String,
    /// Upstream version.
    pub version: String,
    /// Manifest id.
    pub id: String,
    /// Manifest path, relative to the channel.
    pub manifest: String,
    /// SHA-256 of the rendered manifest.
    pub manifest_hash: String,
    /// Labels every object of the addon carries.
    pub selector: BTreeMap<String, String>,
    /// Kubernetes versions it supports.
    pub kubernetes_version: String,
    /// Remove objects the addon no longer ships.
    pub prune: bool,
}

/// The rendered channel's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelMeta {
    /// `bootstrap`.
    pub name: String,
}

/// The rendered channel's spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelSpec {
    /// The addons, in apply order.
    pub addons: Vec<ChannelAddon>,
}

/// A rendered channel (kops' `Addons` format).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// `addons.clusterctl.io/v1alpha1`.
    pub api_version: String,
    /// `Addons`.
    pub kind: String,
    /// Metadata.
    pub metadata: ChannelMeta,
    /// The addons.
    pub spec: ChannelSpec,
}

fn component_enabled(c: &ComponentsSpec, key: &str) -> bool {
    match key {
        "nodeAutoscaler" => c.node_autoscaler.as_ref().and_then(|x| x.enabled),
        "queueAutoscaler" => c.queue_autoscaler.as_ref().and_then(|x| x.enabled),
        "janitor" => c.janitor.as_ref().and_then(|x| x.enabled),
        "nodeCleanup" => c.node_cleanup.as_ref().and_then(|x| x.enabled),
        "preview" => c.preview.as_ref().and_then(|x| x.enabled),
        _ => None,
    }
    .unwrap_or(false)
}

/// The tenth address of the service range: the kubelet's clusterDNS, as
/// kubeadm sets it, and so CoreDNS's Service address.
pub fn cluster_dns(service_cidr: Option<&str>) -> String {
    // The spec was validated: the range parses (the default is the fallback).
    let base = service_cidr
        .unwrap_or(crate::spec::defaults::SERVICE_CIDR)
        .parse::<ipnet::Ipv4Net>()
        .map(|n| n.network())
        .unwrap_or(std::net::Ipv4Addr::new(100, 64, 0, 0));
    std::net::Ipv4Addr::from(u32::from(base) + 10).to_string()
}

fn cni_name(c: crate::spec::Cni) -> &'static str {
    match c {
        crate::spec::Cni::Cilium => "cilium",
        crate::spec::Cni::None => "none",
    }
}

/// Every manifest template of the catalogue, parsed once per process.
static TEMPLATES: std::sync::LazyLock<Result<Tera, String>> = std::sync::LazyLock::new(|| {
    let cat = Catalogue::embedded().map_err(|e| e.to_string())?;
    let mut tera = Tera::default();
    for e in &cat.entries {
        let text = cat.manifest(e).map_err(|e| e.to_string())?;
        tera.add_raw_template(&e.manifest, text)
            .map_err(|err| format!("addons/{}: {err:?}", e.manifest))?;
    }
    Ok(tera)
});

/// Renders the addons of `spec`: path under `addons/` → content.
pub fn render(spec: &Spec) -> Result<BTreeMap<String, String>, AddonError> {
    let cat = Catalogue::embedded()?;
    let c = &spec.cluster;
    let comps = c.spec.components.clone().unwrap_or_default();
    let wanted: Vec<&str> = c.spec.addons.iter().flatten().map(String::as_str).collect();
    let mut ctx = Context::new();
    ctx.insert("cluster_name", &c.metadata.name);
    ctx.insert("region", &c.spec.region);
    ctx.insert("kubernetes_version", &c.spec.kubernetes_version);
    ctx.insert("dns_zone", &c.spec.dns_zone);
    ctx.insert("pod_cidr", &c.spec.pod_cidr);
    ctx.insert("state_store", &c.spec.state_store);
    ctx.insert(
        "api_port",
        &c.spec.api.as_ref().and_then(|a| a.port).unwrap_or(443),
    );
    ctx.insert("cluster_dns", &cluster_dns(c.spec.service_cidr.as_deref()));
    ctx.insert("components", &comps);
    ctx.insert(
        "image",
        comps
            .image
            .as_deref()
            .unwrap_or(crate::spec::defaults::COMPONENT_IMAGE),
    );
    let autoscaled: Vec<&str> = spec
        .groups
        .iter()
        .filter(|g| g.spec.autoscaler.as_ref().and_then(|a| a.enabled) == Some(true))
        .map(|g| g.metadata.name.as_str())
        .collect();
    ctx.insert("autoscaled_groups", &autoscaled);
    let control_planes: u32 = spec
        .groups
        .iter()
        .filter(|g| g.spec.role == crate::spec::Role::ControlPlane)
        .map(|g| g.spec.min_size)
        .sum();
    ctx.insert("control_planes", &control_planes);

    let mut out = BTreeMap::new();
    let mut entries = Vec::new();
    for e in cat.for_version(&c.spec.kubernetes_version) {
        let include = match (&e.component, &e.cni) {
            _ if e.required => true,
            (Some(key), _) => component_enabled(&comps, key),
            (None, Some(cni)) => c.spec.cni.is_some_and(|chosen| cni_name(chosen) == cni),
            (None, None) => wanted.contains(&e.name.as_str()),
        };
        if !include {
            continue;
        }
        let tera = TEMPLATES.as_ref().map_err(|msg| AddonError::Template {
            manifest: e.manifest.clone(),
            source: tera::Error::msg(msg.clone()),
        })?;
        // The entry's own version (an image tag pinned per Kubernetes minor).
        ctx.insert("addon_version", &e.version);
        let mut text = tera
            .render(&e.manifest, &ctx)
            .map_err(|source| AddonError::Template {
                manifest: e.manifest.clone(),
                source,
            })?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let path = format!("{}/{}.yaml", e.name, e.id);
        let selector_value = format!("{}.addons.clusterctl.io", e.name);
        entries.push(ChannelAddon {
            name: selector_value.clone(),
            version: e.version.clone(),
            id: e.id.clone(),
            manifest: path.clone(),
            manifest_hash: hex::encode(Sha256::digest(text.as_bytes())),
            selector: BTreeMap::from([("k8s-addon".to_string(), selector_value)]),
            kubernetes_version: e.kubernetes_version.clone(),
            prune: e.prune,
        });
        out.insert(path, text);
    }
    let channel = Channel {
        api_version: "addons.clusterctl.io/v1alpha1".into(),
        kind: "Addons".into(),
        metadata: ChannelMeta {
            name: "bootstrap".into(),
        },
        spec: ChannelSpec { addons: entries },
    };
    out.insert(
        "bootstrap-channel.yaml".into(),
        crate::spec::to_yaml(&channel),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_dns_is_the_tenth_address_of_the_service_range() {
        assert_eq!(cluster_dns(Some("100.64.0.0/13")), "100.64.0.10");
        assert_eq!(cluster_dns(Some("10.96.0.0/12")), "10.96.0.10");
        assert_eq!(cluster_dns(None), "100.64.0.10");
    }
}
