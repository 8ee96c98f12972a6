//! The controller: observe (annotated Deployments and StatefulSets, HPAs,
//! one management-API request per server and vhost) → decide (pure, per
//! target) → act (patch the scale subresource, Events, metrics).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::consumers::{Consumer, DELETION_COST, PodView, deletion_costs};
use super::decide::{decide, remember};
use super::source::{Servers, Source};
use super::stats::{Matcher, Queues, reading, uncounted};
use super::target::{PREFIX, QueueRef, TargetSpec, parse};
use crate::controllers::runtime::cache::strip_object;
use crate::controllers::runtime::{Component, Context, LoopError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    namespace: String,
    name: String,
}

/// The consumers of a vhost and its channels' unacked messages.
type ConsumerView = (Vec<Consumer>, BTreeMap<String, Option<f64>>);

/// A workload the controller may scale.
#[derive(Debug, Clone)]
struct Workload {
    kind: &'static str,
    namespace: String,
    name: String,
    uid: String,
    replicas: i32,
    annotations: BTreeMap<String, String>,
    /// The pods' selector (Deployments: for the deletion costs).
    selector: Option<LabelSelector>,
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
    /// Compiled queue matchers, by queue reference.
    matchers: HashMap<QueueRef, Matcher>,
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
            matchers: HashMap::new(),
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
                    selector: d.spec.as_ref().map(|s| s.selector.clone()),
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
                    selector: None,
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

    /// One management-API request per server and vhost; then, for each
    /// by-name queue the API has not counted, its exact depth by AMQP.
    async fn poll(
        &self,
        ctx: &Context,
        targets: &[(Workload, TargetSpec)],
    ) -> BTreeMap<(String, String), Option<Queues>> {
        let mut polled: BTreeMap<(String, String), Option<Queues>> = BTreeMap::new();
        for (_, spec) in targets {
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
        for (_, spec) in targets {
            let key = (spec.server.clone(), spec.queue.vhost.clone());
            let Some(Some(queues)) = polled.get_mut(&key) else {
                continue;
            };
            let Some(name) = self
                .matchers
                .get(&spec.queue)
                .and_then(|m| uncounted(m, queues))
            else {
                continue;
            };
            let name = name.to_string();
            match self
                .source
                .depth(&self.servers[&spec.server], &spec.queue.vhost, &name)
                .await
            {
                Ok(Some((ready, consumers))) => {
                    tracing::debug!(queue = %name, ready, "the API has not counted the queue; read by AMQP");
                    queues.fill_ready(&name, ready, consumers);
                }
                Ok(None) => {
                    tracing::debug!(queue = %name, "no such queue");
                }
                Err(e) => {
                    ctx.metrics.error("rabbitmq");
                    tracing::warn!(error = %e, "reading a queue's depth by AMQP failed");
                }
            }
        }
        polled
    }

    /// Before a scale-down: the pods holding unacked messages of the
    /// target's queues get a higher deletion cost than the idle ones.
    async fn set_deletion_costs(
        &self,
        ctx: &Context,
        w: &Workload,
        matcher: &Matcher,
        view: &ConsumerView,
    ) -> Result<(), LoopError> {
        let Some(selector) = w
            .selector
            .clone()
            .and_then(|s| kube::core::Selector::try_from(s).ok())
        else {
            return Ok(());
        };
        let pods_api: Api<Pod> = Api::namespaced(ctx.clients.client.clone(), &w.namespace);
        let pods = pods_api
            .list(&ListParams::default().labels_from(&selector))
            .await
            .map_err(|e| {
                LoopError::from_kube(
                    &format!("listing the pods of {}/{}", w.namespace, w.name),
                    e,
                )
            })?;
        let views: Vec<PodView> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| PodView {
                name: p.metadata.name.clone().unwrap_or_default(),
                ip: p.status.as_ref().and_then(|s| s.pod_ip.clone()),
                cost: p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DELETION_COST).cloned()),
            })
            .collect();
        for (pod, cost) in deletion_costs(matcher, &view.0, &view.1, &views) {
            tracing::info!(namespace = %w.namespace, %pod, cost, dry_run = ctx.dry_run, "pod deletion cost");
            if ctx.dry_run || !ctx.may_act() {
                continue;
            }
            let patch = serde_json::json!({
                "metadata": { "annotations": { DELETION_COST: cost.to_string() } }
            });
            pods_api
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    LoopError::from_kube(
                        &format!("setting the deletion cost of {}/{pod}", w.namespace),
                        e,
                    )
                })?;
        }
        Ok(())
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
        // Patterns are compiled once (parse has checked them).
        self.matchers
            .retain(|q, _| targets.iter().any(|(_, t)| &t.queue == q));
        for (_, spec) in &targets {
            if !self.matchers.contains_key(&spec.queue)
                && let Ok(m) = Matcher::new(&spec.queue)
            {
                self.matchers.insert(spec.queue.clone(), m);
            }
        }
        let polled = self.poll(ctx, &targets).await;
        // Consumers and channels, read once per server and vhost, only for
        // a scale-down.
        let mut busy: BTreeMap<(String, String), Option<ConsumerView>> = BTreeMap::new();
        for (w, spec) in targets {
            let Some(matcher) = self.matchers.get(&spec.queue).cloned() else {
                continue;
            };
            let queues = &polled[&(spec.server.clone(), spec.queue.vhost.clone())];
            let r = queues
                .as_ref()
                .and_then(|q| reading(&matcher, spec.operation, q));
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
            if s.desired < w.replicas && w.kind == "Deployment" {
                let key = (spec.server.clone(), spec.queue.vhost.clone());
                if !busy.contains_key(&key) {
                    let got = self
                        .source
                        .consumers(&self.servers[&spec.server], &spec.queue.vhost)
                        .await;
                    if let Err(e) = &got {
                        ctx.metrics.error("rabbitmq");
                        tracing::warn!(error = %e, "reading the consumers failed; scaling down without deletion costs");
                    }
                    busy.insert(key.clone(), got.ok());
                }
                if let Some(Some(view)) = busy.get(&key) {
                    self.set_deletion_costs(ctx, &w, &matcher, view).await?;
                }
            }
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
