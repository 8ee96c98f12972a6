//! Names, labels and tags, following kops: Terraform labels are the AWS
//! name with `.` → `-` and `/` → `--`; names over an AWS limit are cut and
//! given a short stable hash suffix.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Tag carrying the cluster name (kops: `KubernetesCluster`).
pub const TAG_CLUSTER: &str = "KubernetesCluster";
/// Tag carrying the instance group of an ASG or instance.
pub const TAG_INSTANCE_GROUP: &str = "clusterctl.io/instancegroup";
/// Tag carrying the instance role.
pub const TAG_ROLE: &str = "clusterctl.io/role";

/// The internal API name every instance uses (kops' `api.internal.<cluster>`).
pub fn api_internal_name(cluster: &str) -> String {
    format!("api.internal.{cluster}")
}
/// Prefix of the cluster-autoscaler node-template label tags.
pub const TAG_NODE_TEMPLATE_LABEL: &str = "k8s.io/cluster-autoscaler/node-template/label/";
/// Prefix of the cluster-autoscaler node-template taint tags.
pub const TAG_NODE_TEMPLATE_TAINT: &str = "k8s.io/cluster-autoscaler/node-template/taint/";
/// Marks an ASG for autoscaler discovery.
pub const TAG_AUTOSCALER_ENABLED: &str = "k8s.io/cluster-autoscaler/enabled";
/// Zone balancing preference of a group (read by clusterctl's node autoscaler).
pub const TAG_AUTOSCALER_BALANCE: &str = "clusterctl.io/autoscaler/balance-zones";
/// Priority expander weight of a group.
pub const TAG_AUTOSCALER_PRIORITY: &str = "clusterctl.io/autoscaler/priority";

/// The ownership tag key: `kubernetes.io/cluster/<name>`.
pub fn ownership_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// The Terraform label for an AWS name.
pub fn tf_label(name: &str) -> String {
    let s = name.replace('/', "--").replace(['.', ' ', ':', '*'], "-");
    if s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s
    } else {
        format!("_{s}")
    }
}

/// Cuts `name` to at most `max` characters, replacing the tail with `-` and
/// the first 8 hex digits of its SHA-256 so that cut names stay unique.
pub fn limit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let keep = max.saturating_sub(9);
    let head: String = name.chars().take(keep).collect();
    let head = head.trim_end_matches(['-', '.']);
    format!("{head}-{}", &hash[..8])
}

/// Like [`limit`], for names that allow only letters, digits and `-`
/// (load balancers and target groups, at most 32 characters).
pub fn limit_alnum(name: &str, max: usize) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let out = limit(&clean, max);
    out.trim_matches('-').to_string()
}

/// The tags every resource of the cluster carries.
pub fn base_tags(
    cluster: &str,
    name: &str,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut t = user.clone();
    t.insert(TAG_CLUSTER.to_string(), cluster.to_string());
    t.insert("Name".to_string(), name.to_string());
    t.insert(ownership_tag(cluster), "owned".to_string());
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_like_kops() {
        assert_eq!(tf_label("nodes.ha.example.com"), "nodes-ha-example-com");
        assert_eq!(tf_label("a/b"), "a--b");
        assert_eq!(tf_label("1a"), "_1a");
    }

    #[test]
    fn short_names_unchanged() {
        assert_eq!(limit("api-x", 32), "api-x");
    }

    proptest! {
        #[test]
        fn limited_names_fit_and_are_stable(name in "[a-z0-9.-]{1,120}", max in 12usize..64) {
            let a = limit(&name, max);
            prop_assert!(a.len() <= max);
            prop_assert_eq!(&a, &limit(&name, max));
            let b = limit_alnum(&name, max);
            prop_assert!(b.len() <= max);
            prop_assert!(b.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }

        #[test]
        fn distinct_long_names_stay_distinct(a in "[a-z]{40,60}", b in "[a-z]{40,60}") {
            prop_assume!(a != b);
            prop_assert_ne!(limit(&a, 32), limit(&b, 32));
        }
    }
}
