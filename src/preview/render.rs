//! A service's templates rendered with tera into the objects `up` applies.
//!
//! The variables are `image`, `tag`, `namespace`, `host`, `url`, `service`,
//! `replicas`, `branch_slug` and `branch`. All but `branch` are checked to be
//! plain tokens before they reach a template; `branch` (free text) renders
//! as a quoted YAML string (`"feature/x"`), so no branch name can change the
//! document's structure. Branch text never becomes template source.
//!
//! Every rendered object must be of a namespaced kind on the list below,
//! and in the preview's namespace (or none, which is then set): a template
//! cannot reach another namespace or a cluster-wide object.

use std::path::Path;

use kube::api::{ApiResource, DynamicObject};
use serde_json::Value;

/// The values the templates see.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Vars {
    /// Image reference.
    pub image: String,
    /// Its tag.
    pub tag: String,
    /// The preview namespace.
    pub namespace: String,
    /// The host name.
    pub host: String,
    /// The URL.
    pub url: String,
    /// The service.
    pub service: String,
    /// Replicas.
    pub replicas: i32,
    /// The branch, as the DNS-safe slug of the namespace.
    pub branch_slug: String,
    /// The branch, exactly (set by [`render`] as a quoted YAML string).
    pub branch: String,
}

/// The kinds a preview may hold: (apiVersion, kind, plural).
pub const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("batch/v1", "Job", "jobs"),
    ("batch/v1", "CronJob", "cronjobs"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
];

/// The API resource of a kind on the list.
pub fn resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (_, _, plural) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
    })
}

/// One rendered object and its API resource.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The object (namespace set).
    pub object: DynamicObject,
    /// Its resource.
    pub resource: ApiResource,
    /// The template it came from.
    pub file: String,
}

/// Renders the template `text` (named `file`) with `vars`, and checks
/// every object it makes.
pub fn render_text(text: &str, file: &str, vars: &Vars) -> Result<Vec<Rendered>, String> {
    let mut v = vars.clone();
    v.branch = serde_json::to_string(&vars.branch).unwrap_or_default();
    let ctx = tera::Context::from_serialize(&v).map_err(|e| format!("{file}: {e}"))?;
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_template(file, text)
        .map_err(|e| format!("{file}: {}", crate::cloud::error_chain(&e)))?;
    let out = tera
        .render(file, &ctx)
        .map_err(|e| format!("{file}: {}", crate::cloud::error_chain(&e)))?;
    let mut objects = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(&out).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("{file}: rendered document {}: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        objects.push(check(value, file, i + 1, &vars.namespace)?);
    }
    Ok(objects)
}

fn check(mut value: Value, file: &str, n: usize, namespace: &str) -> Result<Rendered, String> {
    let at = |msg: String| format!("{file}: rendered document {n}: {msg}");
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let Some(resource) = resource(&api_version, &kind) else {
        let allowed: Vec<String> = KINDS.iter().map(|(v, k, _)| format!("{v} {k}")).collect();
        return Err(at(format!(
            "{api_version} {kind} is not a kind a preview may hold ({})",
            allowed.join(", ")
        )));
    };
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    if !super::naming::is_label(name) && !super::config::is_dns_name(name) {
        return Err(at(format!("{kind} has no valid metadata.name (`{name}`)")));
    }
    match value["metadata"]["namespace"].as_str() {
        None => {}
        Some(ns) if ns == namespace => {}
        Some(ns) => {
            return Err(at(format!(
                "{kind} {name} names namespace {ns}; a preview's objects live in {namespace} (leave metadata.namespace out)"
            )));
        }
    }
    value["metadata"]["namespace"] = Value::String(namespace.to_string());
    let labels = &mut value["metadata"]["labels"];
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    labels[super::ledger::MANAGED_BY] = Value::String(super::ledger::MANAGED_BY_VALUE.into());
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|e| at(format!("{kind}: {e}")))?;
    Ok(Rendered {
        object,
        resource,
        file: file.to_string(),
    })
}

/// Renders every template of a service (paths relative to `root`).
pub fn render_files(
    root: &Path,
    files: &[std::path::PathBuf],
    vars: &Vars,
) -> Result<Vec<Rendered>, String> {
    let mut out = Vec::new();
    for f in files {
        let path = root.join(f);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read template {}: {}", path.display(), e))?;
        out.extend(render_text(&text, &f.display().to_string(), vars)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(branch: &str) -> Vars {
        Vars {
            image: "r.io/web:abc".into(),
            tag: "abc".into(),
            namespace: "shop-x".into(),
            host: "shop-x-web.preview.example.com".into(),
            url: "https://shop-x-web.preview.example.com".into(),
            service: "web".into(),
            replicas: 2,
            branch_slug: "x".into(),
            branch: branch.into(),
        }
    }

    const T: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    branch: {{ branch }}
spec:
  replicas: {{ replicas }}
  template:
    spec:
      containers:
      - name: web
        image: {{ image }}
---
apiVersion: v1
kind: Service
metadata:
  name: web
";

    #[test]
    fn objects_land_in_the_preview_namespace_with_our_label() {
        let r = render_text(T, "web.yml", &vars("feature/x")).unwrap();
        assert_eq!(r.len(), 2);
        let d = &r[0].object;
        assert_eq!(d.metadata.namespace.as_deref(), Some("shop-x"));
        assert_eq!(d.data["spec"]["replicas"], 2);
        assert_eq!(
            d.metadata.annotations.as_ref().unwrap()["branch"],
            "feature/x"
        );
        assert_eq!(
            d.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "clusterctl-preview"
        );
        assert_eq!(r[1].resource.plural, "services");
    }

    #[test]
    fn a_branch_cannot_change_the_document() {
        for b in [
            "x\nkind: ClusterRole",
            "x # comment",
            "x\"\nmetadata: {}",
            "{{ image }}",
            "{% raw %}",
            "' or '1'='1",
            "x: y",
            "- a",
            "123",
            "true",
        ] {
            let r = render_text(T, "web.yml", &vars(b)).unwrap();
            assert_eq!(r.len(), 2, "{b}");
            let d = &r[0].object;
            assert_eq!(d.metadata.annotations.as_ref().unwrap()["branch"], b, "{b}");
            assert_eq!(r[0].resource.kind, "Deployment");
        }
    }

    #[test]
    fn other_namespaces_and_cluster_kinds_are_refused() {
        let e = render_text(
            &T.replace(
                "  name: web\n  annotations",
                "  name: web\n  namespace: kube-system\n  annotations",
            ),
            "web.yml",
            &vars("x"),
        )
        .unwrap_err();
        assert!(e.contains("names namespace kube-system"), "{e}");
        let e = render_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: x\n", "r.yml", &vars("x")).unwrap_err();
        assert!(e.contains("r.yml: rendered document 1: rbac.authorization.k8s.io/v1 ClusterRoleBinding is not a kind"), "{e}");
        let e = render_text("{{ nope }}", "bad.yml", &vars("x")).unwrap_err();
        assert!(e.starts_with("bad.yml: "), "{e}");
    }
}
