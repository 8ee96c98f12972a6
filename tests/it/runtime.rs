//! The controller runtime: leader election, endpoints, dry run, shutdown
//! and flags, with a component that only records its passes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clusterctl::controllers::runtime::{self, Component, Context, Handle, LoopError, RuntimeArgs};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::component::{get, parse_prometheus};
use crate::kube_env::{KubeEnv, eventually};

/// Passes as (identity, when).
type Ticks = Arc<Mutex<Vec<(String, Instant)>>>;

/// Records each pass it may act in; can be made to hang.
struct Recorder {
    ticks: Ticks,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Component for Recorder {
    fn name(&self) -> &'static str {
        "tick-recorder"
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        while self.hang.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if ctx.may_act() {
            self.ticks
                .lock()
                .unwrap()
                .push((ctx.identity.clone(), Instant::now()));
        }
        Ok(())
    }
}

fn args(env: &KubeEnv) -> RuntimeArgs {
    let mut a = RuntimeArgs::for_tests();
    a.lease_namespace = Some(env.ns.clone());
    a.lease_name = Some("tick-recorder".into());
    a.interval = Some(Duration::from_millis(100));
    a
}

async fn replica(env: &KubeEnv, ticks: &Ticks, name: &str) -> Handle {
    let mut a = args(env);
    a.pod_name = Some(name.into());
    runtime::start(
        Recorder {
            ticks: ticks.clone(),
            hang: Default::default(),
        },
        a,
        env.config().await,
    )
    .await
    .unwrap()
}

fn by(ticks: &Ticks, id: &str) -> Vec<Instant> {
    ticks
        .lock()
        .unwrap()
        .iter()
        .filter(|(i, _)| i == id)
        .map(|(_, t)| *t)
        .collect()
}

/// The identities in tick order, with consecutive repeats collapsed: one
/// entry per leadership term.
fn terms(ticks: &Ticks) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut all = ticks.lock().unwrap().clone();
    all.sort_by_key(|(_, t)| *t);
    for (id, _) in all {
        if out.last() != Some(&id) {
            out.push(id);
        }
    }
    out
}

async fn holder(env: &KubeEnv) -> Option<String> {
    Api::<Lease>::namespaced(env.client.clone(), &env.ns)
        .get_opt("tick-recorder")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_for_ticks(ticks: &Ticks, id: &str, after: Instant, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = by(ticks, id).into_iter().find(|t| *t > after) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not act within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_acts_and_hands_over_on_stop_and_on_crash() {
    let env = KubeEnv::new("leader-election").await;
    let ticks: Ticks = Arc::default();
    let a = replica(&env, &ticks, "a").await;
    let b = replica(&env, &ticks, "b").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = terms(&ticks);
    assert_eq!(t.len(), 1, "exactly one replica acts: {t:?}");
    let (leader, standby) = if t[0] == a.identity { (a, b) } else { (b, a) };
    assert_eq!(
        holder(&env).await.as_deref(),
        Some(leader.identity.as_str())
    );

    // A graceful stop releases the Lease: the standby takes over at once.
    let stopped = Instant::now();
    let old = leader.identity.clone();
    leader.stop().await.unwrap();
    let first = wait_for_ticks(&ticks, &standby.identity, stopped, Duration::from_secs(2)).await;
    assert!(
        first - stopped <= Duration::from_secs(2),
        "{:?}",
        first - stopped
    );
    assert!(by(&ticks, &old).iter().all(|t| *t < first), "no overlap");

    // A crash releases nothing: a new replica waits out the lease, at most
    // its duration plus one renew period.
    let c = replica(&env, &ticks, "c").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    let crashed = standby.identity.clone();
    standby.kill();
    let lease = RuntimeArgs::for_tests();
    let limit = lease.lease_duration + lease.renew_period;
    let first = wait_for_ticks(
        &ticks,
        &c.identity,
        killed,
        limit + Duration::from_millis(500),
    )
    .await;
    assert!(
        first - killed <= limit + Duration::from_millis(300),
        "{:?}",
        first - killed
    );
    assert!(by(&ticks, &crashed).iter().all(|t| *t < first));
    let t = terms(&ticks);
    assert_eq!(t.len(), 3, "three terms, never interleaved: {t:?}");
    c.stop().await.unwrap();
    assert_eq!(
        holder(&env).await,
        None,
        "a stopped leader leaves no holder"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_another_acquires() {
    let env = KubeEnv::new("leader-fencing").await;
    let Some(server) = env.local() else {
        // The fault is injected by the test server.
        return env.cleanup().await;
    };
    let ticks: Ticks = Arc::default();
    let a = replica(&env, &ticks, "a").await;
    eventually("a leads", || async { !by(&ticks, &a.identity).is_empty() }).await;
    let b = replica(&env, &ticks, "b").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.refuse_lease_writes_of(Some(&a.identity));
    let refused = Instant::now();
    let first_b = wait_for_ticks(&ticks, &b.identity, refused, Duration::from_secs(10)).await;
    let last_a = by(&ticks, &a.identity).into_iter().max().unwrap();
    assert!(
        last_a < first_b,
        "a acted {:?} after b took over",
        last_a - first_b
    );
    // a stopped by its own clock: within the renew deadline of its last renewal.
    let deadline = RuntimeArgs::for_tests().lease_duration;
    assert!(last_a - refused <= deadline, "{:?}", last_a - refused);
    server.refuse_lease_writes_of(None);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_serve_metrics_health_and_readiness() {
    let env = KubeEnv::new("runtime-endpoints").await;
    let ticks: Ticks = Arc::default();
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = runtime::start(
        Recorder {
            ticks: ticks.clone(),
            hang: hang.clone(),
        },
        args(&env),
        env.config().await,
    )
    .await
    .unwrap();
    eventually("it acts", || async { !ticks.lock().unwrap().is_empty() }).await;
    let (code, body) = get(h.metrics_addr, "/metrics").await;
    assert_eq!(code, 200);
    let samples = parse_prometheus(&body);
    let value = |name: &str| {
        samples
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
    };
    assert_eq!(value("clusterctl_leader").1, 1.0);
    assert!(value("clusterctl_loop_duration_seconds_count").1 >= 1.0);
    let (labels, v) = value("clusterctl_build_info");
    assert_eq!(v, 1.0);
    assert!(
        labels
            .iter()
            .any(|(k, v)| k == "version" && v == env!("CARGO_PKG_VERSION"))
    );
    assert!(
        body.contains("# TYPE clusterctl_loop_errors counter"),
        "{body}"
    );
    assert_eq!(get(h.metrics_addr, "/readyz").await.0, 200);
    assert_eq!(get(h.metrics_addr, "/healthz").await.0, 200);

    // A pass that hangs: /healthz fails once it has run for three intervals
    // (and at least two seconds).
    hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let addr = h.metrics_addr;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = get(addr, "/healthz").await;
    assert_eq!(code, 503, "{body}");
    hang.store(false, std::sync::atomic::Ordering::Relaxed);
    eventually("healthy again", || async {
        get(addr, "/healthz").await.0 == 200
    })
    .await;
    h.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_caches() {
    let env = KubeEnv::new("runtime-readyz").await;
    let h = runtime::start(
        clusterctl::controllers::heartbeat::Heartbeat::new(
            clusterctl::controllers::heartbeat::HeartbeatArgs {
                namespace: env.ns.clone(),
                watch_pods: true,
            },
        ),
        args(&env),
        env.config().await,
    )
    .await
    .unwrap();
    let addr = h.metrics_addr;
    eventually("ready once the Pod cache synced", || async {
        get(addr, "/readyz").await.0 == 200
    })
    .await;
    h.stop().await.unwrap();

    // A cache that cannot sync (its list is refused): never ready, and no
    // pass runs.
    let ticks: Ticks = Arc::default();
    let never = runtime::start(
        Unsyncable {
            ticks: ticks.clone(),
        },
        args(&env),
        env.config().await,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(never.metrics_addr, "/readyz").await.0, 503);
    assert!(ticks.lock().unwrap().is_empty());
    assert!(matches!(
        never.stop().await,
        Err(runtime::RuntimeError::NotReady)
    ));
    env.cleanup().await;
}

/// Watches Pods with a field selector every server refuses (400), so its
/// cache never syncs.
struct Unsyncable {
    ticks: Ticks,
}

#[async_trait::async_trait]
impl Component for Unsyncable {
    fn name(&self) -> &'static str {
        "unsyncable"
    }

    async fn start(&mut self, ctx: &Context) -> Result<(), LoopError> {
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::all(ctx.clients.client.clone());
        let _store = ctx.cache(
            api,
            kube::runtime::watcher::Config::default().fields("spec.noSuchField=x"),
            |_| {},
            false,
        );
        Ok(())
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        self.ticks
            .lock()
            .unwrap()
            .push((ctx.identity.clone(), Instant::now()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_but_events_and_the_lease() {
    let env = KubeEnv::new("runtime-dry-run").await;
    let heartbeat = |dry_run: bool| {
        let mut a = args(&env);
        a.dry_run = dry_run;
        a.lease_name = Some(format!("heartbeat-{dry_run}"));
        (
            clusterctl::controllers::heartbeat::Heartbeat::new(
                clusterctl::controllers::heartbeat::HeartbeatArgs {
                    namespace: env.ns.clone(),
                    watch_pods: false,
                },
            ),
            a,
        )
    };
    if let Some(s) = env.local() {
        s.clear_requests();
    }
    let (c, a) = heartbeat(true);
    let h = runtime::start(c, a, env.config().await).await.unwrap();
    eventually("a dry-run Event from the heartbeat", || async {
        crate::component::events(&env, "Heartbeat")
            .await
            .iter()
            .any(|(note, by)| note.starts_with("(dry run) beat") && by == "clusterctl-heartbeat")
    })
    .await;
    h.stop().await.unwrap();
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns);
    assert!(
        cms.get_opt(clusterctl::controllers::heartbeat::CONFIG_MAP)
            .await
            .unwrap()
            .is_none()
    );
    if let Some(s) = env.local() {
        let writes: Vec<_> = s
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .filter(|r| !r.path.contains("/events") && !r.path.contains("/leases"))
            .collect();
        assert!(writes.is_empty(), "{writes:?}");
    }
    // Not a dry run: the same component writes.
    let (c, a) = heartbeat(false);
    let h = runtime::start(c, a, env.config().await).await.unwrap();
    eventually("the heartbeat ConfigMap", || async {
        cms.get_opt(clusterctl::controllers::heartbeat::CONFIG_MAP)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    h.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_is_a_series_and_a_new_note_a_new_event() {
    use clusterctl::controllers::runtime::events::Events;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event;
    use kube::runtime::events::EventType;
    let env = KubeEnv::new("events").await;
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "target" }
    }))
    .unwrap();
    let cm = env
        .api::<ConfigMap>()
        .create(&Default::default(), &cm)
        .await
        .unwrap();
    let object = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        namespace: Some(env.ns.clone()),
        name: Some("target".into()),
        uid: cm.metadata.uid.clone(),
        ..Default::default()
    };
    let events = Events::new(env.client.clone(), "clusterctl-test", "replica-1", false);
    for note in ["1 -> 2 replicas", "1 -> 2 replicas", "2 -> 10 replicas"] {
        events
            .publish(&object, EventType::Normal, "Scaled", "Scale", note)
            .await;
    }
    let mut got: Vec<(String, i32)> = env
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Scaled"))
        .map(|e| (e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("1 -> 2 replicas".to_string(), 2),
            ("2 -> 10 replicas".to_string(), 1)
        ]
    );
    env.cleanup().await;
}
