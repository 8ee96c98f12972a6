//! The controller: observe (annotated Deployments and StatefulSets, HPAs,
//! one management-API request per server and vhost) → decide (pure, per
//! target) → act (patch the scale subresource, Events, metrics).

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::decide::{decide, remember};
use super::source::{Servers, Source};
use super::stats::{QueueStats, reading};
use super::target::{PREFIX, parse};
use crate::controllers::runtime::cache::strip_object;
use crate::controllers::runtime::{Component, Context, LoopError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    namespace: String,
    name: String,
}

/// A workload the controller may scale.
#[derive(Debug, Clone)]
struct Workload {
    kind: &'static str,
    namespace: String,
    name: String,
    uid: String,
    replicas: i32,
    annotations: BTreeMap<String, String>,
}

/// The queue autoscaler.
pub struct QueueAutoscaler {
    servers: Servers,
    source: Source,
    deployments: Option<Store<Deployment>>,
    statefulsets: Option<Store<StatefulSet>>,
    hpas: Option<Store<HorizontalPodAutoscaler>>,
    windows: BTreeMap<String, Vec<(chrono::DateTime<Utc>, i32)>>,
    /// Warnings already emitted (uid and message), so each is said once.
    warned: BTreeSet<(String, String)>,
    desired: Family<TargetLabels, Gauge>,
    current: Family<TargetLabels, Gauge>,
    backlog: Family<TargetLabels, Gauge>,
    held: Family<TargetLabels, Gauge>,
}

impl QueueAutoscaler {
    /// A queue autoscaler reading `servers` through `source`.
    pub fn new(servers: Servers, source: Source) -> QueueAutoscaler {
        QueueAutoscaler {
            servers,
            source,
            deployments: None,
            statefulsets: None,
            hpas: None,
            windows: BTreeMap::new(),
            warned: BTreeSet::new(),
            desired: Family::default(),
            current: Family::default(),
            backlog: Family::default(),
            held: Family::default(),
        }
    }

    fn workloads(&self) -> Vec<Workload> {
        let annotated = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.annotations
                .as_ref()
                .is_some_and(|a| a.keys().any(|k| k.starts_with(PREFIX)))
        };
        let mut out = Vec::new();
        for d in self.deployments.iter().flat_map(|s| s.state()) {
            if annotated(&d.metadata) {
                out.push(Workload {
                    kind: "Deployment",
                    namespace: d.metadata.namespace.clone().unwrap_or_default(),
                    name: d.metadata.name.clone().unwrap_or_default(),
                    uid: d.metadata.uid.clone().unwrap_or_default(),
                    replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    annotations: d.metadata.annotations.clone().unwrap_or_default(),
                });
            }
        }
        for s in self.statefulsets.iter().flat_map(|s| s.state()) {
            if annotated(&s.metadata) {
                out.push(Workload {
                    kind: "StatefulSet",
                    namespace: s.metadata.namespace.clone().unwrap_or_default(),
                    name: s.metadata.name.clone().unwrap_or_default(),
                    uid: s.metadata.uid.clone().unwrap_or_default(),
                    replicas: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    annotations: s.metadata.annotations.clone().unwrap_or_default(),
                });
            }
        }
        out
    }

    fn has_hpa(&self, w: &Workload) -> bool {
        self.hpas.iter().flat_map(|s| s.state()).any(|h| {
            h.metadata.namespace.as_deref() == Some(w.namespace.as_str())
                && h.spec.as_ref().is_some_and(|s| {
                    s.scale_target_ref.kind == w.kind && s.scale_target_ref.name == w.name
                })
        })
    }

    async fn warn(&mut self, ctx: &Context, w: &Workload, reason: &str, message: String) {
        if !self.warned.insert((w.uid.clone(), message.clone())) {
            return;
        }
        tracing::warn!(kind = w.kind, namespace = %w.namespace, name = %w.name, %message, "target left alone");
        ctx.events
            .publish(
                &reference(w),
                EventType::Warning,
                reason,
                "Validate",
                &message,
            )
            .await;
    }
}

fn reference(w: &Workload) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some(w.kind.into()),
        namespace: Some(w.namespace.clone()),
        name: Some(w.name.clone()),
        uid: Some(w.uid.clone()),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl Component for QueueAutoscaler {
    fn name(&self) -> &'static str {
        "queue-autoscaler"
    }

    async fn start(&mut self, ctx: &Context) -> Result<(), LoopError> {
        ctx.metrics.register(
            "clusterctl_queue_autoscaler_desired_replicas",
            "Replicas decided per target",
            self.desired.clone(),
        );
        ctx.metrics.register(
            "clusterctl_queue_autoscaler_current_replicas",
            "Replicas per target",
            self.current.clone(),
        );
        ctx.metrics.register(
            "clusterctl_queue_autoscaler_backlog_messages",
            "Backlog read per target",
            self.backlog.clone(),
        );
        ctx.metrics.register(
            "clusterctl_queue_autoscaler_held",
            "1 while a target's queue cannot be read",
            self.held.clone(),
        );
        let c = ctx.clients.client.clone();
        let cfg = watcher::Config::default().page_size(500);
        self.deployments = Some(ctx.cache(
            Api::all(c.clone()),
            cfg.clone(),
            strip_object::<Deployment>,
            true,
        ));
        self.statefulsets = Some(ctx.cache(
            Api::all(c.clone()),
            cfg.clone(),
            strip_object::<StatefulSet>,
            true,
        ));
        self.hpas = Some(ctx.cache(
            Api::all(c),
            cfg,
            strip_object::<HorizontalPodAutoscaler>,
            false,
        ));
        Ok(())
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        let now = Utc::now();
        // Validate every target; the bad ones are left alone.
        let mut targets = Vec::new();
        for w in self.workloads() {
            match parse(&w.annotations) {
                Err(problems) => {
                    let msg = problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.warn(ctx, &w, "InvalidAnnotations", msg).await;
                }
                Ok(_) if self.has_hpa(&w) => {
                    let msg = "a HorizontalPodAutoscaler also scales it; two scalers would fight"
                        .to_string();
                    self.warn(ctx, &w, "HPAConflict", msg).await;
                }
                Ok(spec) if !self.servers.contains_key(&spec.server) => {
                    let msg = format!(
                        "{PREFIX}server: no RabbitMQ server named \"{}\" is configured",
                        spec.server
                    );
                    self.warn(ctx, &w, "InvalidAnnotations", msg).await;
                }
                Ok(spec) => targets.push((w, spec)),
            }
        }
        // One request per server and vhost.
        let mut polled: BTreeMap<(String, String), Option<Vec<QueueStats>>> = BTreeMap::new();
        for (_, spec) in &targets {
            let key = (spec.server.clone(), spec.queue.vhost.clone());
            if polled.contains_key(&key) {
                continue;
            }
            let server = &self.servers[&spec.server];
            let got = match self.source.queues(server, &spec.queue.vhost).await {
                Ok(q) => Some(q),
                Err(e) => {
                    ctx.metrics.error("rabbitmq");
                    tracing::warn!(error = %e, "reading the queues failed; holding their targets");
                    None
                }
            };
            polled.insert(key, got);
        }
        for (w, spec) in targets {
            let queues = &polled[&(spec.server.clone(), spec.queue.vhost.clone())];
            let r = queues
                .as_ref()
                .and_then(|q| reading(&spec.queue, spec.operation, q));
            let key = format!("{}/{}/{}", w.kind, w.namespace, w.name);
            let window = self.windows.entry(key).or_default();
            let s = decide(&spec, w.replicas, r.as_ref(), window, now);
            if !s.held {
                remember(window, &spec, now, s.recommended);
            }
            let labels = TargetLabels {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
            };
            self.desired
                .get_or_create(&labels)
                .set(i64::from(s.desired));
            self.current
                .get_or_create(&labels)
                .set(i64::from(w.replicas));
            self.backlog
                .get_or_create(&labels)
                .set(s.backlog.unwrap_or(0.0) as i64);
            self.held.get_or_create(&labels).set(i64::from(s.held));
            if s.held {
                self.warn(ctx, &w, "MetricsMissing", s.reason.clone()).await;
                continue;
            }
            // A reading again: the next missing one is said again.
            self.warned
                .retain(|(uid, m)| !(uid == &w.uid && m.contains("holding")));
            if s.desired == w.replicas {
                continue;
            }
            tracing::info!(kind = w.kind, namespace = %w.namespace, name = %w.name, from = w.replicas, to = s.desired, reason = %s.reason, dry_run = ctx.dry_run, "scale");
            if !ctx.dry_run && ctx.may_act() {
                let patch = serde_json::json!({ "spec": { "replicas": s.desired } });
                let pp = PatchParams::default();
                let done = match w.kind {
                    "Deployment" => {
                        Api::<Deployment>::namespaced(ctx.clients.client.clone(), &w.namespace)
                            .patch_scale(&w.name, &pp, &Patch::Merge(&patch))
                            .await
                            .map(|_| ())
                    }
                    _ => Api::<StatefulSet>::namespaced(ctx.clients.client.clone(), &w.namespace)
                        .patch_scale(&w.name, &pp, &Patch::Merge(&patch))
                        .await
                        .map(|_| ()),
                };
                done.map_err(|e| {
                    LoopError::from_kube(&format!("scaling {}/{}", w.namespace, w.name), e)
                })?;
            }
            ctx.events
                .publish(
                    &reference(&w),
                    EventType::Normal,
                    "Scaled",
                    "Scale",
                    &format!("{} -> {} replicas: {}", w.replicas, s.desired, s.reason),
                )
                .await;
        }
        Ok(())
    }
}
