//! `clusterctl preview …`: the CLI around [`clusterctl::preview`].

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clusterctl::cloud::dns::Route53;
use clusterctl::preview::config::{CONFIG_PATH, PreviewConfig};
use clusterctl::preview::ledger::LedgerStore;
use clusterctl::preview::{Shared, inputs, manage, naming, up};
use clusterctl::telemetry::{self, LogFormat};

use crate::cli::preview::{PreviewCommand, PreviewOutput, Where};

fn config_path(at: &Where) -> PathBuf {
    at.config
        .clone()
        .unwrap_or_else(|| at.dir.join(CONFIG_PATH))
}

/// The repo's config; `required`: an error when it is missing.
fn load_config(at: &Where, required: bool) -> Result<Option<PreviewConfig>, String> {
    let path = config_path(at);
    match std::fs::read_to_string(&path) {
        Ok(text) => PreviewConfig::parse(&text, &path.display().to_string())
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => Err(format!(
            "cannot read preview config {}: {e}",
            path.display()
        )),
    }
}

fn repo(at: &Where) -> Result<String, String> {
    match &at.repo {
        Some(r) => Ok(r.clone()),
        None => inputs::current_repo(&at.dir),
    }
}

async fn shared(at: &Where, config: Option<&PreviewConfig>) -> Result<Shared, String> {
    let state = at
        .state
        .clone()
        .or_else(|| config.and_then(|c| c.state.clone()))
        .ok_or("name the ledgers' state store with --state s3://bucket/prefix (or `state:` in the preview config)")?;
    let clients = clusterctl::cloud::Clients::load(&at.region).await;
    let ledgers = up::ledgers(clients.s3.clone(), &state).map_err(|e| e.to_string())?;
    let client = client(at.kubeconfig.as_deref()).await?;
    Ok(Shared {
        client,
        dns: Arc::new(Route53::new(clients.route53.clone())),
        ledgers,
    })
}

async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client, String> {
    let config = clusterctl::controllers::runtime::client::config(kubeconfig)
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| format!("cannot make a Kubernetes client: {e}"))
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs a preview command.
pub fn run(command: PreviewCommand, verbose: u8) -> ExitCode {
    if let PreviewCommand::Gc {
        state,
        region,
        default_ttl,
        output,
        runtime,
    } = command
    {
        return gc(state, region, default_ttl, output, *runtime, verbose);
    }
    telemetry::init_cli(verbose, LogFormat::Text);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run_async(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn gc(
    state: String,
    region: String,
    default_ttl: std::time::Duration,
    output: PreviewOutput,
    runtime: clusterctl::controllers::runtime::RuntimeArgs,
    verbose: u8,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let made = rt.block_on(async {
        let clients = clusterctl::cloud::Clients::load(&region).await;
        up::ledgers(clients.s3.clone(), &state).map(|l| (clients, l))
    });
    let (clients, ledgers): (_, LedgerStore) = match made {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    drop(rt);
    let once = runtime.once;
    super::component::run(
        clusterctl::preview::component::PreviewGc::new(
            Arc::new(Route53::new(clients.route53.clone())),
            ledgers,
            default_ttl,
            output == PreviewOutput::Json,
            once,
        ),
        runtime,
        verbose,
    )
}

async fn run_async(command: PreviewCommand) -> Result<(), String> {
    let now = chrono::Utc::now();
    match command {
        PreviewCommand::Up {
            at,
            branch,
            service,
            image,
            tag,
            ttl,
            owner,
            timeout,
            no_wait,
        } => {
            let config = load_config(&at, true)?.ok_or("no preview config")?;
            let repo = repo(&at)?;
            let branch = match branch {
                Some(b) => b,
                None => inputs::current_branch(&at.dir)?,
            };
            let image = match (image, tag) {
                (Some(i), _) => i,
                (None, Some(t)) => {
                    inputs::check_tag(&t)?;
                    let (name, svc) = config.service(service.as_deref())?;
                    let pattern = svc.image.as_ref().ok_or_else(|| {
                        format!("--tag needs services.{name}.image (a pattern with {{tag}}) in {CONFIG_PATH}; or give --image")
                    })?;
                    pattern.replace("{tag}", &t)
                }
                (None, None) => return Err("give --image or --tag".into()),
            };
            let s = shared(&at, Some(&config)).await?;
            let params = up::UpParams {
                repo,
                branch,
                service,
                image,
                ttl,
                owner: owner.unwrap_or_else(|| inputs::current_owner(&at.dir)),
                root: at.dir.clone(),
                wait: (!no_wait).then_some(timeout),
            };
            let tty = std::io::stderr().is_terminal();
            let bar = tty.then(|| {
                let b = indicatif::ProgressBar::new_spinner();
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                b
            });
            let mut progress = |m: &str| match &bar {
                Some(b) => b.set_message(m.to_string()),
                None => eprintln!("  {m}"),
            };
            let r = up::up(&s, &config, &params, now, &mut progress).await;
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            let r = r.map_err(|e| e.to_string())?;
            match at.output {
                PreviewOutput::Json => print_json(&r),
                PreviewOutput::Table => println!(
                    "{} {} (namespace {}, expires {})\n{}",
                    if r.created { "Deployed" } else { "Redeployed" },
                    r.host,
                    r.namespace,
                    r.expires_at.to_rfc3339(),
                    r.url
                ),
            }
        }
        PreviewCommand::List { at, all } => {
            let config = load_config(&at, false)?;
            let scheme = config
                .as_ref()
                .map_or("https", |c| c.scheme.as_str())
                .to_string();
            let only = if all { None } else { Some(repo(&at)?) };
            let client = client(at.kubeconfig.as_deref()).await?;
            // Listing needs no ledger store: a placeholder handle is never used.
            let rows = manage::list_with(&client, only.as_deref(), &scheme, now)
                .await
                .map_err(|e| e.to_string())?;
            match at.output {
                PreviewOutput::Json => print_json(&rows),
                PreviewOutput::Table => print!("{}", manage::table(&rows, now)),
            }
        }
        PreviewCommand::Extend { branch, at, ttl } => {
            let config = load_config(&at, false)?;
            let ns = naming::namespace(&repo(&at)?, &branch)?;
            let s = shared(&at, config.as_ref()).await?;
            let l = up::extend(&s, &ns, ttl, now)
                .await
                .map_err(|e| e.to_string())?;
            match at.output {
                PreviewOutput::Json => print_json(&l),
                PreviewOutput::Table => println!("{ns} now expires {}", l.expires_at.to_rfc3339()),
            }
        }
        PreviewCommand::Down { branch, at } => {
            let config = load_config(&at, false)?;
            let ns = naming::namespace(&repo(&at)?, &branch)?;
            let s = shared(&at, config.as_ref()).await?;
            let d = manage::down(&s, &ns).await.map_err(|e| e.to_string())?;
            match at.output {
                PreviewOutput::Json => print_json(&d),
                PreviewOutput::Table => {
                    println!(
                        "Removed {}{}{}",
                        ns,
                        if d.records.is_empty() {
                            String::new()
                        } else {
                            format!(" and {}", d.records.join(", "))
                        },
                        if d.namespace_deleted {
                            ""
                        } else {
                            " (the namespace was already gone)"
                        }
                    );
                    for n in &d.notes {
                        eprintln!("warning: {n}");
                    }
                }
            }
        }
        PreviewCommand::Gc { .. } => unreachable!("gc runs on the controller runtime"),
    }
    Ok(())
}
