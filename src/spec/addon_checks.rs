//! The spec's addon checks, against the embedded catalogue: listed addons
//! exist, are not components, and have an entry for the Kubernetes version;
//! so do the required addons and the chosen pod network.

use std::collections::BTreeSet;

use super::values::{kubernetes_version, parse_version};
use super::{ClusterSpec, DocRef, Reader};

/// Reports every addon problem of `s` (a cluster at `d`).
pub(super) fn check(r: &mut Reader, d: &DocRef, s: &ClusterSpec) {
    if let Ok(cat) = crate::addons::Catalogue::embedded() {
        let mut seen = BTreeSet::new();
        for (i, a) in s.addons.iter().flatten().enumerate() {
            let p = format!("spec.addons[{i}]");
            if !seen.insert(a) {
                r.report(
                    d,
                    &p,
                    format!("addon `{a}` is listed twice"),
                    "list each addon once",
                );
                continue;
            }
            match cat.addon(a) {
                None => r.report(
                    d,
                    &p,
                    format!("unknown addon `{a}`"),
                    format!("use one of: {}", cat.addon_names().join(", ")),
                ),
                Some(entry) if entry.component.is_some() => r.report(
                    d,
                    &p,
                    format!("`{a}` is a clusterctl component"),
                    "enable it under spec.components instead of spec.addons",
                ),
                Some(_) => {
                    if let Ok(v) = parse_version(&s.kubernetes_version)
                        && cat.pick(a, &s.kubernetes_version).is_none()
                    {
                        r.report(
                            d,
                            &p,
                            format!("addon `{a}` needs Kubernetes {}, not {v}", ranges(&cat, a)),
                            "remove the addon or change spec.kubernetesVersion",
                        );
                    }
                }
            }
        }
    }
    // The addons every cluster runs (the cloud controller manager, the EBS
    // CSI driver) must have an entry for the version.
    if let (Ok(cat), Ok(v), Ok(())) = (
        crate::addons::Catalogue::embedded(),
        parse_version(&s.kubernetes_version),
        kubernetes_version(&s.kubernetes_version),
    ) {
        let mut seen = BTreeSet::new();
        for e in cat.entries.iter().filter(|e| e.required) {
            if seen.insert(e.name.as_str()) && cat.pick(&e.name, &s.kubernetes_version).is_none() {
                r.report(
                    d,
                    "spec.kubernetesVersion",
                    format!(
                        "clusterctl ships {} for Kubernetes {}, not {v}",
                        e.name,
                        ranges(&cat, &e.name)
                    ),
                    "use a Kubernetes version it ships every required addon for",
                );
            }
        }
    }
    // (Only for a version clusterctl supports at all: one problem at a time.)
    if let (Ok(cat), Some(cni), Ok(())) = (
        crate::addons::Catalogue::embedded(),
        s.cni,
        kubernetes_version(&s.kubernetes_version),
    ) {
        let name = match cni {
            crate::spec::Cni::Cilium => "cilium",
            crate::spec::Cni::None => "none",
        };
        if let Some(entry) = cat.entries.iter().find(|e| e.cni.as_deref() == Some(name))
            && let (Ok(v), Ok(req)) = (
                parse_version(&s.kubernetes_version),
                semver::VersionReq::parse(&entry.kubernetes_version),
            )
            && !req.matches(&v)
        {
            r.report(
                d,
                "spec.kubernetesVersion",
                format!(
                    "the pod network, {name} {}, supports Kubernetes {}, not {v}",
                    entry.version, entry.kubernetes_version
                ),
                "use a version it supports, or set `cni: none` and install a pod network yourself",
            );
        }
    }
}

/// The Kubernetes versions the catalogue has an addon for, for messages:
/// its one range, or the minors its entries cover (`1.29 to 1.34`).
fn ranges(cat: &crate::addons::Catalogue, name: &str) -> String {
    let entries: Vec<_> = cat.entries.iter().filter(|e| e.name == name).collect();
    if let [one] = entries.as_slice() {
        return one.kubernetes_version.clone();
    }
    let minors: Vec<u64> = (0..100)
        .filter(|m| cat.pick(name, &format!("1.{m}.0")).is_some())
        .collect();
    match (minors.first(), minors.last()) {
        (Some(lo), Some(hi)) => format!("1.{lo} to 1.{hi}"),
        _ => "no version".into(),
    }
}
