//! The controller: observe (the runtime's caches and the node groups) →
//! decide (pure) → act (desired capacities, drains and terminations,
//! Events, metrics), on the shared runtime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::cloud::NodeGroups;
use super::decide::{Decision, NoteKind, Target, decide};
use super::model::{Memory, Snapshot};
use super::observe::{daemonset_info, node_info, pdb_info, pod_info};
use super::view::Settings;
use crate::controllers::drain::{DrainOptions, drain, set_unschedulable};
use crate::controllers::runtime::cache::{strip_meta, strip_object};
use crate::controllers::runtime::slim::{SlimPod, strip_slim_pod};
use crate::controllers::runtime::{Component, Context, LoopError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabels {
    group: String,
    zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    action: String,
}

/// The node autoscaler.
pub struct NodeAutoscaler {
    groups: Arc<dyn NodeGroups>,
    settings: Settings,
    drain: DrainOptions,
    memory: Memory,
    caches: Option<Caches>,
    nodes_per_zone: Family<ZoneLabels, Gauge>,
    decisions: Family<DecisionLabels, Counter>,
}

struct Caches {
    nodes: Store<Node>,
    pods: Store<SlimPod>,
    pdbs: Store<PodDisruptionBudget>,
    daemonsets: Store<DaemonSet>,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
}

fn strip_node(n: &mut Node) {
    strip_meta(&mut n.metadata);
    if let Some(s) = n.status.as_mut() {
        s.images = None;
        s.volumes_attached = None;
        s.volumes_in_use = None;
    }
}

impl NodeAutoscaler {
    /// An autoscaler over `groups`.
    pub fn new(
        groups: Arc<dyn NodeGroups>,
        settings: Settings,
        drain: DrainOptions,
    ) -> NodeAutoscaler {
        NodeAutoscaler {
            groups,
            settings,
            drain,
            memory: Memory::default(),
            caches: None,
            nodes_per_zone: Family::default(),
            decisions: Family::default(),
        }
    }

    /// The snapshot of now.
    async fn observe(&self) -> Result<Snapshot, LoopError> {
        let c = self.caches.as_ref().ok_or_else(|| LoopError::Permanent {
            category: "internal",
            message: "observe before start".into(),
        })?;
        let groups = self
            .groups
            .groups()
            .await
            .map_err(|e| LoopError::Transient {
                category: "aws",
                message: e.to_string(),
            })?;
        let since = Utc::now() - chrono::Duration::minutes(30);
        let failures = self
            .groups
            .failures(since)
            .await
            .map_err(|e| LoopError::Transient {
                category: "aws",
                message: e.to_string(),
            })?;
        let claims: BTreeMap<(String, String), PersistentVolumeClaim> = c
            .claims
            .state()
            .iter()
            .map(|p| {
                (
                    (
                        p.metadata.namespace.clone().unwrap_or_default(),
                        p.metadata.name.clone().unwrap_or_default(),
                    ),
                    (**p).clone(),
                )
            })
            .collect();
        let volumes: BTreeMap<String, PersistentVolume> = c
            .volumes
            .state()
            .iter()
            .map(|v| (v.metadata.name.clone().unwrap_or_default(), (**v).clone()))
            .collect();
        Ok(Snapshot {
            now: Utc::now(),
            nodes: c.nodes.state().iter().map(|n| node_info(n)).collect(),
            pods: c
                .pods
                .state()
                .iter()
                .map(|p| pod_info(p, &claims, &volumes))
                .collect(),
            pdbs: c.pdbs.state().iter().map(|b| pdb_info(b)).collect(),
            daemonsets: c
                .daemonsets
                .state()
                .iter()
                .map(|d| daemonset_info(d))
                .collect(),
            groups,
            failures,
            memory: self.memory.clone(),
        })
    }

    async fn act(&mut self, ctx: &Context, d: &Decision) -> Result<(), LoopError> {
        for s in &d.set_desired {
            tracing::info!(asg = %s.asg, from = s.from, to = s.to, reason = %s.reason, dry_run = ctx.dry_run, "set desired capacity");
            self.decisions
                .get_or_create(&DecisionLabels {
                    action: "set-desired".into(),
                })
                .inc();
            if ctx.dry_run || !ctx.may_act() {
                continue;
            }
            self.groups
                .set_desired(&s.asg, s.to)
                .await
                .map_err(|e| LoopError::Transient {
                    category: "aws",
                    message: e.to_string(),
                })?;
        }
        for n in &d.notes {
            let (reference, kind) = match &n.target {
                Target::Pod { namespace, name } => (
                    ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        namespace: Some(namespace.clone()),
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    n.kind,
                ),
                Target::Node(name) => (
                    ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Node".into()),
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    n.kind,
                ),
            };
            let (type_, reason) = match kind {
                NoteKind::TriggeredScaleUp => (EventType::Normal, "TriggeredScaleUp"),
                NoteKind::NotTriggerScaleUp => (EventType::Normal, "NotTriggerScaleUp"),
                NoteKind::ScaleDown => (EventType::Normal, "ScaleDown"),
            };
            ctx.events
                .publish(&reference, type_, reason, reason, &n.message)
                .await;
        }
        for r in &d.remove {
            tracing::info!(node = %r.node, asg = %r.asg, instance = %r.instance, pods = r.evict.len(), dry_run = ctx.dry_run, "scale down");
            self.decisions
                .get_or_create(&DecisionLabels {
                    action: "scale-down".into(),
                })
                .inc();
            if ctx.dry_run || !ctx.may_act() {
                continue;
            }
            let client = &ctx.clients.no_retry;
            if let Err(e) = drain(client, &r.node, &r.evict, &self.drain).await {
                tracing::warn!(node = %r.node, error = %e, "drain failed; the node is uncordoned");
                ctx.metrics.error("drain");
                self.memory.last_failed_scale_down = Some(Utc::now());
                let _ = set_unschedulable(client, &r.node, false).await;
                continue;
            }
            if !ctx.may_act() {
                return Ok(());
            }
            if let Err(e) = self.groups.terminate(&r.instance).await {
                ctx.metrics.error("aws");
                self.memory.last_failed_scale_down = Some(Utc::now());
                tracing::warn!(node = %r.node, error = %e, "terminating the instance failed");
                continue;
            }
            // No cloud controller removes the Node of a terminated instance.
            let _ = Api::<Node>::all(ctx.clients.client.clone())
                .delete(&r.node, &DeleteParams::default())
                .await;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Component for NodeAutoscaler {
    fn name(&self) -> &'static str {
        "node-autoscaler"
    }

    async fn start(&mut self, ctx: &Context) -> Result<(), LoopError> {
        ctx.metrics.register(
            "clusterctl_node_autoscaler_nodes",
            "Nodes per group and zone, as the last pass saw them",
            self.nodes_per_zone.clone(),
        );
        ctx.metrics.register(
            "clusterctl_node_autoscaler_decisions",
            "Actions decided, by kind",
            self.decisions.clone(),
        );
        let c = ctx.clients.client.clone();
        let page = watcher::Config::default().page_size(500);
        self.caches = Some(Caches {
            nodes: ctx.cache(Api::all(c.clone()), page.clone(), strip_node, true),
            pods: ctx.cache(Api::all(c.clone()), page.clone(), strip_slim_pod, true),
            pdbs: ctx.cache(
                Api::all(c.clone()),
                page.clone(),
                strip_object::<PodDisruptionBudget>,
                false,
            ),
            daemonsets: ctx.cache(
                Api::all(c.clone()),
                page.clone(),
                strip_object::<DaemonSet>,
                false,
            ),
            claims: ctx.cache(
                Api::all(c.clone()),
                page.clone(),
                strip_object::<PersistentVolumeClaim>,
                false,
            ),
            volumes: ctx.cache(Api::all(c), page, strip_object::<PersistentVolume>, false),
        });
        Ok(())
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        let snap = self.observe().await?;
        let view = super::view::View::new(&snap, self.settings.max_node_provision_time);
        for (r, n) in &view.registered {
            let g = &snap.groups[r.group];
            self.nodes_per_zone
                .get_or_create(&ZoneLabels {
                    group: g.name.clone(),
                    zone: g.zones[r.zone].zone.clone(),
                })
                .set(*n);
        }
        let d = decide(&snap, &self.settings);
        for why in &d.reasons {
            tracing::debug!(reason = %why, "not done");
        }
        self.memory = d.memory.clone();
        self.act(ctx, &d).await
    }
}

/// The drain timeout flag's default.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
