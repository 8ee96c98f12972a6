//! `clusterctl addons apply`, and the same step at the end of `clusterctl
//! apply`: wait for the cluster's API, then install the bootstrap channel.

use std::collections::BTreeMap;
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
/// `addons plan` does not wait for a cluster to come up.
const PLAN_API_TIMEOUT: Duration = Duration::from_secs(10);

/// `https://api.<cluster>:<port>`: the public endpoint, which the cluster's
/// API certificate names.
pub fn public_server(spec: &Spec) -> String {
    let c = &spec.cluster;
    let port = c.spec.api.as_ref().and_then(|a| a.port).unwrap_or(443);
    format!("https://api.{}:{port}", c.metadata.name)
}

/// A client for the cluster: from `kubeconfig` when given; else from the
/// usual kubeconfig (`KUBECONFIG`, `~/.kube/config`) when its current
/// context is this cluster's API; else with an admin certificate minted
/// from the CA in the state store. Returns what it talks to, for messages.
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
            if let Some(client) =
                clusterctl::kubeconfig::usual_client_for(&spec.cluster.metadata.name).await
            {
                return Ok((client, format!("{server} (your kubeconfig)")));
            }
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
    /// Channel files written to the state store (those that differed).
    pub uploaded: Vec<String>,
    /// One outcome per addon.
    pub addons: Vec<Outcome>,
    /// The bootstrap-token pass.
    #[serde(rename = "bootstrapToken")]
    pub token: clusterctl::controllers::bootstrap_token::Decision,
}

/// Writes the rendered channel and its manifests under `addons/` in the
/// state store, where `clusterctl apply` keeps them, as kops keeps its
/// channel beside the cluster spec. Only files that differ are written;
/// returns their names.
pub async fn upload_channel(
    store: &StateStore,
    rendered: &BTreeMap<String, String>,
) -> Result<Vec<String>, AppError> {
    // Every file is read at once (one round trip, not one per file); only
    // those that differ are written.
    let stored = futures::future::try_join_all(
        rendered
            .keys()
            .map(|path| async move { store.get(&format!("addons/{path}")).await }),
    )
    .await?;
    let mut written = Vec::new();
    for ((path, content), now) in rendered.iter().zip(stored) {
        if now.is_some_and(|(body, _)| body == content.as_bytes()) {
            continue;
        }
        let name = format!("addons/{path}");
        store.put(&name, content.clone().into_bytes()).await?;
        written.push(name);
    }
    Ok(written)
}

/// Waits for the API (with a spinner on a terminal, a line every 30 s
/// otherwise) and returns the client, the server and its version.
async fn reach(
    spec: &Spec,
    store: &StateStore,
    kubeconfig: Option<&Path>,
    timeout: Duration,
) -> Result<(kube::Client, String), AppError> {
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
    Ok((client, format!("{server} ({version})")))
}

/// Waits for the API, plans the channel (a downgrade refuses the whole
/// run), writes the channel to the state store, applies the plan, and
/// keeps the bootstrap token fresh (the pass the CronJob runs).
pub async fn install(
    spec: &Spec,
    store: &StateStore,
    kubeconfig: Option<&Path>,
    timeout: Duration,
) -> Result<Installed, AppError> {
    let rendered =
        clusterctl::addons::channel::render(spec).map_err(|e| AppError::Usage(e.to_string()))?;
    let (client, server) = reach(spec, store, kubeconfig, timeout).await?;
    let plan = install::plan(&client, &rendered)
        .await
        .map_err(AppError::Addons)?;
    if let Some(refused) = plan.refusal() {
        return Err(AppError::Addons(refused));
    }
    let uploaded = upload_channel(store, &rendered).await?;
    let outcomes = install::apply_plan(&client, plan)
        .await
        .map_err(AppError::Addons)?;
    let token =
        clusterctl::controllers::bootstrap_token::run(&client, store, &Default::default()).await?;
    Ok(Installed {
        server,
        uploaded,
        addons: outcomes,
        token,
    })
}

/// One line per addon, and one per object pruned or kept; `planned` words
/// them as what would happen.
fn describe(outcomes: &[Outcome], planned: bool) -> String {
    let mut human = String::new();
    for o in outcomes {
        let what = match (&o.decision, planned) {
            (Decision::Install, false) => format!("installed ({} objects)", o.objects),
            (Decision::Install, true) => format!("install ({} objects)", o.objects),
            (Decision::Upgrade { from }, false) => {
                format!("upgraded from {from} ({} objects)", o.objects)
            }
            (Decision::Upgrade { from }, true) => {
                format!("upgrade from {from} ({} objects)", o.objects)
            }
            (Decision::Reapply, false) => {
                format!("manifest changed, applied ({} objects)", o.objects)
            }
            (Decision::Reapply, true) => format!("manifest changed, apply ({} objects)", o.objects),
            (Decision::UpToDate, _) => "up to date".to_string(),
            (Decision::Downgrade { installed }, _) => format!(
                "REFUSED: the cluster runs {installed}, and clusterctl never downgrades an addon"
            ),
        };
        let _ = writeln!(human, "  {} {}: {what}", o.name, o.version);
        for p in &o.pruned {
            let verb = if planned { "prune" } else { "pruned" };
            let _ = writeln!(human, "    {verb} {p}");
        }
        for k in &o.kept {
            let _ = writeln!(
                human,
                "    keep {k}: labelled as this addon's, but not applied by clusterctl"
            );
        }
    }
    human
}

/// The human summary of an install.
pub fn summary(done: &Installed) -> String {
    let mut human = format!("\nAddons on {}:\n", done.server);
    human.push_str(&describe(&done.addons, false));
    let changed = done.addons.iter().filter(|o| o.decision.applies()).count();
    if changed == 0 {
        human.push_str("No addon changes.\n");
    }
    if !done.uploaded.is_empty() {
        let _ = writeln!(
            human,
            "Wrote {} to the state store.",
            super::plural(done.uploaded.len(), "channel file")
        );
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

/// `clusterctl addons plan -f FILE`.
pub fn plan(file: &Path, kubeconfig: Option<&Path>) -> Result<Report, AppError> {
    let spec = Spec::load(file)?;
    runtime()?.block_on(async {
        let store = state_store(&spec).await?;
        let rendered = clusterctl::addons::channel::render(&spec)
            .map_err(|e| AppError::Usage(e.to_string()))?;
        let (client, server) = reach(&spec, &store, kubeconfig, PLAN_API_TIMEOUT).await?;
        let plan = install::plan(&client, &rendered)
            .await
            .map_err(AppError::Addons)?;
        let outcomes = plan.outcomes();
        let mut human = format!("Addons on {server}:\n");
        human.push_str(&describe(&outcomes, true));
        let changes = outcomes
            .iter()
            .filter(|o| o.decision.applies() || !o.pruned.is_empty())
            .count();
        match plan.refusal() {
            Some(refused) => {
                let _ = writeln!(human, "`addons apply` would refuse: {refused}");
            }
            None if changes == 0 => human.push_str("No addon changes.\n"),
            None => {
                let _ = writeln!(human, "{} would change.", super::plural(changes, "addon"));
            }
        }
        let json = serde_json::json!({
            "server": server,
            "addons": outcomes,
            "refused": plan.refusal().map(|e| e.to_string()),
        });
        Ok(Report::ok(human, json))
    })
}
