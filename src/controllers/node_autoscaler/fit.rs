//! Whether a pod may run on a node (or on a new node of a group), as the
//! scheduler's filters decide it: node selector, required node affinity,
//! taints and tolerations, the zone of a bound volume, and resources.

use std::collections::BTreeMap;

use super::model::{PodInfo, Requirement, Taint, Toleration};
use super::resources::Resources;

/// The zone label every node carries.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Why a pod does not fit, for the NotTriggerScaleUp reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// A nodeSelector label differs or is missing.
    Selector(String),
    /// No required affinity term matches.
    Affinity,
    /// A taint it does not tolerate.
    Taint(String),
    /// Bound to a volume in another zone.
    Zone(String),
    /// Larger than an empty node.
    TooBig(Vec<String>),
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misfit::Selector(k) => write!(f, "node selector {k} does not match"),
            Misfit::Affinity => write!(f, "no required node affinity term matches"),
            Misfit::Taint(t) => write!(f, "taint {t} is not tolerated"),
            Misfit::Zone(z) => write!(f, "its volume is in {z}"),
            Misfit::TooBig(what) => write!(f, "too big: {}", what.join(", ")),
        }
    }
}

/// Whether `t` tolerates `taint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    match t.operator.as_deref() {
        Some("Exists") => {
            effect_ok
                && t.key
                    .as_deref()
                    .is_none_or(|k| k.is_empty() || k == taint.key)
        }
        _ => {
            effect_ok
                && t.key.as_deref() == Some(taint.key.as_str())
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
    }
}

/// Whether `labels` satisfy `r` (In, NotIn, Exists, DoesNotExist, Gt, Lt).
pub fn requirement(r: &Requirement, labels: &BTreeMap<String, String>) -> bool {
    let v = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => v.is_some_and(|v| r.values.contains(v)),
        "NotIn" => v.is_none_or(|v| !r.values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                v.and_then(|v| v.parse::<i64>().ok()),
                r.values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// The placement rules alone (not resources): `None` when `pod` may run on
/// a node with `labels` and `taints`.
pub fn placement(
    pod: &PodInfo,
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> Option<Misfit> {
    for (k, v) in &pod.node_selector {
        if labels.get(k) != Some(v) {
            return Some(Misfit::Selector(format!("{k}={v}")));
        }
    }
    if !pod.affinity.is_empty()
        && !pod
            .affinity
            .iter()
            .any(|term| term.iter().all(|r| requirement(r, labels)))
    {
        return Some(Misfit::Affinity);
    }
    if let Some(z) = &pod.volume_zone
        && labels.get(ZONE_LABEL) != Some(z)
    {
        return Some(Misfit::Zone(z.clone()));
    }
    for taint in taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        if !pod.tolerations.iter().any(|t| tolerates(t, taint)) {
            return Some(Misfit::Taint(format!(
                "{}{}:{}",
                taint.key,
                taint
                    .value
                    .as_deref()
                    .map(|v| format!("={v}"))
                    .unwrap_or_default(),
                taint.effect
            )));
        }
    }
    None
}

/// Placement and resources: `None` when `pod` fits a node with `labels`,
/// `taints` and `free` resources left (of `allocatable`, for the reason).
pub fn fits(
    pod: &PodInfo,
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
    free: &Resources,
    allocatable: &Resources,
) -> Option<Misfit> {
    if let Some(m) = placement(pod, labels, taints) {
        return Some(m);
    }
    if !pod.requests.fits_in(allocatable) {
        return Some(Misfit::TooBig(pod.requests.exceeding(allocatable)));
    }
    if !pod.requests.fits_in(free) {
        // Fits an empty node, not this one: not a reason to report.
        return Some(Misfit::TooBig(vec![]));
    }
    None
}
