//! Command-line types (clap) only; `main.rs` dispatches them.

pub mod examples;
pub mod preview;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (for `render --check`: the output is up to date; for
     `plan --detailed-exitcode`: no changes)
  1  error: invalid spec, stale output under --check, a failed or refused
     operation (apply or destroy without --yes, a stale saved plan)
  2  usage error (unknown flag or argument, a flag value that does not
     parse); for `plan --detailed-exitcode`: changes present";

/// Provision Kubernetes clusters on AWS from a kops-style spec, and run the
/// in-cluster components that keep them lean.
#[derive(Debug, Parser)]
#[command(name = "clusterctl", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// Output format of results on stdout (logs always go to stderr).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Human)]
    pub output: Format,
    /// More logging on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    /// At the default, stderr shows only errors and clusterctl's warnings.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text (the default for commands) or JSON. The in-cluster
    /// components take their own `--log-format` after their subcommand.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = CliLogFormat::Text)]
    pub log_format: CliLogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `clusterctl init`'s flags.
#[derive(Debug, Args)]
pub struct InitFlags {
    /// The cluster's name, a DNS name (its API is `api.<name>`).
    #[arg(long)]
    pub name: String,
    /// Availability zones, comma-separated (`eu-west-1a,eu-west-1b,eu-west-1c`).
    #[arg(long, required = true, value_delimiter = ',')]
    pub zones: Vec<String>,
    /// The AWS region (default: the zones').
    #[arg(long)]
    pub region: Option<String>,
    /// The state store, `s3://bucket/prefix`.
    #[arg(long, value_name = "S3_URL")]
    pub state: String,
    /// The Route53 zone of the API's name (default: the name's parent domain).
    #[arg(long)]
    pub dns_zone: Option<String>,
    /// public or private (default: private with 3 zones or more, else public).
    #[arg(long)]
    pub topology: Option<String>,
    /// 1, or 3 (one per zone; the default with 3 zones or more).
    #[arg(long)]
    pub control_planes: Option<u32>,
    /// The control planes' machine type.
    #[arg(long, default_value = "t3.medium")]
    pub control_plane_size: String,
    /// The nodes' machine type.
    #[arg(long, default_value = "t3.large")]
    pub node_size: String,
    /// How many nodes, `MIN:MAX` (default: one per zone to two per zone).
    #[arg(long, value_name = "MIN:MAX")]
    pub nodes: Option<String>,
    /// The Kubernetes version.
    #[arg(long, default_value = crate::commands::init::KUBERNETES_VERSION)]
    pub kubernetes_version: String,
    /// Write the spec to this new file (default: stdout); an existing file
    /// is never replaced.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Log formats of the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CliLogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people.
    Human,
    /// Stable JSON for programs.
    Json,
    /// YAML (for `validate`: the defaulted spec).
    Yaml,
}

/// `-o FORMAT` accepted after a subcommand as well.
#[derive(Debug, Args)]
pub struct OutputArg {
    /// Output format (overrides the one given before the subcommand).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Format>,
}

/// The spec file argument.
#[derive(Debug, Args)]
pub struct SpecArg {
    /// Cluster spec: one Cluster and one or more InstanceGroup documents.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a spec, report every problem at once, and print the defaulted spec (-o yaml|json).
    Validate {
        #[command(flatten)]
        spec: SpecArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Render Terraform files and addon manifests from a spec.
    Render {
        #[command(flatten)]
        spec: SpecArg,
        /// Output directory; `terraform/` and `addons/` are written inside it.
        #[arg(short = 'o', long = "out", value_name = "DIR", default_value = "out")]
        out: PathBuf,
        /// Write nothing; exit 1 and list the files that differ when DIR is stale.
        #[arg(long)]
        check: bool,
        /// Format of the summary on stdout.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Show what `apply` would change in AWS (direct target).
    Plan {
        #[command(flatten)]
        spec: SpecArg,
        #[command(flatten)]
        output: OutputArg,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Save the plan, with the state serial it was made against.
        #[arg(long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// AWS requests in flight at once, per service.
        #[arg(long, default_value_t = clusterctl::cloud::DEFAULT_PARALLELISM, value_parser = parse_parallelism)]
        parallelism: usize,
    },
    /// Create or update the cluster's AWS resources (direct target): from a
    /// spec with --yes, or from a plan saved by `plan --out`.
    Apply {
        /// Cluster spec (optional with a saved plan, which carries its spec;
        /// if given, it must be the spec the plan was made from).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: Option<PathBuf>,
        /// A plan saved by `plan --out`; refused when the state moved since.
        plan: Option<PathBuf>,
        /// Apply without asking (required unless a saved plan is given).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        addons: AddonsArgs,
    },
    /// Delete the cluster's AWS resources that carry its ownership tag.
    Destroy {
        #[command(flatten)]
        spec: SpecArg,
        /// Destroy without asking (required).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Write a commented, valid spec for a new cluster from a few flags.
    #[command(
        after_help = "Examples:\n  clusterctl init --name dev.example.com --zones us-east-1a --state s3://example-state/clusters --out dev.yaml\n  clusterctl init --name prod.example.com --zones eu-west-1a,eu-west-1b,eu-west-1c --state s3://example-state/clusters --out prod.yaml"
    )]
    Init(InitFlags),
    /// Branch previews: one namespace, Ingress, DNS name and URL per git
    /// branch, deleted by gc when their TTL runs out.
    Preview {
        #[command(subcommand)]
        command: preview::PreviewCommand,
    },
    /// The multi-AZ node autoscaler (a controller on the runtime); `simulate`
    /// shows what it would decide on a recorded snapshot.
    #[command(args_conflicts_with_subcommands = true)]
    NodeAutoscaler {
        #[command(subcommand)]
        command: Option<NodeAutoscalerCommand>,
        /// The cluster whose Auto Scaling groups it manages (their
        /// KubernetesCluster tag).
        #[arg(long, env = "CLUSTERCTL_CLUSTER_NAME")]
        cluster_name: Option<String>,
        /// The AWS region.
        #[arg(long, env = "AWS_REGION")]
        region: Option<String>,
        /// Give up draining a node after this long (it is uncordoned).
        #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_DRAIN_TIMEOUT", default_value = "10m", value_parser = clusterctl::controllers::runtime::duration, allow_hyphen_values = true)]
        drain_timeout: std::time::Duration,
        #[command(flatten)]
        runtime: Box<clusterctl::controllers::runtime::RuntimeArgs>,
        #[command(flatten)]
        settings: Box<clusterctl::controllers::node_autoscaler::args::SettingsArgs>,
    },
    /// Run the RabbitMQ queue-driven pod autoscaler.
    QueueAutoscaler {
        #[command(flatten)]
        rabbitmq: RabbitmqArgs,
        #[command(flatten)]
        runtime: Box<clusterctl::controllers::runtime::RuntimeArgs>,
    },
    /// One janitor pass: superseded ReplicaSets, finished Jobs, evicted pods, expired TTLs.
    Janitor {
        #[command(flatten)]
        janitor: JanitorArgs,
        #[command(flatten)]
        runtime: Box<clusterctl::controllers::runtime::RuntimeArgs>,
    },
    /// Node cleanup: exited containers, dangling images and volumes (Docker or containerd).
    NodeCleanup {
        #[command(flatten)]
        cleanup: NodeCleanupArgs,
        #[command(flatten)]
        runtime: Box<clusterctl::controllers::runtime::RuntimeArgs>,
    },
    /// Read the cluster's state store.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// The cluster's secrets in the state store (CAs, service-account key,
    /// bootstrap token), for the Terraform path: `create` before `terraform
    /// apply`, `delete` after `terraform destroy`.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// The cluster's addons (the bootstrap channel): `plan` shows what
    /// `apply` would change, `apply` installs them, as `clusterctl apply`
    /// does once the API answers.
    Addons {
        #[command(subcommand)]
        command: AddonsCommand,
    },
    /// The token new nodes join with (in-cluster, run by a CronJob on the
    /// control planes; `apply` runs the same pass).
    BootstrapToken {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The runtime's test component: records a heartbeat each pass (for
    /// the runtime's tests and `scripts/bench controller`).
    #[command(hide = true)]
    Heartbeat {
        #[command(flatten)]
        runtime: Box<clusterctl::controllers::runtime::RuntimeArgs>,
        #[command(flatten)]
        heartbeat: clusterctl::controllers::heartbeat::HeartbeatArgs,
    },
    /// Remove a state lock left by a run that died (give the lock's ID).
    ForceUnlock {
        /// The lock ID, as printed by the command that found the state locked.
        id: String,
        #[command(flatten)]
        spec: SpecArg,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Options of mutating commands.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Changes made at once, and AWS requests in flight at once per service.
    #[arg(long, default_value_t = clusterctl::cloud::DEFAULT_PARALLELISM, value_parser = parse_parallelism)]
    pub parallelism: usize,
    /// Wait up to this long for the state lock (e.g. 30s, 5m) instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Option<LockTimeout>,
}

/// How `apply` reaches the new cluster's API to install the addons.
#[derive(Debug, Args)]
pub struct AddonsArgs {
    /// Do not wait for the API nor install the addons (`clusterctl addons
    /// apply` does it later).
    /// (CLUSTERCTL_SKIP_ADDONS=1 or =0 in the environment; 0, false, no
    /// and off are false.)
    #[arg(long, env = "CLUSTERCTL_SKIP_ADDONS", value_parser = clap::builder::FalseyValueParser::new())]
    pub skip_addons: bool,
    /// Reach the API with this kubeconfig instead of `https://api.<cluster>`
    /// and an admin certificate minted from the cluster CA in the state
    /// store (tests point it at their API server).
    #[arg(long, value_name = "FILE", env = "CLUSTERCTL_API_KUBECONFIG")]
    pub api_kubeconfig: Option<PathBuf>,
    /// How long to wait for the API to answer.
    #[arg(long, value_name = "DURATION", default_value = "20m", value_parser = parse_lock_timeout)]
    pub api_timeout: LockTimeout,
}

/// `node-autoscaler` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeAutoscalerCommand {
    /// Decide on a recorded snapshot (YAML or JSON of nodes, pods, groups)
    /// and print the decision with its reasons.
    Simulate {
        /// The snapshot.
        #[arg(long, value_name = "FILE")]
        snapshot: PathBuf,
        #[command(flatten)]
        settings: clusterctl::controllers::node_autoscaler::args::SettingsArgs,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// `bootstrap-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Keep a token valid for at least --renew-before in the state store:
    /// create the next one in the cluster, then store it.
    Rotate {
        /// The spec's state store, `s3://bucket/prefix`.
        #[arg(long, value_name = "URL")]
        state_store: String,
        /// The cluster's name.
        #[arg(long)]
        cluster: String,
        /// The state store's region.
        #[arg(long, env = "AWS_REGION")]
        region: String,
        /// Namespace of the token Secrets.
        #[arg(long, default_value = "kube-system")]
        namespace: String,
        /// Lifetime of a new token.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_lock_timeout)]
        ttl: LockTimeout,
        /// Rotate when the stored token has less than this left.
        #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = parse_lock_timeout)]
        renew_before: LockTimeout,
        /// Say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Kubeconfig (default: in-cluster, or $KUBECONFIG).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// `addons` subcommands.
#[derive(Debug, Subcommand)]
pub enum AddonsCommand {
    /// Apply the cluster's bootstrap channel (server-side apply); addons
    /// whose version and manifest are already installed are left alone.
    Apply {
        #[command(flatten)]
        spec: SpecArg,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        api: ApiKubeconfig,
        /// How long to wait for the API to answer.
        #[arg(long, value_name = "DURATION", default_value = "20m", value_parser = parse_lock_timeout)]
        api_timeout: LockTimeout,
    },
    /// Show what `addons apply` would do: each addon installed, upgraded,
    /// re-applied, left alone or refused (a downgrade), and the objects it
    /// would prune. Writes nothing.
    Plan {
        #[command(flatten)]
        spec: SpecArg,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        api: ApiKubeconfig,
    },
}

/// How `addons` commands reach the cluster's API.
#[derive(Debug, Args)]
pub struct ApiKubeconfig {
    /// Reach the API with this kubeconfig. Without it: the usual
    /// kubeconfig when its current context is this cluster's API, else an
    /// admin certificate minted for `https://api.<cluster>`.
    #[arg(long, value_name = "FILE", env = "CLUSTERCTL_API_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// A `--lock-timeout` value.
#[derive(Debug, Clone, Copy)]
pub struct LockTimeout(pub std::time::Duration);

fn parse_parallelism(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s} is not a whole number of at least 1")),
    }
}

fn parse_lock_timeout(s: &str) -> Result<LockTimeout, String> {
    clusterctl::spec::validate::parse_duration(s)
        .map(|secs| LockTimeout(std::time::Duration::from_secs(secs)))
        .ok_or_else(|| format!("{s} is not a duration such as 30s or 5m"))
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Summarise the store: serial, lock, objects.
    Show {
        #[command(flatten)]
        spec: SpecArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Download every object of the cluster's state into a directory.
    Pull {
        #[command(flatten)]
        spec: SpecArg,
        /// Directory to write into.
        #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = "state")]
        dir: PathBuf,
    },
}

/// `secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Write whatever of the cluster's secrets is missing (never replaces
    /// one); refused for a cluster whose instances run without them.
    Create {
        #[command(flatten)]
        spec: SpecArg,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Remove the secrets, the init claim and the etcd backups, once the
    /// cluster's resources are gone; refused while any remain.
    Delete {
        #[command(flatten)]
        spec: SpecArg,
        /// Delete without asking (required).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn output_after_subcommand() {
        let cli =
            Cli::try_parse_from(["clusterctl", "validate", "-f", "x.yaml", "-o", "json"]).unwrap();
        match cli.command {
            Command::Validate { output, .. } => assert_eq!(output.output, Some(Format::Json)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parallelism_is_at_least_one() {
        let parse = |cmd: &str, n: &str| {
            Cli::try_parse_from(["clusterctl", cmd, "-f", "x.yaml", "--parallelism", n])
        };
        match parse("plan", "3").unwrap().command {
            Command::Plan { parallelism, .. } => assert_eq!(parallelism, 3),
            other => panic!("{other:?}"),
        }
        for cmd in ["plan", "apply", "destroy"] {
            for bad in ["0", "many"] {
                let err = parse(cmd, bad).unwrap_err().to_string();
                assert!(
                    err.contains("--parallelism") && err.contains("at least 1"),
                    "{cmd} {bad}: {err}"
                );
            }
        }
    }

    #[test]
    fn lock_timeout_is_a_duration() {
        let cli = Cli::try_parse_from([
            "clusterctl",
            "destroy",
            "-f",
            "x.yaml",
            "--yes",
            "--lock-timeout",
            "1m30s",
        ])
        .unwrap();
        match cli.command {
            Command::Destroy { run, .. } => {
                assert_eq!(run.lock_timeout.map(|t| t.0.as_secs()), Some(90));
            }
            other => panic!("{other:?}"),
        }
        let err = Cli::try_parse_from([
            "clusterctl",
            "destroy",
            "-f",
            "x.yaml",
            "--lock-timeout",
            "soon",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("soon is not a duration"), "{err}");
    }

    #[test]
    fn render_takes_a_directory() {
        let cli = Cli::try_parse_from([
            "clusterctl",
            "render",
            "-f",
            "x.yaml",
            "-o",
            "/tmp/x",
            "--check",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Render { check: true, .. }));
    }
}

/// How the queue autoscaler reaches RabbitMQ.
#[derive(clap::Args, Debug, Clone)]
pub struct RabbitmqArgs {
    /// A RabbitMQ management API, `NAME=URL` (repeat for several; the
    /// `server` annotation picks one, `default` when absent). https:// uses
    /// TLS, trusting --ca-file.
    #[arg(
        long = "server",
        value_name = "NAME=URL",
        env = "CLUSTERCTL_SERVERS",
        value_delimiter = ',',
        required = true
    )]
    pub servers: Vec<String>,
    /// A server's AMQP endpoint, `NAME=amqp://HOST:PORT` (or amqps://), used
    /// to read the exact depth of a queue the management API has not
    /// counted yet. Default: the management URL's host on 5672 (5671 with
    /// amqps for an https management URL).
    #[arg(
        long = "amqp",
        value_name = "NAME=URL",
        env = "CLUSTERCTL_AMQP",
        value_delimiter = ','
    )]
    pub amqp: Vec<String>,
    /// Credentials as files `DIR/NAME/username` and `DIR/NAME/password`
    /// (a mounted Secret); else CLUSTERCTL_RABBITMQ_USERNAME and
    /// CLUSTERCTL_RABBITMQ_PASSWORD.
    #[arg(long, value_name = "DIR", env = "CLUSTERCTL_CREDENTIALS_DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// PEM CA certificates to trust for https and amqps (instead of the
    /// system's).
    #[arg(long, value_name = "FILE", env = "CLUSTERCTL_RABBITMQ_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Each management API request gives up after this long.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_REQUEST_TIMEOUT", default_value = "5s", value_parser = clusterctl::controllers::runtime::duration, allow_hyphen_values = true)]
    pub request_timeout: std::time::Duration,
}

/// A janitor rule, for `--disable`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JanitorRule {
    /// Superseded empty ReplicaSets of Deployments.
    Replicasets,
    /// Finished Jobs.
    Jobs,
    /// Evicted (or failed) pods.
    Pods,
    /// TTL annotations.
    Ttl,
}

/// The janitor's rules and pace.
#[derive(clap::Args, Debug, Clone)]
pub struct JanitorArgs {
    /// A rules file (YAML): rules on or off, tuned, and per-namespace
    /// overrides; it applies over these flags.
    #[arg(long, value_name = "FILE", env = "CLUSTERCTL_JANITOR_RULES")]
    pub rules: Option<PathBuf>,
    /// Only these namespaces (repeat for several; a namespace named here
    /// may itself be deleted by its TTL). Default: every namespace.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Vec<String>,
    /// Switch a rule off (repeat for several).
    #[arg(long, value_enum, value_name = "RULE")]
    pub disable: Vec<JanitorRule>,
    /// ReplicaSets younger than this are kept.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = clusterctl::controllers::runtime::age, allow_hyphen_values = true)]
    pub replicaset_min_age: std::time::Duration,
    /// A Deployment's newest revisions are kept.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keep_revisions: u32,
    /// ReplicaSets without an owner may be deleted too.
    #[arg(long)]
    pub orphans: bool,
    /// Finished Jobs are deleted this long after they finished.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = clusterctl::controllers::runtime::age, allow_hyphen_values = true)]
    pub job_ttl: std::time::Duration,
    /// Jobs of CronJobs too (by default left to their history limits).
    #[arg(long)]
    pub include_cronjob_jobs: bool,
    /// Evicted pods are deleted this long after they failed.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = clusterctl::controllers::runtime::age, allow_hyphen_values = true)]
    pub pod_ttl: std::time::Duration,
    /// Every Failed pod, not only evicted ones.
    #[arg(long)]
    pub all_failed_pods: bool,
    /// Kinds whose TTL annotations count (namespaces always do):
    /// configmaps, secrets, services, deployments.apps, jobs.batch, ...
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Deletes started a second, at most.
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub max_deletes_per_second: f64,
    /// Deletes in flight, at most.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// The report: a table or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: JanitorOutput,
}

/// The janitor's report format.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JanitorOutput {
    /// A table.
    Table,
    /// JSON.
    Json,
}

/// What node cleanup removes, and where the runtimes are.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeCleanupArgs {
    /// Docker's socket; used when it exists.
    #[arg(
        long,
        value_name = "PATH",
        env = "CLUSTERCTL_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    pub docker_socket: String,
    /// containerd's socket; used when Docker's does not exist.
    #[arg(
        long,
        value_name = "PATH",
        env = "CLUSTERCTL_CONTAINERD_SOCKET",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub containerd_socket: String,
    /// containerd's root directory (how full its disk is).
    #[arg(
        long,
        value_name = "PATH",
        env = "CLUSTERCTL_CONTAINERD_ROOT",
        default_value = "/var/lib/containerd"
    )]
    pub containerd_root: String,
    /// Exited containers are kept this long after they exit.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = clusterctl::controllers::runtime::age, allow_hyphen_values = true)]
    pub container_grace: std::time::Duration,
    /// Dangling images are kept this long after they were made.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = clusterctl::controllers::runtime::age, allow_hyphen_values = true)]
    pub image_grace: std::time::Duration,
    /// Keep dangling volumes (Docker).
    #[arg(long)]
    pub keep_volumes: bool,
    /// Also remove unused (tagged) images while the disk is fuller than
    /// --disk-threshold.
    #[arg(long)]
    pub unused_images: bool,
    /// Percent of the runtime's disk above which unused images go (below
    /// the kubelet's image GC high threshold, 85%).
    #[arg(long, value_name = "PERCENT", default_value_t = 80.0)]
    pub disk_threshold: f64,
}
