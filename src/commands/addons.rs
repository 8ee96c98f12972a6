//! `clusterctl addons apply`, and the same step at the end of `clusterctl
//! apply`: wait for the cluster's API, then install the bootstrap channel.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use clusterctl::addons::install::{self, Decision, Outcome};
use clusterctl::spec::Spec;
use clusterctl::state::StateStore;

use super::{AppError, Report, runtime, state_store};

/// Lifetime of the admin certificate minted for one run.
const ADMIN_CERT_TTL: Duration = Duration::from_secs(3600);
/// Pause between attempts to reach the API.
const POLL: Duration = Duration::from_secs(5);

/// `https://api.<cluster>:<port>`: the public endpoint, which the cluster's
/// API certificate names.
pub fn public_server(spec: &Spec) -> String {
    let c = &spec.cluster;
    let port = c.spec.api.as_ref().and_then(|a| a.port).unwrap_or(443);
    format!("https://api.{}:{port}", c.metadata.name)
}

/// A client for the cluster: from `kubeconfig` when given, else an admin
/// certificate minted from the CA in the state store. Returns the server
/// it talks to, for messages.
async fn client(
    spec: &Spec,
    store: &StateStore,
    kubeconfig: Option<&Path>,
) -> Result<(kube::Client, String), AppError> {
    match kubeconfig {
        Some(path) => {
            let client = clusterctl::kubeconfig::client_from_file(path).await?;
            Ok((client, format!("the cluster of {}", path.display())))
        }
        None => {
            let server = public_server(spec);
            let text = clusterctl::kubeconfig::admin_kubeconfig(
                store,
                &spec.cluster.metadata.name,
                &server,
                ADMIN_CERT_TTL,
            )
            .await?;
            let client =
                clusterctl::kubeconfig::client_from_yaml(&text, "minted admin kubeconfig").await?;
            Ok((client, server))
        }
    }
}

/// What an install did.
#[derive(Debug, serde::Serialize)]
pub struct Installed {
    /// The API it talked to, and its version.
    pub server: String,
    /// One outcome per addon.
    pub addons: Vec<Outcome>,
    /// The bootstrap-token pass.
    #[serde(rename = "bootstrapToken")]
    pub token: clusterctl::controllers::bootstrap_token::Decision,
}

/// Waits for the API (with a spinner on a terminal, a line every 30 s
/// otherwise), applies the channel, and keeps the bootstrap token fresh
/// (the pass the CronJob runs).
pub async fn install(
    spec: &Spec,
    store: &StateStore,
    kubeconfig: Option<&Path>,
    timeout: Duration,
) -> Result<Installed, AppError> {
    let rendered =
        clusterctl::addons::channel::render(spec).map_err(|e| AppError::Usage(e.to_string()))?;
    let (client, server) = client(spec, store, kubeconfig).await?;
    let spinner = if std::io::stdout().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let mut last_line = Duration::ZERO;
    let version = install::wait_for_api(&client, &server, timeout, POLL, |waited, err| {
        let msg = format!(
            "Waiting for the Kubernetes API at {server} ({}s of {}s): {err}",
            waited.as_secs(),
            timeout.as_secs()
        );
        match &spinner {
            Some(bar) => bar.set_message(msg),
            None if waited >= last_line + Duration::from_secs(30) || last_line.is_zero() => {
                last_line = waited.max(Duration::from_millis(1));
                println!("{msg}");
            }
            None => {}
        }
    })
    .await;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let version = version.map_err(AppError::Addons)?;
    let outcomes = install::apply_channel(&client, &rendered)
        .await
        .map_err(AppError::Addons)?;
    let token =
        clusterctl::controllers::bootstrap_token::run(&client, store, &Default::default()).await?;
    Ok(Installed {
        server: format!("{server} ({version})"),
        addons: outcomes,
        token,
    })
}

/// The human summary of an install.
pub fn summary(done: &Installed) -> String {
    let mut human = format!("\nAddons on {}:\n", done.server);
    let outcomes = &done.addons;
    for o in outcomes {
        let what = match &o.decision {
            Decision::Install => format!("installed ({} objects)", o.objects),
            Decision::Upgrade { from } => format!("upgraded from {from} ({} objects)", o.objects),
            Decision::Reapply => format!("manifest changed, applied ({} objects)", o.objects),
            Decision::UpToDate => "up to date".to_string(),
            Decision::NoDowngrade { installed } => {
                format!("left at {installed}: the cluster runs a higher version")
            }
        };
        let _ = writeln!(human, "  {} {}: {what}", o.name, o.version);
    }
    let changed = outcomes.iter().filter(|o| o.decision.applies()).count();
    if changed == 0 {
        human.push_str("No addon changes.\n");
    }
    let _ = writeln!(human, "{}", super::token::describe(&done.token, false));
    human
}

/// `clusterctl addons apply -f FILE`.
pub fn apply(
    file: &Path,
    kubeconfig: Option<&Path>,
    timeout: Duration,
) -> Result<Report, AppError> {
    let spec = Spec::load(file)?;
    runtime()?.block_on(async {
        let store = state_store(&spec).await?;
        let done = install(&spec, &store, kubeconfig, timeout).await?;
        Ok(Report::ok(summary(&done), serde_json::to_value(&done)?))
    })
}
