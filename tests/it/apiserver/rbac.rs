//! The addons' RBAC, enforced on the components' own calls. A component's
//! client names it in its User-Agent (`clusterctl/<version> (<component>)`);
//! the server checks each such request against the rules that the
//! component's addon manifest binds to its service accounts, answers 403
//! as a real API server would when no rule allows it, and remembers the
//! violation so that the test fails. Every rule that allowed a call is
//! counted; at the end of a test binary's run, the rules no call used are
//! listed (see `scripts/lib/rbac_report.py`).
//!
//! Approximations, on the side of allowing: a Role's rules count in every
//! namespace (the tests run components in namespaces of their own, the
//! addons in kube-system); discovery (`/api`, `/apis`, `/version`) is
//! allowed, as the `system:discovery` ClusterRole allows it to everyone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{LazyLock, Mutex};

use serde_json::Value;

/// One policy rule, and where it comes from.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `ClusterRole clusterctl-janitor #2`.
    pub source: String,
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

/// A request, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// API group ("" for core).
    pub group: String,
    /// `pods`, or `deployments/scale`.
    pub resource: String,
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// The object's name, for requests on one object.
    pub name: Option<String>,
    /// The namespace, for namespaced requests.
    pub namespace: Option<String>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {} ({group})", self.verb, self.resource)?;
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        Ok(())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn any(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl Rule {
    fn allows(&self, a: &Access) -> bool {
        let names_ok = self.resource_names.is_empty()
            || a.name
                .as_ref()
                .is_some_and(|n| self.resource_names.contains(n));
        any(&self.api_groups, &a.group)
            && any(&self.resources, &a.resource)
            && any(&self.verbs, &a.verb)
            && names_ok
    }
}

/// What RBAC checks of a request; None for non-resource paths.
pub fn access(method: &str, path: &str, query: &str) -> Option<Access> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest): (&str, &[&str]) = match segs.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (g, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, more @ ..] if !more.is_empty() => (Some(ns.to_string()), more),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [] => return None,
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub, ..] => (*plural, Some(name.to_string()), Some(*sub)),
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    };
    // POST to a subresource creates it (pods/eviction); the name is the
    // parent's, which resourceNames may restrict.
    Some(Access {
        group: group.to_string(),
        resource: match sub {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_string(),
        },
        verb: verb.to_string(),
        name: if verb == "create" && sub.is_none() {
            None
        } else {
            name
        },
        namespace,
    })
}

/// Every component's rules, read from its rendered addon manifest.
pub struct Policies {
    /// component → its rules.
    pub rules: BTreeMap<String, Vec<Rule>>,
}

/// The addons' rules, rendered once per test binary.
pub static POLICIES: LazyLock<Policies> = LazyLock::new(Policies::load);

/// (component, rule source) pairs that allowed at least one call.
pub static USED: LazyLock<Mutex<BTreeSet<(String, String)>>> =
    LazyLock::new(|| Mutex::new(BTreeSet::new()));

/// The components whose addon is checked.
pub const COMPONENTS: &[&str] = &[
    "node-autoscaler",
    "queue-autoscaler",
    "janitor",
    "node-cleanup",
    "preview-gc",
];

impl Policies {
    fn load() -> Policies {
        // ha.yaml enables every component.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ha.yaml");
        let spec = clusterctl::spec::Spec::load(std::path::Path::new(path)).expect("ha.yaml loads");
        let rendered = clusterctl::addons::channel::render(&spec).expect("render addons");
        let mut rules = BTreeMap::new();
        for component in COMPONENTS {
            let (path, manifest) = rendered
                .iter()
                .find(|(p, _)| p.starts_with(&format!("{component}/")))
                .unwrap_or_else(|| panic!("no addon manifest for {component}"));
            rules.insert(component.to_string(), rules_of(path, manifest));
        }
        Policies { rules }
    }

    /// Checks one call of `component`: the rule that allows it, if any.
    pub fn check(&self, component: &str, a: &Access) -> Option<String> {
        self.rules
            .get(component)?
            .iter()
            .find(|r| r.allows(a))
            .map(|r| r.source.clone())
    }
}

/// The rules a manifest binds to its own service accounts.
fn rules_of(path: &str, manifest: &str) -> Vec<Rule> {
    use serde::Deserialize;
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(manifest)
        .filter_map(|d| serde_norway::Value::deserialize(d).ok())
        .filter_map(|v| serde_json::to_value(v).ok())
        .filter(|v| !v.is_null())
        .collect();
    let accounts: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceAccount")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    let mut bound = BTreeSet::new();
    for b in docs
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
    {
        let to_ours = b["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"].as_str().is_some_and(|n| accounts.contains(n))
        });
        if to_ours {
            bound.insert((
                b["roleRef"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                b["roleRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    let mut out = Vec::new();
    for r in docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
    {
        let kind = r["kind"].as_str().unwrap_or_default().to_string();
        let name = r["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !bound.contains(&(kind.clone(), name.clone())) {
            continue;
        }
        for (i, rule) in r["rules"].as_array().into_iter().flatten().enumerate() {
            out.push(Rule {
                source: format!(
                    "{path}: {kind} {name} rule {} ({}: {})",
                    i + 1,
                    strings(&rule["resources"]).join(","),
                    strings(&rule["verbs"]).join(",")
                ),
                api_groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
                resource_names: strings(&rule["resourceNames"]),
            });
        }
    }
    out
}

/// The component a User-Agent names: `clusterctl/<v> (<component>)`.
pub fn component_of(user_agent: &str) -> Option<&str> {
    let rest = user_agent.strip_prefix("clusterctl/")?;
    let inner = rest.split_once('(')?.1.strip_suffix(')')?;
    COMPONENTS.contains(&inner).then_some(inner)
}

/// Records a rule's use, and writes the usage file of this test binary
/// (one per process, rewritten as uses are added) for the report.
pub fn used(component: &str, source: &str) {
    let mut set = USED.lock().unwrap_or_else(|p| p.into_inner());
    if set.insert((component.to_string(), source.to_string())) {
        write_usage(&set);
    }
}

fn write_usage(set: &BTreeSet<(String, String)>) {
    let Some(dir) = option_env!("CARGO_TARGET_TMPDIR") else {
        return;
    };
    let dir = std::path::Path::new(dir).join("rbac-usage");
    let _ = std::fs::create_dir_all(&dir);
    let all: BTreeMap<&String, Vec<&String>> = POLICIES
        .rules
        .iter()
        .map(|(c, rules)| (c, rules.iter().map(|r| &r.source).collect()))
        .collect();
    let used: Vec<_> = set.iter().collect();
    let body = serde_json::json!({ "rules": all, "used": used });
    let file = dir.join(format!("{}.json", std::process::id()));
    let _ = std::fs::write(file, body.to_string());
}

#[test]
fn requests_map_to_what_rbac_checks() {
    let a = access(
        "GET",
        "/apis/apps/v1/namespaces/x/deployments",
        "watch=true&limit=5",
    )
    .unwrap();
    assert_eq!(
        (a.group.as_str(), a.resource.as_str(), a.verb.as_str()),
        ("apps", "deployments", "watch")
    );
    assert_eq!(a.namespace.as_deref(), Some("x"));
    let a = access(
        "PATCH",
        "/apis/apps/v1/namespaces/x/deployments/web/scale",
        "",
    )
    .unwrap();
    assert_eq!(
        (a.resource.as_str(), a.verb.as_str(), a.name.as_deref()),
        ("deployments/scale", "patch", Some("web"))
    );
    let a = access("POST", "/api/v1/namespaces/x/pods/p/eviction", "").unwrap();
    assert_eq!(
        (a.resource.as_str(), a.verb.as_str()),
        ("pods/eviction", "create")
    );
    let a = access("GET", "/api/v1/namespaces/kube-system", "").unwrap();
    assert_eq!(
        (
            a.resource.as_str(),
            a.verb.as_str(),
            a.name.as_deref(),
            a.namespace.as_deref()
        ),
        ("namespaces", "get", Some("kube-system"), None)
    );
    let a = access("DELETE", "/api/v1/namespaces/x/pods", "").unwrap();
    assert_eq!(a.verb, "deletecollection");
    let a = access("POST", "/api/v1/namespaces/x/events", "").unwrap();
    assert_eq!((a.verb.as_str(), a.name.as_deref()), ("create", None));
    assert!(access("GET", "/version", "").is_none());
    assert!(access("GET", "/apis", "").is_none());
    assert_eq!(component_of("clusterctl/0.1.0 (janitor)"), Some("janitor"));
    assert_eq!(component_of("kube-rs/1.0"), None);
    // Every component's addon grants something, but node cleanup's, which
    // talks only to the node's container runtime.
    for c in COMPONENTS {
        assert_eq!(POLICIES.rules[*c].is_empty(), *c == "node-cleanup", "{c}");
    }
    let janitor_lists_jobs = Access {
        group: "batch".into(),
        resource: "jobs".into(),
        verb: "list".into(),
        name: None,
        namespace: Some("x".into()),
    };
    assert!(POLICIES.check("janitor", &janitor_lists_jobs).is_some());
    let janitor_patches_jobs = Access {
        verb: "patch".into(),
        ..janitor_lists_jobs
    };
    assert!(POLICIES.check("janitor", &janitor_patches_jobs).is_none());
}
