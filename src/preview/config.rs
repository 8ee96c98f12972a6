//! A repo's `.clusterctl/preview.yaml`: its services (templates, image
//! pattern, port), the preview domain, the DNS target, the source namespace
//! and the objects copied from it, the TTL, the quota and the cap per repo.
//! Read strictly: an unknown key or a bad value is an error at its line.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::spec::location::{FileError, from_yaml_strict};

/// Where the file lives in a repo.
pub const CONFIG_PATH: &str = ".clusterctl/preview.yaml";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreviewConfig {
    /// The service `up` deploys when `--service` is not given.
    #[serde(default)]
    pub default_service: Option<String>,
    /// The zone every preview host is one label under, e.g.
    /// `preview.example.com`.
    pub domain: String,
    /// `https` (the default) or `http`: the scheme of the printed URL.
    #[serde(default = "https")]
    pub scheme: String,
    /// The state store the ledgers go to, `s3://bucket/prefix`
    /// (`--state` overrides it).
    #[serde(default)]
    pub state: Option<String>,
    /// The namespace copied objects come from, e.g. `staging`.
    #[serde(default)]
    pub source_namespace: Option<String>,
    /// Time to live after the last deploy (`72h`, `7d`).
    #[serde(default = "default_ttl", deserialize_with = "ttl")]
    pub ttl: Duration,
    /// Live previews per repo, at most.
    #[serde(default = "default_cap")]
    pub max_per_repo: usize,
    /// The Ingress.
    #[serde(default)]
    pub ingress: IngressConfig,
    /// The DNS record.
    pub dns: DnsConfig,
    /// The ResourceQuota's hard limits (`cpu`, `memory`, `pods`, ...).
    #[serde(default = "default_quota")]
    pub quota: BTreeMap<String, String>,
    /// The LimitRange's container defaults.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The services, by name.
    pub services: BTreeMap<String, ServiceConfig>,
}

/// How the Ingress is made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressConfig {
    /// `spec.ingressClassName` (Traefik by default).
    #[serde(default = "traefik")]
    pub class_name: String,
    /// Extra annotations (for example a TLS router or a certificate).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            class_name: traefik(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Where the preview's DNS name points.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsConfig {
    /// A fixed target: the ingress load balancer's DNS name.
    #[serde(default)]
    pub target: Option<String>,
    /// Or the ingress controller's `type: LoadBalancer` Service,
    /// `namespace/name`, whose load balancer hostname is the target.
    #[serde(default)]
    pub target_service: Option<String>,
    /// With the load balancer's canonical hosted zone: an alias A record
    /// instead of a CNAME.
    #[serde(default)]
    pub alias_hosted_zone_id: Option<String>,
    /// The record's TTL in seconds (a CNAME's).
    #[serde(default = "record_ttl")]
    pub ttl: i64,
}

/// The LimitRange's defaults for containers that set none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Default CPU limit.
    #[serde(default = "limit_cpu")]
    pub cpu: String,
    /// Default memory limit.
    #[serde(default = "limit_memory")]
    pub memory: String,
    /// Default CPU request.
    #[serde(default = "request_cpu")]
    pub request_cpu: String,
    /// Default memory request.
    #[serde(default = "request_memory")]
    pub request_memory: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            cpu: limit_cpu(),
            memory: limit_memory(),
            request_cpu: request_cpu(),
            request_memory: request_memory(),
        }
    }
}

/// One service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Template files, relative to the repo's root (like Onfido's
    /// `deploy/<name>-template.<env>.yml`).
    pub templates: Vec<PathBuf>,
    /// The image for `--tag`: `{tag}` is replaced, e.g.
    /// `registry.example.com/web:{tag}`.
    #[serde(default)]
    pub image: Option<String>,
    /// The Kubernetes Service the Ingress routes to (the service's name
    /// by default).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Its port.
    #[serde(default = "port")]
    pub port: i32,
    /// Replicas (a template variable).
    #[serde(default = "one")]
    pub replicas: i32,
    /// Secrets copied from the source namespace.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// ConfigMaps copied from the source namespace.
    #[serde(default)]
    pub config_maps: Vec<String>,
}

fn https() -> String {
    "https".into()
}
fn traefik() -> String {
    "traefik".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(72 * 3600)
}
fn default_cap() -> usize {
    20
}
fn record_ttl() -> i64 {
    60
}
fn port() -> i32 {
    80
}
fn one() -> i32 {
    1
}
fn limit_cpu() -> String {
    "1".into()
}
fn limit_memory() -> String {
    "1Gi".into()
}
fn request_cpu() -> String {
    "50m".into()
}
fn request_memory() -> String {
    "64Mi".into()
}
fn default_quota() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("requests.cpu".into(), "4".into()),
        ("requests.memory".into(), "8Gi".into()),
        ("limits.cpu".into(), "8".into()),
        ("limits.memory".into(), "16Gi".into()),
        ("pods".into(), "30".into()),
    ])
}

fn ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let t = crate::controllers::runtime::age(&s).map_err(serde::de::Error::custom)?;
    if t.is_zero() {
        return Err(serde::de::Error::custom("a TTL must be above zero"));
    }
    Ok(t)
}

/// A DNS name: labels of `[a-z0-9-]`, none empty, none over 63, at most
/// 253 in all.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Whether `p` stays inside the directory it is relative to.
fn inside(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

impl PreviewConfig {
    /// Reads `text` (named `file` in errors) and checks what serde cannot.
    pub fn parse(text: &str, file: &str) -> Result<PreviewConfig, FileError> {
        let (c, doc): (PreviewConfig, _) = from_yaml_strict(text, file)?;
        let at = |path: &str, msg: String| FileError::at(file, &doc, path, msg);
        let domain = c.domain.trim_end_matches('.');
        if !is_dns_name(domain) || !domain.contains('.') {
            return Err(at(
                "domain",
                format!(
                    "`{}` is not a DNS zone such as preview.example.com",
                    c.domain
                ),
            ));
        }
        if c.scheme != "https" && c.scheme != "http" {
            return Err(at("scheme", format!("`{}` is not https or http", c.scheme)));
        }
        if c.max_per_repo == 0 {
            return Err(at("maxPerRepo", "must be at least 1".into()));
        }
        match (&c.dns.target, &c.dns.target_service) {
            (Some(_), Some(_)) => {
                return Err(at(
                    "dns",
                    "set one of target and targetService, not both".into(),
                ));
            }
            (None, None) => {
                return Err(at(
                    "dns",
                    "set target (the ingress load balancer's DNS name) or targetService (namespace/name of its Service)".into(),
                ));
            }
            (Some(t), None) if !is_dns_name(t.trim_end_matches('.')) => {
                return Err(at("dns.target", format!("`{t}` is not a DNS name")));
            }
            (None, Some(s))
                if s.split('/').count() != 2 || s.split('/').any(|p| !is_dns_name(p)) =>
            {
                return Err(at(
                    "dns.targetService",
                    format!("`{s}` is not namespace/name"),
                ));
            }
            _ => {}
        }
        if !(0..=172_800).contains(&c.dns.ttl) {
            return Err(at("dns.ttl", "must be between 0 and 172800 seconds".into()));
        }
        if let Some(ns) = &c.source_namespace
            && !is_dns_name(ns)
        {
            return Err(at(
                "sourceNamespace",
                format!("`{ns}` is not a namespace name"),
            ));
        }
        if c.services.is_empty() {
            return Err(at("services", "name at least one service".into()));
        }
        if let Some(d) = &c.default_service
            && !c.services.contains_key(d)
        {
            return Err(at(
                "defaultService",
                format!("`{d}` is not one of the services ({})", names(&c)),
            ));
        }
        for (name, s) in &c.services {
            let base = format!("services.{name}");
            if !is_dns_name(name) || name.contains('.') || name.len() > 20 {
                return Err(at(
                    &base,
                    format!("`{name}` is not a service name: [a-z0-9-], at most 20 characters"),
                ));
            }
            if s.templates.is_empty() {
                return Err(at(
                    &format!("{base}.templates"),
                    "name at least one template".into(),
                ));
            }
            for (i, t) in s.templates.iter().enumerate() {
                if !inside(t) {
                    return Err(at(
                        &format!("{base}.templates[{i}]"),
                        format!(
                            "`{}` must be a path inside the repo (relative, without ..)",
                            t.display()
                        ),
                    ));
                }
            }
            if let Some(i) = &s.image
                && (!i.contains("{tag}")
                    || crate::preview::inputs::check_image(&i.replace("{tag}", "t")).is_err())
            {
                return Err(at(
                    &format!("{base}.image"),
                    format!("`{i}` is not an image reference with a {{tag}} placeholder"),
                ));
            }
            if !(1..=65535).contains(&s.port) {
                return Err(at(&format!("{base}.port"), "must be 1 to 65535".into()));
            }
            if !(0..=50).contains(&s.replicas) {
                return Err(at(&format!("{base}.replicas"), "must be 0 to 50".into()));
            }
            for (key, list) in [("secrets", &s.secrets), ("configMaps", &s.config_maps)] {
                if !list.is_empty() && c.source_namespace.is_none() {
                    return Err(at(
                        &format!("{base}.{key}"),
                        "copying needs sourceNamespace".into(),
                    ));
                }
                for (i, n) in list.iter().enumerate() {
                    if !is_dns_name(n) {
                        return Err(at(
                            &format!("{base}.{key}[{i}]"),
                            format!("`{n}` is not an object name"),
                        ));
                    }
                }
            }
        }
        Ok(c)
    }

    /// The service `name`, or the default one.
    pub fn service(&self, name: Option<&str>) -> Result<(&str, &ServiceConfig), String> {
        let name = match (name, &self.default_service) {
            (Some(n), _) => n,
            (None, Some(d)) => d.as_str(),
            (None, None) if self.services.len() == 1 => self
                .services
                .keys()
                .next()
                .map(String::as_str)
                .unwrap_or(""),
            (None, None) => {
                return Err(format!(
                    "name a service with --service ({}) or set defaultService in {CONFIG_PATH}",
                    names(self)
                ));
            }
        };
        self.services
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                format!(
                    "no service `{name}` in {CONFIG_PATH} (it has {})",
                    names(self)
                )
            })
    }
}

fn names(c: &PreviewConfig) -> String {
    c.services.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
defaultService: web
domain: preview.example.com
sourceNamespace: staging
ttl: 48h
dns:
  target: lb-1.eu-west-1.elb.amazonaws.com
services:
  web:
    templates: [deploy/web-template.preview.yml]
    image: registry.example.com/web:{tag}
    secrets: [web-env]
";

    #[test]
    fn a_good_file_reads_with_its_defaults() {
        let c = PreviewConfig::parse(GOOD, "p.yaml").unwrap();
        assert_eq!(c.ttl, Duration::from_secs(48 * 3600));
        assert_eq!(c.ingress.class_name, "traefik");
        assert_eq!(c.max_per_repo, 20);
        let (name, s) = c.service(None).unwrap();
        assert_eq!((name, s.port, s.replicas), ("web", 80, 1));
        assert!(c.service(Some("api")).unwrap_err().contains("it has web"));
    }

    #[test]
    fn mistakes_are_reported_at_their_line_and_field() {
        let cases = [
            (
                GOOD.replace("ttl: 48h", "tll: 48h"),
                "p.yaml:4:1: tll: unknown field `tll`",
            ),
            (
                GOOD.replace("ttl: 48h", "ttl: soon"),
                "p.yaml:4:1: ttl: `soon` is not a duration",
            ),
            (
                GOOD.replace("deploy/web", "../web"),
                "p.yaml:9:17: services.web.templates[0]: `../web-template.preview.yml` must be a path inside the repo",
            ),
            (
                GOOD.replace("preview.example.com", "Preview_Zone"),
                "p.yaml:2:1: domain: `Preview_Zone` is not a DNS zone",
            ),
            (
                GOOD.replace("web:{tag}", "web:latest"),
                "p.yaml:10:5: services.web.image: `registry.example.com/web:latest` is not an image reference",
            ),
            (
                GOOD.replace("defaultService: web", "defaultService: api"),
                "p.yaml:1:1: defaultService: `api` is not one of the services (web)",
            ),
            (
                GOOD.replace(
                    "  target: lb",
                    "  targetService: kube-system/traefik\n  target: lb",
                ),
                "p.yaml:5:1: dns: set one of target and targetService",
            ),
            (
                GOOD.replace("sourceNamespace: staging\n", ""),
                "p.yaml:10:5: services.web.secrets: copying needs sourceNamespace",
            ),
        ];
        let mut wrong = Vec::new();
        for (text, want) in cases {
            let e = PreviewConfig::parse(&text, "p.yaml")
                .unwrap_err()
                .to_string();
            if !e.starts_with(want) {
                wrong.push(format!("{e}\n  wanted: {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
