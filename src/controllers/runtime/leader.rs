//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection package does it, kept short:
//!
//! - a candidate takes the Lease when it is free (no holder) or expired,
//!   judged by its own clock: the record has not changed for a whole lease
//!   duration since this replica first saw it (so clocks need not agree);
//! - the holder renews every `renew_period`; every write is a replace with
//!   the resourceVersion read, so two candidates never both win;
//! - fencing by time: [`Elector::is_leader`] is true only while the last
//!   successful renewal started less than `lease_duration - renew_period`
//!   ago. A holder that cannot renew stops acting before any other replica
//!   could see the Lease expire;
//! - on shutdown the holder releases the Lease (no holder, duration 1 s),
//!   so a standby takes over at its next poll.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew_period: Duration,
    /// How often a standby replica looks at the Lease.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The longest a holder acts after the start of its last successful
    /// renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration.saturating_sub(self.renew_period)
    }
}

#[derive(Debug, Default)]
struct Observed {
    /// The last record seen (holder, renew time, resourceVersion) and when
    /// this replica first saw it.
    record: Option<(String, Instant)>,
    /// When this replica's last successful acquire or renew started.
    renewed: Option<Instant>,
}

/// A replica's view of the election.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    state: Arc<Mutex<Observed>>,
    changes: watch::Sender<bool>,
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    /// An elector for `cfg` through `client`.
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Elector {
        let (changes, _) = watch::channel(false);
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            state: Arc::default(),
            changes,
        }
    }

    /// The settings.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Whether this replica may act now.
    pub fn is_leader(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.renewed
            .is_some_and(|t| t.elapsed() < self.cfg.renew_deadline())
    }

    /// Changes of [`Elector::is_leader`] as the elector saw them (a hint
    /// for waiting; always check `is_leader` before acting).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    fn set_renewed(&self, at: Option<Instant>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.renewed = at;
        drop(s);
        self.changes.send_replace(at.is_some());
    }

    /// One attempt to acquire or renew; true when this replica holds the
    /// Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> bool {
        let started = Instant::now();
        let me = self.cfg.identity.clone();
        let duration_secs = self.cfg.duration.as_secs().max(1) as i32;
        let current = match self.api.get_opt(&self.cfg.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.cfg.name, "reading the lease failed");
                return self.is_leader();
            }
        };
        let Some(mut lease) = current else {
            let mut lease = Lease::default();
            lease.metadata.name = Some(self.cfg.name.clone());
            lease.metadata.namespace = Some(self.cfg.namespace.clone());
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(me),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(micro_now()),
                renew_time: Some(micro_now()),
                lease_transitions: Some(0),
                ..Default::default()
            });
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    tracing::info!(lease = %self.cfg.name, "acquired the lease (created it)");
                    self.set_renewed(Some(started));
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "creating the lease failed");
                    false
                }
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let record = format!(
            "{holder}|{:?}|{}",
            spec.renew_time.as_ref().map(|t| t.0.to_string()),
            lease.metadata.resource_version.clone().unwrap_or_default()
        );
        let expired = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let seen_at = match &s.record {
                Some((r, at)) if *r == record => *at,
                _ => {
                    s.record = Some((record, Instant::now()));
                    Instant::now()
                }
            };
            let their_duration = Duration::from_secs(
                spec.lease_duration_seconds.unwrap_or(duration_secs).max(0) as u64,
            );
            seen_at.elapsed() >= their_duration
        };
        let ours = holder == me;
        if !ours && !holder.is_empty() && !expired {
            if self.is_leader() {
                self.set_renewed(None);
            }
            return false;
        }
        let mut new = spec.clone();
        new.holder_identity = Some(me);
        new.lease_duration_seconds = Some(duration_secs);
        new.renew_time = Some(micro_now());
        if !ours {
            new.acquire_time = Some(micro_now());
            new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(new);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !ours {
                    tracing::info!(lease = %self.cfg.name, previous = %holder, "acquired the lease");
                }
                self.set_renewed(Some(started));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.cfg.name, "writing the lease failed");
                self.is_leader()
            }
        }
    }

    /// Gives the Lease up if this replica holds it.
    pub async fn release(&self) {
        let was = self.is_leader();
        self.set_renewed(None);
        if !was {
            return;
        }
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro_now());
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.cfg.name, "released the lease"),
            Err(e) => tracing::warn!(error = %e, "releasing the lease failed"),
        }
    }

    /// Campaigns and renews until `stop` turns true, then releases.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let leader = self.try_acquire_or_renew().await;
            let pause = if leader {
                self.cfg.renew_period
            } else {
                self.cfg.retry_period
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = super::stopped(&mut stop) => break,
            }
        }
        self.release().await;
    }
}
