//! The loop: clients, endpoints, leadership, caches, then a pass every
//! interval or on watch events (debounced), until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tracing::Instrument;

use super::events::Events;
use super::leader::{Elector, LeaseConfig};
use super::metrics::{Health, Metrics};
use super::{Component, Context, LoopError, RuntimeArgs, client, serve};

/// Why a component stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No client.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// The endpoints could not be served.
    #[error("serving /metrics on {addr}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A pass failed for good.
    #[error("{component} stopped")]
    Loop {
        /// The component.
        component: &'static str,
        /// The error.
        #[source]
        source: LoopError,
    },
    /// The caches never synced before shutdown.
    #[error("stopped before the caches synced")]
    NotReady,
}

/// A running component.
pub struct Handle {
    /// Where /metrics is served.
    pub metrics_addr: SocketAddr,
    /// Its identity.
    pub identity: String,
    /// The elector, when leader election is on.
    pub elector: Option<Elector>,
    stop: watch::Sender<bool>,
    /// Its task: ends when it stops.
    pub task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

impl Handle {
    /// Asks it to stop (as SIGTERM does) and waits for it.
    pub async fn stop(self) -> Result<(), RuntimeError> {
        self.stop.send_replace(true);
        match self.task.await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }

    /// Ends it at once, releasing nothing (a crash, `kill -9`).
    pub fn kill(self) {
        self.task.abort();
    }
}

fn identity(pod: Option<&str>) -> String {
    use rand::RngExt;
    let suffix: u32 = rand::rng().random();
    let base = pod
        .map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "clusterctl".into());
    format!("{base}-{suffix:08x}")
}

/// Starts `component` with `args` against `config`; returns once the
/// endpoints listen.
pub async fn start<C: Component>(
    component: C,
    args: RuntimeArgs,
    config: kube::Config,
) -> Result<Handle, RuntimeError> {
    let name = component.name();
    let every = args
        .interval
        .unwrap_or_else(|| component.default_interval());
    let clients = client::clients(config, name)?;
    let identity = identity(args.pod_name.as_deref());
    let metrics = Metrics::new(name);
    // A pass running for three intervals (and at least two seconds) is stuck.
    let health = Health::new((every * 3).max(Duration::from_secs(2)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_addr = if args.once {
        args.metrics_addr
    } else {
        serve::start(
            args.metrics_addr,
            metrics.clone(),
            health.clone(),
            stop_rx.clone(),
        )
        .await
        .map_err(|source| RuntimeError::Serve {
            addr: args.metrics_addr,
            source,
        })?
    };
    let elector = (args.leader_elect && !args.once).then(|| {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "kube-system".into());
        Elector::new(
            clients.client.clone(),
            LeaseConfig {
                name: args
                    .lease_name
                    .clone()
                    .unwrap_or_else(|| format!("clusterctl-{name}")),
                namespace,
                identity: identity.clone(),
                duration: args.lease_duration,
                renew_period: args.renew_period,
                // A standby looks often enough that a released Lease is
                // taken within a second, and an expired one within the
                // lease duration plus one renew period.
                retry_period: (args.renew_period / 4).min(Duration::from_secs(1)),
            },
        )
    });
    let ctx = Context {
        events: Events::new(
            clients.client.clone(),
            &format!("clusterctl-{name}"),
            &identity,
            args.dry_run,
        ),
        clients,
        dry_run: args.dry_run,
        identity: identity.clone(),
        metrics,
        elector: elector.clone(),
        caches: Default::default(),
        tasks: Default::default(),
        trigger: Arc::new(Notify::new()),
    };
    let task = tokio::spawn(drive(component, ctx, args, health, stop_rx));
    Ok(Handle {
        metrics_addr,
        identity,
        elector,
        stop: stop_tx,
        task,
    })
}

async fn drive<C: Component>(
    mut component: C,
    ctx: Context,
    args: RuntimeArgs,
    health: Health,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let name = component.name();
    let result = async {
        component
            .start(&ctx)
            .await
            .map_err(|source| RuntimeError::Loop {
                component: name,
                source,
            })?;
        let caches: Vec<_> = std::mem::take(&mut *ctx.caches.lock().unwrap_or_else(|p| p.into_inner()));
        tokio::select! {
            _ = futures::future::join_all(caches) => health.set_ready(),
            _ = super::stopped(&mut stop) => return Err(RuntimeError::NotReady),
        }
        tracing::info!(component = name, identity = %ctx.identity, dry_run = ctx.dry_run, "caches synced");
        if args.once {
            return pass(&mut component, &ctx, &health, 1, args.shutdown_grace, &mut stop).await;
        }
        let (elector_stop, elector_task) = match &ctx.elector {
            Some(e) => {
                let (tx, rx) = watch::channel(false);
                (Some(tx), Some(tokio::spawn(e.clone().run(rx))))
            }
            None => (None, None),
        };
        let mut leadership = ctx.elector.as_ref().map(Elector::subscribe);
        let mut interval = tokio::time::interval(args.interval.unwrap_or_else(|| component.default_interval()));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        let outcome = loop {
            let became_leader = async {
                match leadership.as_mut() {
                    Some(rx) => {
                        let _ = rx.changed().await;
                    }
                    None => futures::future::pending::<()>().await,
                }
            };
            let triggered = tokio::select! {
                _ = interval.tick() => false,
                _ = became_leader => false,
                _ = ctx.trigger.notified() => true,
                _ = super::stopped(&mut stop) => break Ok(()),
            };
            if triggered {
                // Let a burst of watch events settle into one pass.
                tokio::select! {
                    _ = tokio::time::sleep(args.debounce) => {}
                    _ = super::stopped(&mut stop) => break Ok(()),
                }
            }
            let leads = ctx.may_act();
            ctx.metrics.leader.set(i64::from(leads));
            if !leads {
                continue;
            }
            n += 1;
            match pass(&mut component, &ctx, &health, n, args.shutdown_grace, &mut stop).await {
                Err(e @ RuntimeError::Loop { .. }) => break Err(e),
                _ if *stop.borrow() => break Ok(()),
                _ => {}
            }
        };
        if let (Some(tx), Some(task)) = (elector_stop, elector_task) {
            tx.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        ctx.metrics.leader.set(0);
        outcome
    }
    .await;
    for t in ctx
        .tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        t.abort();
    }
    result
}

/// One pass, in a span with its number; a transient error is counted and
/// logged, a permanent one returned. On shutdown the pass may finish
/// within `grace`, else it is abandoned.
async fn pass<C: Component>(
    component: &mut C,
    ctx: &Context,
    health: &Health,
    n: u64,
    grace: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let name = component.name();
    let span = tracing::info_span!("loop", component = name, n);
    health.pass_started();
    let started = Instant::now();
    let result = {
        let tick = component.tick(ctx).instrument(span.clone());
        tokio::pin!(tick);
        tokio::select! {
            r = &mut tick => Some(r),
            _ = super::stopped(stop) => {
                tokio::select! {
                    r = &mut tick => Some(r),
                    _ = tokio::time::sleep(grace) => None,
                }
            }
        }
    };
    health.pass_ended();
    ctx.metrics
        .loop_duration
        .observe(started.elapsed().as_secs_f64());
    let _e = span.enter();
    match result {
        None => {
            tracing::warn!(
                "shutting down: the pass in progress was abandoned after the grace period"
            );
            Ok(())
        }
        Some(Ok(())) => Ok(()),
        Some(Err(e @ LoopError::Transient { .. })) => {
            ctx.metrics.error(e.category());
            tracing::warn!(error = %e, "pass failed; trying again next time");
            Ok(())
        }
        Some(Err(e @ LoopError::Permanent { .. })) => {
            ctx.metrics.error(e.category());
            tracing::error!(error = %e, "pass failed permanently");
            Err(RuntimeError::Loop {
                component: name,
                source: e,
            })
        }
    }
}

/// Runs `component` until SIGTERM or SIGINT (the binary's entry point).
pub async fn run_until_signal<C: Component>(
    component: C,
    args: RuntimeArgs,
) -> Result<(), RuntimeError> {
    let config = client::config(args.kubeconfig.as_deref()).await?;
    let handle = start(component, args, config).await?;
    let stop = handle.stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; stopping");
        stop.send_replace(true);
    });
    match handle.task.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
