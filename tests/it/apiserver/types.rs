//! The resource types the test API server serves. Adding one is one line.

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name (the URL segment).
    pub plural: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Subresources: `status`, `scale`, `eviction`.
    pub subresources: &'static [&'static str],
}

const fn rt(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    subresources: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        namespaced,
        subresources,
    }
}

/// Every served type.
pub const TYPES: &[ResourceType] = &[
    rt("", "v1", "Namespace", "namespaces", false, &["status"]),
    rt("", "v1", "Node", "nodes", false, &["status"]),
    rt("", "v1", "Pod", "pods", true, &["status", "eviction"]),
    rt("", "v1", "Service", "services", true, &["status"]),
    rt("", "v1", "ConfigMap", "configmaps", true, &[]),
    rt("", "v1", "Secret", "secrets", true, &[]),
    rt("", "v1", "Event", "events", true, &[]),
    rt("", "v1", "ServiceAccount", "serviceaccounts", true, &[]),
    rt(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["status"],
    ),
    rt("", "v1", "LimitRange", "limitranges", true, &[]),
    rt(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["status"],
    ),
    rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["status"],
    ),
    rt(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["status", "scale"],
    ),
    rt(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["status", "scale"],
    ),
    rt(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["status", "scale"],
    ),
    rt("apps", "v1", "DaemonSet", "daemonsets", true, &["status"]),
    rt("batch", "v1", "Job", "jobs", true, &["status"]),
    rt("batch", "v1", "CronJob", "cronjobs", true, &["status"]),
    rt(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["status"],
    ),
    rt(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
        &[],
    ),
    rt(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["status"],
    ),
    rt("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
    rt(
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        false,
        &[],
    ),
    rt(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &[],
    ),
    rt(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["status"],
    ),
    rt("events.k8s.io", "v1", "Event", "events", true, &[]),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
    ),
];

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as the real server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the type has a subresource.
    pub fn has(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// The type's index in [`TYPES`].
    pub fn index_of(group: &str, version: &str, plural: &str) -> Option<usize> {
        TYPES
            .iter()
            .position(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The index of a kind in an apiVersion.
    pub fn index_of_kind(api_version: &str, kind: &str) -> Option<usize> {
        TYPES
            .iter()
            .position(|t| t.api_version() == api_version && t.kind == kind)
    }
}
