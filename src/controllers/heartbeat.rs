//! `clusterctl heartbeat`: the smallest component on the runtime, for its
//! tests and benchmark. Each pass it records the time in a ConfigMap
//! (`clusterctl-heartbeat`, in its namespace) and says so in an Event; a
//! dry run only says what it would write. With `--watch-pods` it keeps a
//! cache of every Pod, slim and stripped, as the node autoscaler does.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use super::runtime::slim::{SlimPod, strip_slim_pod};
use super::runtime::{Component, Context, LoopError};

/// Its flags.
#[derive(Debug, Clone, clap::Args)]
pub struct HeartbeatArgs {
    /// Namespace of the ConfigMap it writes.
    #[arg(long, env = "CLUSTERCTL_NAMESPACE", default_value = "kube-system")]
    pub namespace: String,
    /// Keep a stripped cache of every Pod in the cluster.
    #[arg(long, env = "CLUSTERCTL_WATCH_PODS")]
    pub watch_pods: bool,
}

/// The component.
pub struct Heartbeat {
    args: HeartbeatArgs,
    pods: Option<Store<SlimPod>>,
    beats: u64,
}

impl Heartbeat {
    /// A heartbeat with `args`.
    pub fn new(args: HeartbeatArgs) -> Heartbeat {
        Heartbeat {
            args,
            pods: None,
            beats: 0,
        }
    }
}

/// The ConfigMap it writes.
pub const CONFIG_MAP: &str = "clusterctl-heartbeat";

#[async_trait::async_trait]
impl Component for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    async fn start(&mut self, ctx: &Context) -> Result<(), LoopError> {
        if self.args.watch_pods {
            let api: Api<SlimPod> = Api::all(ctx.clients.client.clone());
            self.pods = Some(ctx.cache(
                api,
                watcher::Config::default().page_size(500),
                strip_slim_pod,
                false,
            ));
        }
        Ok(())
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        self.beats += 1;
        let cached = self.pods.as_ref().map(Store::len);
        let now = chrono::Utc::now().to_rfc3339();
        tracing::info!(beat = self.beats, cached_pods = ?cached, "tick");
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(CONFIG_MAP.into()),
            namespace: Some(self.args.namespace.clone()),
            ..Default::default()
        };
        let note = format!("beat {} by {} at {now}", self.beats, ctx.identity);
        if !ctx.dry_run && ctx.may_act() {
            let patch = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": CONFIG_MAP, "namespace": self.args.namespace },
                "data": { "lastBeat": now, "by": ctx.identity, "beats": self.beats.to_string() },
            });
            Api::<ConfigMap>::namespaced(ctx.clients.client.clone(), &self.args.namespace)
                .patch(
                    CONFIG_MAP,
                    &PatchParams::apply("clusterctl-heartbeat").force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(|e| LoopError::from_kube("writing the heartbeat", e))?;
        }
        ctx.events
            .publish(&reference, EventType::Normal, "Heartbeat", "Beat", &note)
            .await;
        Ok(())
    }
}
