//! Stripped reflectors: a component watches what it needs, narrowed by
//! selectors, and drops what it never reads before an object enters the
//! cache, so that memory stays low with many objects.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotations larger than this are dropped from cached objects.
pub const MAX_ANNOTATION_BYTES: usize = 256;

/// Drops managedFields and large annotations (such as
/// `kubectl.kubernetes.io/last-applied-configuration`).
pub fn strip_meta(m: &mut ObjectMeta) {
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|_, v| v.len() <= MAX_ANNOTATION_BYTES);
        if a.is_empty() {
            m.annotations = None;
        }
    }
}

/// [`strip_meta`] for any object (the strip function of most caches).
pub fn strip_object<K: kube::Resource>(k: &mut K) {
    strip_meta(k.meta_mut());
}

/// Drops from a Pod what scheduling decisions never read: its metadata's
/// bulk, container env, command, args, probes and volume mounts, and the
/// container statuses' details.
pub fn strip_pod(p: &mut Pod) {
    strip_meta(&mut p.metadata);
    if let Some(spec) = p.spec.as_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.env = None;
            c.env_from = None;
            c.command = None;
            c.args = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
            c.volume_mounts = None;
            c.lifecycle = None;
        }
        spec.volumes = None;
    }
    if let Some(st) = p.status.as_mut() {
        st.container_statuses = None;
        st.init_container_statuses = None;
        st.ephemeral_container_statuses = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_keeps_what_scheduling_reads() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p", "labels": { "app": "a" },
                "annotations": { "small": "x", "kubectl.kubernetes.io/last-applied-configuration": "y".repeat(4096) },
                "managedFields": [{ "manager": "kubectl" }],
            },
            "spec": {
                "nodeName": "n",
                "containers": [{ "name": "c", "image": "i", "command": ["sh"], "env": [{ "name": "A", "value": "1" }],
                                 "resources": { "requests": { "cpu": "100m" } } }],
            },
        }))
        .unwrap();
        strip_pod(&mut p);
        let v = serde_json::to_value(&p).unwrap();
        assert!(v["metadata"].get("managedFields").is_none());
        assert_eq!(
            v["metadata"]["annotations"],
            serde_json::json!({ "small": "x" })
        );
        assert_eq!(v["metadata"]["labels"]["app"], "a");
        let c = &v["spec"]["containers"][0];
        assert!(c.get("env").is_none() && c.get("command").is_none());
        assert_eq!(c["resources"]["requests"]["cpu"], "100m");
        assert_eq!(v["spec"]["nodeName"], "n");
    }
}
