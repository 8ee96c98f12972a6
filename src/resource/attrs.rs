//! The comparable form of a resource: a flat, sorted map of attribute →
//! string, with references written as the referenced resource's address.
//! The desired side comes from the model (`model::attrs`); each cloud
//! implementation builds the same map from what it describes, so the diff
//! is generic.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Attribute → value.
pub type Attrs = BTreeMap<String, String>;

/// A digest of large content (user data, object bodies).
pub fn digest(s: &str) -> String {
    format!(
        "sha256:{}",
        &hex::encode(Sha256::digest(s.as_bytes()))[..16]
    )
}

/// A policy document in canonical form (compact, object keys sorted), so
/// neither formatting nor key order (Terraform's `jsonencode` sorts keys, we
/// write them in AWS's documented order) ever shows as a change.
pub fn canonical_json(s: &str) -> String {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<(String, serde_json::Value)> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    serde_json::from_str::<serde_json::Value>(s)
        .map(|v| sorted(v).to_string())
        .unwrap_or_else(|_| s.to_string())
}

pub(crate) fn set(a: &mut Attrs, k: &str, v: impl ToString) {
    a.insert(k.to_string(), v.to_string());
}

/// Tags as `tags.<key>` attributes.
pub fn tags(a: &mut Attrs, prefix: &str, t: &BTreeMap<String, String>) {
    for (k, v) in t {
        a.insert(format!("{prefix}.{k}"), v.clone());
    }
}

/// Sorted, comma-joined list.
pub fn list<I: IntoIterator<Item = S>, S: ToString>(items: I) -> String {
    let mut v: Vec<String> = items.into_iter().map(|s| s.to_string()).collect();
    v.sort();
    v.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_layout_and_key_order() {
        let a = canonical_json(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["a", "b"]}]}"#,
        );
        let b = canonical_json(
            r#"{"Statement":[{"Action":["a","b"],"Effect":"Allow"}],"Version":"2012-10-17"}"#,
        );
        assert_eq!(a, b);
        // Array order is meaning, not layout.
        let c = canonical_json(
            r#"{"Statement":[{"Action":["b","a"],"Effect":"Allow"}],"Version":"2012-10-17"}"#,
        );
        assert_ne!(a, c);
    }
}
