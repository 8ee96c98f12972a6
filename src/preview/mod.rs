//! `clusterctl preview`: one namespace, Ingress, DNS record and URL per git
//! branch, garbage-collected by TTL.
//!
//! | module      | owns |
//! |-------------|------|
//! | [`naming`]  | (repo, branch) → namespace and host label |
//! | [`inputs`]  | untrusted inputs checked; repo and branch from git |
//! | [`config`]  | the repo's `.clusterctl/preview.yaml` |
//! | [`ledger`]  | what a preview owns (namespace annotation + state store), label keys |
//! | [`records`] | DNS ownership (pure): what to write, what to delete |
//! | [`render`]  | the service's tera templates → checked objects |
//! | [`up`]      | deploy and extend |
//! | [`rollout`] | waiting for the rollout, and why it failed |
//! | [`manage`]  | list and down |
//! | [`gc`]      | expired previews: observe, decide (pure), act |

pub mod component;
pub mod config;
pub mod gc;
pub mod inputs;
pub mod ledger;
pub mod manage;
pub mod naming;
pub mod records;
pub mod render;
pub mod rollout;
pub mod up;

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::dns::{Dns, DnsError};
use crate::state::StateError;

/// What previews talk to.
#[derive(Clone)]
pub struct Shared {
    /// The cluster.
    pub client: kube::Client,
    /// Route53.
    pub dns: Arc<dyn Dns>,
    /// The ledgers in the state store.
    pub ledgers: ledger::LedgerStore,
}

/// A preview operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// Bad input, or a state that forbids the operation (said in full).
    #[error("{0}")]
    Input(String),
    /// The repo is at its cap.
    #[error("{repo} already has {} live previews (maxPerRepo {cap}): remove one with `clusterctl preview down <branch>` (live: {})", live.len(), live.join(", "))]
    Cap {
        /// The repo.
        repo: String,
        /// The cap.
        cap: usize,
        /// The live previews' branches.
        live: Vec<String>,
    },
    /// A Kubernetes call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// A DNS call failed.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The rollout did not finish in time.
    #[error("the rollout in {namespace} did not finish within {}: {}{}", humantime::format_duration(*after), pending.join(", "), if pods.is_empty() { String::new() } else { format!("\n  pods:\n    {}", pods.join("\n    ")) })]
    Rollout {
        /// The namespace.
        namespace: String,
        /// The timeout.
        after: Duration,
        /// The workloads not rolled out.
        pending: Vec<String>,
        /// The pods that are not ready, and why.
        pods: Vec<String>,
    },
}

impl PreviewError {
    /// A `map_err` for kube errors, saying what was being done.
    pub fn kube(what: String) -> impl FnOnce(kube::Error) -> PreviewError {
        move |source| PreviewError::Kube { what, source }
    }
}
