//! `clusterctl preview` flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use clusterctl::controllers::runtime::{RuntimeArgs, age};

/// Output of the preview commands.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewOutput {
    /// Text.
    Table,
    /// JSON.
    Json,
}

/// Where the repo, its config and the ledgers are.
#[derive(Args, Debug, Clone)]
pub struct Where {
    /// The repo (default: the name of the checkout's git remote).
    #[arg(long)]
    pub repo: Option<String>,
    /// The repo's checkout: templates and `.clusterctl/preview.yaml` are
    /// read from it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The preview config (default: `<dir>/.clusterctl/preview.yaml`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state store of the ledgers, `s3://bucket/prefix` (default: the
    /// config's `state`).
    #[arg(long, value_name = "S3_URL", env = "CLUSTERCTL_PREVIEW_STATE")]
    pub state: Option<String>,
    /// The state bucket's region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// The kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Text or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: PreviewOutput,
}

/// `clusterctl preview` subcommands.
#[derive(Subcommand, Debug)]
pub enum PreviewCommand {
    /// Deploy a branch: its namespace, objects, Ingress and DNS name; print the URL.
    #[command(
        after_help = "Examples:\n  clusterctl preview up --tag 3f2c1ab\n  clusterctl preview up --branch feature/login --image registry.example.com/web:3f2c1ab --ttl 48h"
    )]
    Up {
        #[command(flatten)]
        at: Where,
        /// The branch (default: the checkout's current branch).
        #[arg(long)]
        branch: Option<String>,
        /// The service (default: the config's defaultService).
        #[arg(long)]
        service: Option<String>,
        /// The image to deploy.
        #[arg(long, conflicts_with = "tag", required_unless_present = "tag")]
        image: Option<String>,
        /// The tag, put into the service's image pattern.
        #[arg(long)]
        tag: Option<String>,
        /// Time to live from now (default: the config's ttl).
        #[arg(long, value_name = "DURATION", value_parser = age)]
        ttl: Option<Duration>,
        /// Who deploys (default: git's user.email).
        #[arg(long)]
        owner: Option<String>,
        /// How long to wait for the rollout.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = age)]
        timeout: Duration,
        /// Do not wait for the rollout.
        #[arg(long)]
        no_wait: bool,
    },
    /// List the previews: branch, namespace, URL, age, time to expiry, status.
    #[command(
        after_help = "Examples:\n  clusterctl preview list\n  clusterctl preview list --all -o json"
    )]
    List {
        #[command(flatten)]
        at: Where,
        /// Every repo's previews, not only this repo's.
        #[arg(long)]
        all: bool,
    },
    /// Push a preview's expiry out to now + TTL.
    #[command(after_help = "Example:\n  clusterctl preview extend feature/login --ttl 48h")]
    Extend {
        /// The branch.
        branch: String,
        #[command(flatten)]
        at: Where,
        /// The new time to live, from now.
        #[arg(long, value_name = "DURATION", value_parser = age)]
        ttl: Duration,
    },
    /// Remove a preview: its namespace, DNS records and ledger.
    #[command(after_help = "Example:\n  clusterctl preview down feature/login")]
    Down {
        /// The branch.
        branch: String,
        #[command(flatten)]
        at: Where,
    },
    /// Delete expired previews (run by the preview-gc CronJob with --once).
    #[command(
        after_help = "Examples:\n  clusterctl preview gc --once --state s3://example-state/previews --dry-run\n  clusterctl preview gc --once --state s3://example-state/previews"
    )]
    Gc {
        /// The state store of the ledgers, `s3://bucket/prefix`.
        #[arg(long, value_name = "S3_URL", env = "CLUSTERCTL_PREVIEW_STATE")]
        state: String,
        /// The state bucket's region.
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
        /// The TTL of a preview that names no expiry, from its last deploy.
        #[arg(long, value_name = "DURATION", default_value = "72h", value_parser = age)]
        default_ttl: Duration,
        /// Text or JSON.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: PreviewOutput,
        #[command(flatten)]
        runtime: Box<RuntimeArgs>,
    },
}
