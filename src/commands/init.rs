//! `clusterctl init`: writes a commented, valid spec from a few flags, as
//! `kops create cluster --name … --zones … --state …` starts a kops user.
//! Flags that contradict each other are refused (exit 2) naming both; the
//! spec written is validated before it is written.

use std::path::{Path, PathBuf};

use clusterctl::spec::Spec;
use serde::Serialize;

use super::{AppError, Report};

/// The Kubernetes version a new spec runs (what the examples run).
pub const KUBERNETES_VERSION: &str = "1.33.2";

/// `init`'s flags (clap types are in `cli.rs`).
#[derive(Debug, Clone)]
pub struct InitArgs {
    /// `--name`.
    pub name: String,
    /// `--zones`.
    pub zones: Vec<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--state`.
    pub state: String,
    /// `--dns-zone`.
    pub dns_zone: Option<String>,
    /// `--topology` (`public` or `private`).
    pub topology: Option<String>,
    /// `--control-planes`.
    pub control_planes: Option<u32>,
    /// `--control-plane-size`.
    pub control_plane_size: String,
    /// `--node-size`.
    pub node_size: String,
    /// `--nodes MIN:MAX`.
    pub nodes: Option<String>,
    /// `--kubernetes-version`.
    pub kubernetes_version: String,
    /// `--out`.
    pub out: Option<PathBuf>,
}

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Flags that contradict each other, or a flag's bad value: a usage
    /// error (exit 2), naming the flags.
    #[error("{0}")]
    Flags(String),
    /// Anything else (the output file).
    #[error(transparent)]
    App(#[from] AppError),
}

#[derive(Serialize)]
struct Group {
    name: String,
    zone: String,
}

/// The region of an availability zone (`eu-west-1a` → `eu-west-1`;
/// `us-west-2-lax-1a` → `us-west-2`).
fn region_of(zone: &str) -> Option<String> {
    let parts: Vec<&str> = zone.split('-').collect();
    if parts.len() < 3 {
        return None;
    }
    let number: String = parts[2].chars().take_while(char::is_ascii_digit).collect();
    (!number.is_empty()).then(|| format!("{}-{}-{number}", parts[0], parts[1]))
}

/// `MIN:MAX`.
fn parse_nodes(s: &str) -> Result<(u32, u32), InitError> {
    let bad = || {
        InitError::Flags(format!(
            "--nodes {s}: expected MIN:MAX with MIN <= MAX, such as 1:3"
        ))
    };
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let (min, max) = (
        a.trim().parse::<u32>().map_err(|_| bad())?,
        b.trim().parse::<u32>().map_err(|_| bad())?,
    );
    if min > max || max == 0 {
        return Err(bad());
    }
    Ok((min, max))
}

/// The spec's text for `args` (checked flags, defaults filled in).
pub fn render(args: &InitArgs, argv: &str) -> Result<String, InitError> {
    let zones: Vec<String> = args
        .zones
        .iter()
        .map(|z| z.trim().to_string())
        .filter(|z| !z.is_empty())
        .collect();
    if zones.is_empty() {
        return Err(InitError::Flags("--zones: name at least one zone".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = zones.iter().find(|z| !seen.insert(z.as_str())) {
        return Err(InitError::Flags(format!("--zones lists {dup} twice")));
    }
    let regions: std::collections::BTreeSet<Option<String>> =
        zones.iter().map(|z| region_of(z)).collect();
    let region = match (&args.region, regions.len()) {
        (Some(r), _) => {
            if let Some(z) = zones
                .iter()
                .find(|z| region_of(z).as_deref() != Some(r.as_str()))
            {
                return Err(InitError::Flags(format!(
                    "--region {r} contradicts --zones: {z} is not a zone of {r}"
                )));
            }
            r.clone()
        }
        (None, 1) => match regions.into_iter().next().flatten() {
            Some(r) => r,
            None => {
                return Err(InitError::Flags(format!(
                    "--zones {}: not availability zones such as us-east-1a; give --region",
                    zones.join(",")
                )));
            }
        },
        (None, _) => {
            return Err(InitError::Flags(format!(
                "--zones {} are in more than one region; a cluster lives in one",
                zones.join(",")
            )));
        }
    };
    let control_planes = args
        .control_planes
        .unwrap_or(if zones.len() >= 3 { 3 } else { 1 });
    match control_planes {
        1 => {}
        3 if zones.len() >= 3 => {}
        3 => {
            return Err(InitError::Flags(format!(
                "--control-planes 3 contradicts --zones {}: three control planes need three zones (one each, so that losing a zone keeps etcd's quorum)",
                zones.join(",")
            )));
        }
        n => {
            return Err(InitError::Flags(format!(
                "--control-planes {n}: use 1, or 3 for a highly available control plane"
            )));
        }
    }
    let topology = match args.topology.as_deref() {
        Some(t @ ("public" | "private")) => t.to_string(),
        Some(other) => {
            return Err(InitError::Flags(format!(
                "--topology {other}: use public or private"
            )));
        }
        None if zones.len() >= 3 => "private".into(),
        None => "public".into(),
    };
    let (nodes_min, nodes_max) = match &args.nodes {
        Some(n) => parse_nodes(n)?,
        None => (zones.len() as u32, 2 * zones.len() as u32),
    };
    let dns_zone = match &args.dns_zone {
        Some(z) => z.trim_end_matches('.').to_string(),
        None => match args.name.split_once('.') {
            Some((_, parent)) if parent.contains('.') => parent.to_string(),
            _ => {
                return Err(InitError::Flags(format!(
                    "--name {}: no parent domain to take the DNS zone from; give --dns-zone",
                    args.name
                )));
            }
        },
    };
    if !(args.name == dns_zone || args.name.ends_with(&format!(".{dns_zone}"))) {
        return Err(InitError::Flags(format!(
            "--name {} contradicts --dns-zone {dns_zone}: the cluster's API (api.{}) must be a name in that zone",
            args.name, args.name
        )));
    }
    let groups: Vec<Group> = zones
        .iter()
        .take(control_planes as usize)
        .map(|z| Group {
            name: format!("control-plane-{z}"),
            zone: z.clone(),
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("argv", argv);
    ctx.insert("name", &args.name);
    ctx.insert("region", &region);
    ctx.insert("zones", &zones);
    ctx.insert("topology", &topology);
    ctx.insert("kubernetes_version", &args.kubernetes_version);
    ctx.insert("dns_zone", &dns_zone);
    ctx.insert("state", &args.state);
    ctx.insert("control_planes", &control_planes);
    ctx.insert("control_plane_groups", &groups);
    ctx.insert("control_plane_size", &args.control_plane_size);
    ctx.insert("node_size", &args.node_size);
    ctx.insert("nodes_min", &nodes_min);
    ctx.insert("nodes_max", &nodes_max);
    let mut text = tera::Tera::one_off(include_str!("init.yaml.tera"), &ctx, false)
        .map_err(|e| InitError::App(AppError::Usage(format!("the spec template: {e:?}"))))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Which flag a spec field came from, for a problem found in the spec.
fn flag_of(path: &str) -> &'static str {
    match path {
        p if p.starts_with("metadata.name") => "--name",
        p if p.starts_with("spec.stateStore") => "--state",
        p if p.starts_with("spec.dnsZone") => "--dns-zone",
        p if p.starts_with("spec.region") => "--region",
        p if p.starts_with("spec.zones") => "--zones",
        p if p.starts_with("spec.kubernetesVersion") => "--kubernetes-version",
        p if p.contains("machineType") => "--node-size or --control-plane-size",
        p if p.contains("Size") => "--nodes",
        _ => "the flags",
    }
}

/// `clusterctl init`.
pub fn run(args: &InitArgs, argv: &str) -> Result<Report, InitError> {
    let text = render(args, argv)?;
    let origin = args
        .out
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "clusterctl init".into());
    match Spec::parse(&text, &origin) {
        Ok(_) => {}
        Err(clusterctl::spec::SpecError::Invalid { problems, .. }) => {
            let each: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", flag_of(&p.path), p.message))
                .collect();
            return Err(InitError::Flags(each.join("; ")));
        }
        Err(e) => return Err(InitError::App(e.into())),
    }
    match &args.out {
        None => Ok(Report::ok(
            text.clone(),
            serde_json::json!({ "spec": text }),
        )),
        Some(path) => {
            write_new(path, &text)?;
            Ok(Report::ok(
                format!(
                    "Wrote {}. Next: clusterctl plan -f {}\n",
                    path.display(),
                    path.display()
                ),
                serde_json::json!({ "file": path, "spec": text }),
            ))
        }
    }
}

/// Writes `text` to a new file; an existing one is never replaced.
fn write_new(path: &Path, text: &str) -> Result<(), InitError> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| {
            InitError::App(AppError::Write {
                path: path.to_path_buf(),
                source,
            })
        })?;
    f.write_all(text.as_bytes()).map_err(|source| {
        InitError::App(AppError::Write {
            path: path.to_path_buf(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_zones() {
        assert_eq!(region_of("eu-west-1a").as_deref(), Some("eu-west-1"));
        assert_eq!(region_of("us-west-2-lax-1a").as_deref(), Some("us-west-2"));
        assert_eq!(
            region_of("ap-southeast-10b").as_deref(),
            Some("ap-southeast-10")
        );
        assert_eq!(region_of("nowhere"), None);
        assert_eq!(parse_nodes("1:3").unwrap(), (1, 3));
        assert!(parse_nodes("3:1").is_err());
        assert!(parse_nodes("x").is_err());
    }
}
