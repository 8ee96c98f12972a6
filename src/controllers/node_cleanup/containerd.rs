//! The containerd backend: its gRPC API over its socket
//! (containerd-client), in the kubelet's `k8s.io` namespace.
//!
//! - A container is exited when its task has stopped, or it has none (the
//!   CRI plugin deletes a container's task once it exits); it is tracked
//!   while the kubelet still runs its pod, that is while a sandbox of the
//!   same pod uid exists (CRI labels `io.cri-containerd.kind` and
//!   `io.kubernetes.pod.uid`).
//! - An image is one target digest and all the names that point at it;
//!   it is dangling when none of its names is a tag; the CRI's pinned
//!   images (`io.cri-containerd.pinned`) are never removed. An image being
//!   pulled has no record until the pull ends, so it is never listed.
//! - Removing a container deletes its task (if any), its record and its
//!   snapshot, as the containerd client's snapshot cleanup does.

use std::collections::{BTreeMap, BTreeSet};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::snapshots::RemoveSnapshotRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    DeleteContainerRequest, DeleteImageRequest, DeleteTaskRequest, GetContainerRequest,
    ListContainersRequest, ListImagesRequest, ListTasksRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request};
use containerd_client::types::v1::Status as TaskStatus;
use k8s_openapi::jiff::Timestamp;

use super::decide::{ContainerInfo, ImageInfo, Inventory, State};
use super::{Backend, BackendError};

/// The kubelet's namespace.
pub const NAMESPACE: &str = "k8s.io";

/// A containerd daemon.
pub struct ContainerdBackend {
    channel: Channel,
    socket: String,
    /// Its root directory (for disk usage).
    root: Option<String>,
}

fn err(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError(format!("containerd: {what}: {e}"))
}

fn req<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "containerd-namespace",
        containerd_client::tonic::metadata::MetadataValue::from_static(NAMESPACE),
    );
    r
}

fn time(t: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
    let t = t?;
    Timestamp::new(t.seconds, t.nanos)
        .ok()
        .filter(|t| t.as_second() > 0)
}

/// A name that is only a digest (`sha256:…`, `repo@sha256:…`), not a tag.
fn is_digest(name: &str) -> bool {
    name.starts_with("sha256:") || name.contains("@sha256:")
}

impl ContainerdBackend {
    /// Connects to containerd at `socket`; `root` is its root directory.
    pub async fn connect(
        socket: &str,
        root: Option<&str>,
    ) -> Result<ContainerdBackend, BackendError> {
        let channel = containerd_client::connect(socket)
            .await
            .map_err(|e| err(&format!("connecting to {socket}"), e))?;
        Ok(ContainerdBackend {
            channel,
            socket: socket.to_string(),
            root: root.map(str::to_string),
        })
    }
}

#[async_trait::async_trait]
impl Backend for ContainerdBackend {
    fn name(&self) -> String {
        format!("containerd ({}, namespace {NAMESPACE})", self.socket)
    }

    fn root(&self) -> Option<String> {
        self.root.clone()
    }

    async fn inventory(&self) -> Result<Inventory, BackendError> {
        let containers = ContainersClient::new(self.channel.clone())
            .list(req(ListContainersRequest { filters: vec![] }))
            .await
            .map_err(|e| err("listing containers", e))?
            .into_inner()
            .containers;
        let tasks: BTreeMap<String, (i32, Option<Timestamp>)> =
            TasksClient::new(self.channel.clone())
                .list(req(ListTasksRequest {
                    filter: String::new(),
                }))
                .await
                .map_err(|e| err("listing tasks", e))?
                .into_inner()
                .tasks
                .into_iter()
                .map(|t| {
                    (
                        t.container_id.clone(),
                        (t.status, time(t.exited_at.as_ref())),
                    )
                })
                .collect();
        let images = ImagesClient::new(self.channel.clone())
            .list(req(ListImagesRequest { filters: vec![] }))
            .await
            .map_err(|e| err("listing images", e))?
            .into_inner()
            .images;
        // Names → target digest; digest → the image.
        let mut by_digest: BTreeMap<String, ImageInfo> = BTreeMap::new();
        let mut digest_of: BTreeMap<String, String> = BTreeMap::new();
        for i in &images {
            let Some(target) = i.target.as_ref() else {
                continue;
            };
            digest_of.insert(i.name.clone(), target.digest.clone());
            let e = by_digest.entry(target.digest.clone()).or_insert(ImageInfo {
                id: target.digest.clone(),
                tags: vec![],
                created: None,
                size: 0,
                pinned: false,
            });
            if !is_digest(&i.name) {
                e.tags.push(i.name.clone());
            }
            e.pinned |=
                i.labels.get("io.cri-containerd.pinned").map(String::as_str) == Some("pinned");
            let created = time(i.created_at.as_ref());
            e.created = match (e.created, created) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let sandboxes: BTreeSet<&str> = containers
            .iter()
            .filter(|c| {
                c.labels.get("io.cri-containerd.kind").map(String::as_str) == Some("sandbox")
            })
            .filter_map(|c| c.labels.get("io.kubernetes.pod.uid").map(String::as_str))
            .collect();
        let mut inv = Inventory::default();
        for c in &containers {
            let (state, finished) = match tasks.get(&c.id) {
                Some((s, at)) if *s == TaskStatus::Stopped as i32 => (State::Exited, *at),
                Some(_) => (State::Running, None),
                // No task: never started, or exited and its task deleted.
                None => (State::Exited, time(c.updated_at.as_ref())),
            };
            let pod = c.labels.get("io.kubernetes.pod.uid").map(String::as_str);
            let is_sandbox =
                c.labels.get("io.cri-containerd.kind").map(String::as_str) == Some("sandbox");
            inv.containers.push(ContainerInfo {
                id: c.id.clone(),
                name: c
                    .labels
                    .get("io.kubernetes.container.name")
                    .cloned()
                    .unwrap_or_else(|| c.id.clone()),
                image: digest_of
                    .get(&c.image)
                    .cloned()
                    .unwrap_or_else(|| c.image.clone()),
                state,
                created: time(c.created_at.as_ref()),
                finished,
                // The kubelet removes its own: sandboxes, and containers
                // of pods whose sandbox still exists.
                tracked: is_sandbox || pod.is_some_and(|p| sandboxes.contains(p)),
            });
        }
        inv.images = by_digest.into_values().collect();
        if let Some((used, total)) = self.root.as_deref().and_then(super::disk_usage) {
            inv.disk_used_percent = Some(used);
            inv.disk_bytes = Some(total);
        }
        Ok(inv)
    }

    async fn remove_container(&self, id: &str) -> Result<(), BackendError> {
        let mut containers = ContainersClient::new(self.channel.clone());
        let c = containers
            .get(req(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(|e| err(&format!("getting container {id}"), e))?
            .into_inner()
            .container
            .ok_or_else(|| err(&format!("getting container {id}"), "no such container"))?;
        match TasksClient::new(self.channel.clone())
            .delete(req(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(err(&format!("deleting the task of {id}"), s)),
        }
        containers
            .delete(req(DeleteContainerRequest { id: id.to_string() }))
            .await
            .map_err(|e| err(&format!("removing container {id}"), e))?;
        if !c.snapshot_key.is_empty() {
            match SnapshotsClient::new(self.channel.clone())
                .remove(req(RemoveSnapshotRequest {
                    snapshotter: c.snapshotter.clone(),
                    key: c.snapshot_key.clone(),
                }))
                .await
            {
                Ok(_) => {}
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(err(&format!("removing the snapshot of {id}"), s)),
            }
        }
        Ok(())
    }

    async fn remove_image(&self, digest: &str) -> Result<(), BackendError> {
        // Every name of this digest; `sync` waits for containerd's garbage
        // collection, so the space is free when this returns.
        let mut images = ImagesClient::new(self.channel.clone());
        let names: Vec<String> = images
            .list(req(ListImagesRequest { filters: vec![] }))
            .await
            .map_err(|e| err("listing images", e))?
            .into_inner()
            .images
            .into_iter()
            .filter(|i| i.target.as_ref().is_some_and(|t| t.digest == digest))
            .map(|i| i.name)
            .collect();
        for name in names {
            images
                .delete(req(DeleteImageRequest {
                    name: name.clone(),
                    sync: true,
                    target: None,
                }))
                .await
                .map_err(|e| err(&format!("removing image {name}"), e))?;
        }
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), BackendError> {
        Err(err(
            &format!("removing volume {name}"),
            "containerd has no volumes",
        ))
    }
}
