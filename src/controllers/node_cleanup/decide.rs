//! What node cleanup removes: a pure function of what the container
//! runtime reports, the rules and the time.
//!
//! - exited containers finished longer than `container_grace` ago (on
//!   containerd, only those whose pod the kubelet no longer runs);
//! - dangling images created longer than `image_grace` ago, never one that
//!   any container uses, running or stopped, and never a pinned one;
//! - dangling volumes (Docker);
//! - with `unused_images_above` and the disk fuller than that: unused
//!   tagged images too, least recently created first, until the estimate is
//!   below the threshold.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// A container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Running (or paused, or starting).
    Running,
    /// Created, never started.
    Created,
    /// Exited.
    Exited,
}

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    /// Its id.
    pub id: String,
    /// A readable name.
    pub name: String,
    /// The image it was made from (id or digest).
    pub image: String,
    /// Its state.
    pub state: State,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// When it exited.
    pub finished: Option<Timestamp>,
    /// The kubelet still runs its pod (containerd: its sandbox exists).
    pub tracked: bool,
}

/// An image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// Its id (or config digest).
    pub id: String,
    /// Its tags (`repo:tag`); none when dangling.
    pub tags: Vec<String>,
    /// When it was created (pulled, imported).
    pub created: Option<Timestamp>,
    /// Bytes on disk.
    pub size: u64,
    /// Pinned (the sandbox image): never removed.
    pub pinned: bool,
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeInfo {
    /// Its name.
    pub name: String,
    /// No container refers to it.
    pub dangling: bool,
}

/// What the runtime reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    /// Every container, running or not.
    pub containers: Vec<ContainerInfo>,
    /// Every image.
    pub images: Vec<ImageInfo>,
    /// Every volume (Docker).
    pub volumes: Vec<VolumeInfo>,
    /// How full the runtime's filesystem is, 0–100.
    pub disk_used_percent: Option<f64>,
    /// That filesystem's size, for the unused-image estimate.
    pub disk_bytes: Option<u64>,
}

/// The rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Exited containers are kept this long.
    pub container_grace: Duration,
    /// Dangling images are kept this long.
    pub image_grace: Duration,
    /// Remove dangling volumes.
    pub volumes: bool,
    /// Above this disk use (percent), unused images go too.
    pub unused_images_above: Option<f64>,
}

/// One thing to remove.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    /// `container`, `image` or `volume`.
    pub kind: &'static str,
    /// Its id or name.
    pub id: String,
    /// Readable name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Bytes it frees, when known.
    pub bytes: u64,
}

fn older(now: Timestamp, t: Option<Timestamp>, than: Duration) -> Option<SignedDuration> {
    let d = now.duration_since(t?);
    (SignedDuration::try_from(than).is_ok_and(|g| d >= g)).then_some(d)
}

fn human(d: SignedDuration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(0) as u64)).to_string()
}

/// Decides what to remove, containers first (an image they used may then
/// be free, but only on the next pass: this pass's "in use" counts them).
pub fn decide(inv: &Inventory, rules: &Rules, now: Timestamp) -> Vec<Removal> {
    let mut out = Vec::new();
    for c in &inv.containers {
        if c.state != State::Exited || c.tracked {
            continue;
        }
        if let Some(age) = older(now, c.finished.or(c.created), rules.container_grace) {
            out.push(Removal {
                kind: "container",
                id: c.id.clone(),
                name: c.name.clone(),
                reason: format!("exited {} ago", human(age)),
                bytes: 0,
            });
        }
    }
    // Every container's image is in use, whatever its state.
    let used: BTreeSet<&str> = inv.containers.iter().map(|c| c.image.as_str()).collect();
    let free = |i: &&ImageInfo| !i.pinned && !used.contains(i.id.as_str());
    for i in inv.images.iter().filter(free).filter(|i| i.tags.is_empty()) {
        if let Some(age) = older(now, i.created, rules.image_grace) {
            out.push(Removal {
                kind: "image",
                id: i.id.clone(),
                name: i.id.chars().take(19).collect(),
                reason: format!("dangling, {} old, used by no container", human(age)),
                bytes: i.size,
            });
        }
    }
    if rules.volumes {
        for v in inv.volumes.iter().filter(|v| v.dangling) {
            out.push(Removal {
                kind: "volume",
                id: v.name.clone(),
                name: v.name.clone(),
                reason: "dangling: no container refers to it".into(),
                bytes: 0,
            });
        }
    }
    if let (Some(limit), Some(used_pct), Some(disk)) = (
        rules.unused_images_above,
        inv.disk_used_percent,
        inv.disk_bytes,
    ) && used_pct > limit
        && disk > 0
    {
        let mut pct =
            used_pct - out.iter().map(|r| r.bytes).sum::<u64>() as f64 * 100.0 / disk as f64;
        let mut unused: Vec<&ImageInfo> = inv
            .images
            .iter()
            .filter(free)
            .filter(|i| !i.tags.is_empty())
            .filter(|i| older(now, i.created, rules.image_grace).is_some())
            .collect();
        unused.sort_by_key(|i| i.created);
        for i in unused {
            if pct <= limit {
                break;
            }
            pct -= i.size as f64 * 100.0 / disk as f64;
            out.push(Removal {
                kind: "image",
                id: i.id.clone(),
                name: i.tags.first().cloned().unwrap_or_default(),
                reason: format!("unused, and the disk is {used_pct:.0}% full (above {limit:.0}%)"),
                bytes: i.size,
            });
        }
    }
    out
}
