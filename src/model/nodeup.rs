//! The instance bootstrap script (cloud-init user data), rendered from
//! `nodeup.sh.tera`. It holds no secrets: instances fetch the cluster CA,
//! keys and bootstrap token from the state store at boot with their
//! instance role, as kops nodes do.

use std::collections::HashMap;
use std::sync::LazyLock;

use tera::{Context, Tera, Value};

use crate::spec::validate::parse_taint;
use crate::spec::{InstanceGroup, Role, Spec};

const TEMPLATE: &str = include_str!("nodeup.sh.tera");

/// Quotes a value for POSIX shell: `'…'` with embedded quotes escaped.
fn shell_quote(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(Value::String(format!("'{}'", s.replace('\'', "'\\''"))))
}

/// The parsed template, once per process (parsing costs more than rendering).
static NODEUP: LazyLock<Result<Tera, String>> = LazyLock::new(|| {
    let mut tera = Tera::default();
    tera.register_filter("shq", shell_quote);
    tera.add_raw_template("nodeup.sh", TEMPLATE)
        .map_err(|e| format!("{e:?}"))?;
    Ok(tera)
});

/// The API endpoints an instance knows.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints<'a> {
    /// The public name (in the certificate; for people).
    pub public: &'a str,
    /// The internal name every instance uses.
    pub internal: &'a str,
    /// The port.
    pub port: u16,
}

/// The taint kubeadm gives control planes by default; kept on every
/// control plane, so ordinary pods never run next to the CA keys.
const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";

/// Renders the user data of one instance group.
pub fn render(
    spec: &Spec,
    g: &InstanceGroup,
    api: &Endpoints<'_>,
    bucket: &str,
    prefix: &str,
) -> tera::Result<String> {
    let tera = NODEUP.as_ref().map_err(|e| tera::Error::msg(e.clone()))?;
    let c = &spec.cluster;
    let version = c.spec.kubernetes_version.trim_start_matches('v');
    let minor = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let mut labels: Vec<String> = g
        .spec
        .node_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.push(format!("clusterctl.io/instancegroup={}", g.metadata.name));
    let control_plane = g.spec.role == Role::ControlPlane;
    let mut taints: Vec<_> = g
        .spec
        .taints
        .iter()
        .filter_map(|t| parse_taint(t).ok())
        .collect();
    if control_plane
        && !taints
            .iter()
            .any(|t| t.key == "node-role.kubernetes.io/control-plane")
    {
        taints.extend(parse_taint(CONTROL_PLANE_TAINT).ok());
    }
    let mut ctx = Context::new();
    ctx.insert("cluster_name", &c.metadata.name);
    ctx.insert("instance_group", &g.metadata.name);
    ctx.insert("control_plane", &control_plane);
    ctx.insert("kubernetes_version", version);
    ctx.insert("kubernetes_minor", &minor);
    ctx.insert("region", &c.spec.region);
    ctx.insert("state_bucket", bucket);
    ctx.insert("state_prefix", prefix);
    ctx.insert("api_name", api.public);
    ctx.insert("api_internal_name", api.internal);
    ctx.insert("api_port", &api.port);
    ctx.insert("node_labels", &labels.join(","));
    ctx.insert("taints", &taints);
    ctx.insert("network_cidr", &c.spec.network_cidr);
    ctx.insert("pod_cidr", &c.spec.pod_cidr);
    ctx.insert("service_cidr", &c.spec.service_cidr);
    // The channel's CoreDNS replaces kubeadm's; without it kubeadm installs its own.
    let coredns_addon = c.spec.addons.iter().flatten().any(|a| a == "coredns");
    ctx.insert("coredns_addon", &coredns_addon);
    tera.render("nodeup.sh", &ctx)
}
