//! The Docker backend: the Engine API over its unix socket (bollard), the
//! API version negotiated with the daemon (Debian's 20.10 speaks 1.41).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions,
};
use k8s_openapi::jiff::Timestamp;

use super::decide::{ContainerInfo, ImageInfo, Inventory, State, VolumeInfo};
use super::{Backend, BackendError};

/// A Docker engine.
pub struct DockerBackend {
    docker: Docker,
    socket: String,
    root: Option<String>,
}

fn err(what: &str, e: bollard::errors::Error) -> BackendError {
    BackendError(format!("docker: {what}: {e}"))
}

impl DockerBackend {
    /// Connects to the engine at `socket` and agrees on an API version.
    pub async fn connect(socket: &str) -> Result<DockerBackend, BackendError> {
        let docker = Docker::connect_with_unix(socket, 30, bollard::API_DEFAULT_VERSION)
            .map_err(|e| err(&format!("connecting to {socket}"), e))?
            .negotiate_version()
            .await
            .map_err(|e| err(&format!("connecting to {socket}"), e))?;
        let root = docker.info().await.ok().and_then(|i| i.docker_root_dir);
        Ok(DockerBackend {
            docker,
            socket: socket.to_string(),
            root,
        })
    }
}

fn unix(secs: i64) -> Option<Timestamp> {
    Timestamp::from_second(secs).ok().filter(|_| secs > 0)
}

#[async_trait::async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> String {
        format!("docker ({})", self.socket)
    }

    fn root(&self) -> Option<String> {
        self.root.clone()
    }

    async fn inventory(&self) -> Result<Inventory, BackendError> {
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(|e| err("listing containers", e))?;
        let mut inv = Inventory::default();
        for c in containers {
            let id = c.id.clone().unwrap_or_default();
            let state = match c.state {
                Some(ContainerSummaryStateEnum::EXITED) | Some(ContainerSummaryStateEnum::DEAD) => {
                    State::Exited
                }
                Some(ContainerSummaryStateEnum::CREATED) => State::Created,
                _ => State::Running,
            };
            // When it exited is only in the inspection.
            let finished = if state == State::Exited {
                self.docker
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await
                    .ok()
                    .and_then(|i| i.state?.finished_at)
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .filter(|t| t.as_second() > 0)
            } else {
                None
            };
            let labels = c.labels.unwrap_or_default();
            inv.containers.push(ContainerInfo {
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_else(|| id.chars().take(12).collect())
                    .trim_start_matches('/')
                    .to_string(),
                id,
                image: c.image_id.unwrap_or_default(),
                state,
                created: c.created.and_then(unix),
                finished,
                // A cri-dockerd container of a pod the kubelet still runs
                // is the kubelet's to remove.
                tracked: labels.contains_key("io.kubernetes.pod.uid") && state == State::Running,
            });
        }
        let images = self
            .docker
            .list_images(Some(ListImagesOptions {
                all: false,
                ..Default::default()
            }))
            .await
            .map_err(|e| err("listing images", e))?;
        for i in images {
            let tags: Vec<String> = i
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect();
            inv.images.push(ImageInfo {
                id: i.id,
                tags,
                created: unix(i.created),
                size: i.size.max(0) as u64,
                pinned: false,
            });
        }
        let dangling: HashMap<String, Vec<String>> =
            HashMap::from([("dangling".to_string(), vec!["true".to_string()])]);
        let dangling_volumes: std::collections::BTreeSet<String> = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(dangling),
            }))
            .await
            .map_err(|e| err("listing volumes", e))?
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        let all_volumes = self
            .docker
            .list_volumes(None::<ListVolumesOptions>)
            .await
            .map_err(|e| err("listing volumes", e))?
            .volumes
            .unwrap_or_default();
        for v in all_volumes {
            inv.volumes.push(VolumeInfo {
                dangling: dangling_volumes.contains(&v.name),
                name: v.name,
            });
        }
        if let Some((used, total)) = self.root.as_deref().and_then(super::disk_usage) {
            inv.disk_used_percent = Some(used);
            inv.disk_bytes = Some(total);
        }
        Ok(inv)
    }

    async fn remove_container(&self, id: &str) -> Result<(), BackendError> {
        self.docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    v: false,
                    force: false,
                    link: false,
                }),
            )
            .await
            .map_err(|e| err(&format!("removing container {id}"), e))
    }

    async fn remove_image(&self, id: &str) -> Result<(), BackendError> {
        // Never forced: an image a container has started using since the
        // list is refused by the engine (409), and kept.
        self.docker
            .remove_image(
                id,
                Some(RemoveImageOptions {
                    force: false,
                    noprune: false,
                    platforms: None,
                }),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| err(&format!("removing image {id}"), e))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), BackendError> {
        self.docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
            .map_err(|e| err(&format!("removing volume {name}"), e))
    }
}
