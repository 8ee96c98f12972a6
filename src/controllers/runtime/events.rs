//! Events (events.k8s.io/v1) of a component. Like kube-runtime's recorder
//! and client-go's, a repeat of the same Event within six minutes becomes a
//! series on the first one (its count and last time). Unlike them, the
//! note is part of what makes two Events the same: a controller that scales
//! 1 → 2 and then 2 → 10 says so twice, instead of counting a second
//! "1 → 2". A dry run's notes start with "(dry run)".

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use tokio::sync::Mutex;

/// How long a repeat joins the series of its first Event.
const SERIES_TTL: SignedDuration = SignedDuration::from_secs(360);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    warning: bool,
    reason: String,
    action: String,
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    note: String,
}

/// Publishes a component's Events.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    controller: String,
    instance: String,
    pub(super) dry_run: bool,
    sent: Arc<Mutex<HashMap<Key, KubeEvent>>>,
}

impl Events {
    /// Events reported by `controller` (this replica is `instance`).
    pub fn new(client: kube::Client, controller: &str, instance: &str, dry_run: bool) -> Events {
        Events {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            dry_run,
            sent: Default::default(),
        }
    }

    /// Publishes an Event about `object`; a failure is logged, never
    /// returned (Events are best effort).
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        if let Err(e) = self.send(object, type_, reason, action, note).await {
            tracing::warn!(error = %e, reason, "publishing an Event failed");
        }
    }

    async fn send(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = if self.dry_run {
            format!("(dry run) {note}")
        } else {
            note.to_string()
        };
        let now = Timestamp::now();
        let key = Key {
            warning: matches!(type_, EventType::Warning),
            reason: reason.to_string(),
            action: action.to_string(),
            regarding: (
                object.kind.clone(),
                object.namespace.clone(),
                object.name.clone(),
                object.uid.clone(),
            ),
            note: note.clone(),
        };
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        let mut sent = self.sent.lock().await;
        sent.retain(|_, e| {
            let last = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0));
            last.is_none_or(|t| t + SERIES_TTL > now)
        });
        if let Some(first) = sent.get(&key) {
            let mut event = first.clone();
            event.series = Some(EventSeries {
                count: first.series.as_ref().map_or(2, |s| s.count + 1),
                last_observed_time: MicroTime(now),
            });
            let name = event.metadata.name.clone().unwrap_or_default();
            let patch = serde_json::json!({ "series": event.series });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            sent.insert(key, event);
            return Ok(());
        }
        let event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    object.name.clone().unwrap_or_else(|| "event".into()),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            note: Some(note),
            regarding: Some(object.clone()),
            event_time: Some(MicroTime(now)),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if key.warning { "Warning" } else { "Normal" }.into()),
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        sent.insert(key, created);
        Ok(())
    }
}
