//! Every object of every rendered addon manifest is a typed Kubernetes
//! object: it deserializes into its k8s-openapi type, and serializing that
//! back gives the same document, so no field is misspelt, misplaced or of
//! the wrong type (serde would drop an unknown field silently; the round
//! trip catches it).

use std::collections::BTreeMap;

use clusterctl::{model, render, spec::Spec};
use k8s_openapi::api::{apps, batch, core, networking, policy, rbac};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apireg;
use serde_json::Value;

use crate::support::root;

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn typed(v: &Value) -> Result<Value, String> {
    let key = format!(
        "{} {}",
        v["apiVersion"].as_str().unwrap_or_default(),
        v["kind"].as_str().unwrap_or_default()
    );
    match key.as_str() {
        "v1 ConfigMap" => round_trip::<core::v1::ConfigMap>(v),
        "v1 Namespace" => round_trip::<core::v1::Namespace>(v),
        "v1 Service" => round_trip::<core::v1::Service>(v),
        "v1 ServiceAccount" => round_trip::<core::v1::ServiceAccount>(v),
        "apps/v1 Deployment" => round_trip::<apps::v1::Deployment>(v),
        "apps/v1 DaemonSet" => round_trip::<apps::v1::DaemonSet>(v),
        "batch/v1 CronJob" => round_trip::<batch::v1::CronJob>(v),
        "policy/v1 PodDisruptionBudget" => round_trip::<policy::v1::PodDisruptionBudget>(v),
        "networking.k8s.io/v1 IngressClass" => round_trip::<networking::v1::IngressClass>(v),
        "rbac.authorization.k8s.io/v1 ClusterRole" => round_trip::<rbac::v1::ClusterRole>(v),
        "rbac.authorization.k8s.io/v1 ClusterRoleBinding" => {
            round_trip::<rbac::v1::ClusterRoleBinding>(v)
        }
        "rbac.authorization.k8s.io/v1 Role" => round_trip::<rbac::v1::Role>(v),
        "rbac.authorization.k8s.io/v1 RoleBinding" => round_trip::<rbac::v1::RoleBinding>(v),
        "apiregistration.k8s.io/v1 APIService" => round_trip::<apireg::APIService>(v),
        "storage.k8s.io/v1 CSIDriver" => round_trip::<k8s_openapi::api::storage::v1::CSIDriver>(v),
        "storage.k8s.io/v1 StorageClass" => {
            round_trip::<k8s_openapi::api::storage::v1::StorageClass>(v)
        }
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy" => {
            round_trip::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy>(v)
        }
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding" => round_trip::<
            k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        >(v),
        other => Err(format!("no typed check for `{other}`: add it here")),
    }
}

/// Where `a` and `b` differ, as field paths.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => differences(&format!("{path}.{k}"), v, w, out),
                    None if v.is_null() => {}
                    None => out.push(format!("{path}.{k}: dropped (not a field of the type)")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}: added"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {a} became {b}")),
    }
}

#[test]
fn every_addon_object_is_a_typed_kubernetes_object() {
    let spec = Spec::load(&root().join("examples/ha.yaml")).unwrap();
    let r = render::render(&model::build(&spec).unwrap()).unwrap();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, text) in &r.files {
        if !file.starts_with("addons/")
            || file.ends_with("bootstrap-channel.yaml")
            || !file.ends_with(".yaml")
        {
            continue;
        }
        for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let what = format!(
                "{file} document {} ({} {})",
                i + 1,
                v["kind"],
                v["metadata"]["name"]
            );
            *kinds
                .entry(v["kind"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
            match typed(&v) {
                Ok(back) => {
                    let mut d = Vec::new();
                    differences("", &v, &back, &mut d);
                    problems.extend(d.into_iter().map(|p| format!("{what}: {p}")));
                }
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(kinds.len() >= 12 && kinds["Deployment"] >= 4, "{kinds:?}");
}
