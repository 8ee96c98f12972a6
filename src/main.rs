//! The `clusterctl` binary: parse arguments, set up logging, dispatch, and
//! turn errors into a report and an exit code.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use clusterctl::model::{self, ModelError};
use clusterctl::render::{self, RenderError};
use clusterctl::spec::{Spec, SpecError};
use clusterctl::state::{StateError, StateStore};

use cli::{Cli, Command, Format, StateCommand};

/// Everything that can end a command.
#[derive(Debug, thiserror::Error)]
enum AppError {
    /// The spec is unreadable or invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Rendering or writing failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The state store failed or is locked.
    #[error(transparent)]
    State(#[from] StateError),
    /// The direct target failed.
    #[error(transparent)]
    Direct(#[from] clusterctl::direct::DirectError),
    /// A flag's value is unusable.
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// JSON output failed.
    #[error("serialising output: {0}")]
    Json(#[from] serde_json::Error),
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// The state store of the cluster a spec describes.
async fn state_store(spec: &Spec) -> StateStore {
    let (bucket, prefix) =
        model::state_location(&spec.cluster.spec.state_store, &spec.cluster.metadata.name);
    let clients = clusterctl::cloud::Clients::load(&spec.cluster.spec.region).await;
    StateStore::new(clients.s3, &bucket, &prefix)
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let format = match &cli.command {
        Command::Validate { output, .. } => output.output.unwrap_or(cli.output),
        Command::State {
            command: StateCommand::Show { output, .. },
        } => output.output.unwrap_or(cli.output),
        Command::Render { format, .. } => format.unwrap_or(cli.output),
        _ => cli.output,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            report(&e, format);
            ExitCode::from(1)
        }
    }
}

fn report(e: &AppError, format: Format) {
    let spec_error = match e {
        AppError::Spec(s) | AppError::Direct(clusterctl::direct::DirectError::Spec(s)) => Some(s),
        _ => None,
    };
    if let Some(SpecError::Invalid { file, problems }) = spec_error {
        if format == Format::Json {
            let v = serde_json::json!({ "valid": false, "file": file, "problems": problems });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {e}");
        for p in problems {
            let _ = writeln!(err, "  {}", p.to_string().replace('\n', "\n  "));
        }
        return;
    }
    let mut msg = format!("error: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!("\n  caused by: {s}"));
        src = s.source();
    }
    eprintln!("{msg}");
}

fn print_json(v: &serde_json::Value) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Reads a plan saved by `plan --out`.
fn read_saved_plan(path: &std::path::Path) -> Result<clusterctl::plan::Plan, AppError> {
    let bad = |why: String| {
        AppError::Usage(format!(
            "{}: not a plan saved by `clusterctl plan --out`: {why}",
            path.display()
        ))
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let plan: clusterctl::plan::Plan =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if plan.format_version != clusterctl::plan::PLAN_FORMAT {
        return Err(bad(format!(
            "format version {}, this clusterctl reads {}",
            plan.format_version,
            clusterctl::plan::PLAN_FORMAT
        )));
    }
    Ok(plan)
}

/// Runs apply or destroy through the direct target, with progress on stdout.
fn run_direct(
    s: &Spec,
    m: model::Model,
    destroy: bool,
    saved: Option<clusterctl::plan::Plan>,
    run: &cli::RunArgs,
) -> Result<ExitCode, AppError> {
    let lock_timeout = match &run.lock_timeout {
        Some(t) => Some(std::time::Duration::from_secs(
            clusterctl::spec::validate::parse_duration(t).ok_or_else(|| {
                AppError::Usage(format!(
                    "--lock-timeout {t} is not a duration such as 30s or 5m"
                ))
            })?,
        )),
        None => None,
    };
    runtime()?.block_on(async {
        let mut d = clusterctl::direct::Direct::connect(s, m).await?;
        match &saved {
            _ if destroy => {}
            Some(p) => d.pin_images(&p.images).await?,
            None => d.resolve_images().await?,
        }
        let op = if destroy { clusterctl::direct::Operation::Destroy } else { clusterctl::direct::Operation::Apply };
        let progress = clusterctl::apply::progress::for_stdout();
        let result = d.run(op, saved, run.parallelism, lock_timeout, progress.clone()).await;
        progress.finish();
        let tag = format!("{}=owned", clusterctl::model::naming::ownership_tag(&d.model.cluster_name));
        let applied = match result {
            Ok(r) => r,
            Err(e) => {
                if let clusterctl::direct::DirectError::Apply { plan, .. } = &e {
                    print!("{}", plan.untouched_note(&tag));
                }
                return Err(e.into());
            }
        };
        let (plan, serial) = (&applied.plan, applied.serial);
        print!("{}", plan.untouched_note(&tag));
        if !applied.secrets_written.is_empty() {
            println!(
                "\nWrote the cluster's secrets to the state store: {}",
                applied.secrets_written.join(", ")
            );
        }
        if applied.secrets_removed > 0 {
            println!(
                "\nRemoved {} secret objects (pki/, secrets/) from the state store.",
                applied.secrets_removed
            );
        }
        let sum = plan.summary();
        println!(
            "\n{} complete! Resources: {} added, {} changed, {} destroyed. State serial {serial}. ({} AWS API calls, {} retried after throttling or transient errors)",
            if destroy { "Destroy" } else { "Apply" }, sum.add, sum.change, sum.destroy, d.calls.operations(),
            d.calls.retries()
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn not_implemented(name: &str) -> Result<ExitCode, AppError> {
    eprintln!("clusterctl: `{name}` is not implemented yet");
    Ok(ExitCode::from(3))
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn run(cli: Cli) -> Result<ExitCode, AppError> {
    let root_format = cli.output;
    match cli.command {
        Command::Validate { spec, output } => {
            let format = output.output.unwrap_or(root_format);
            let s = Spec::load(&spec.file)?;
            match format {
                Format::Json => print_json(&s.completed_json())?,
                Format::Yaml => print!("{}", s.completed_yaml()),
                Format::Human => {
                    let topo = s
                        .cluster
                        .spec
                        .topology
                        .map(|t| format!("{t:?}").to_lowercase())
                        .unwrap_or_default();
                    println!(
                        "{}: cluster {} is valid ({}, {}, {topo} topology)",
                        s.file,
                        s.cluster.metadata.name,
                        plural(s.cluster.spec.zones.len(), "zone"),
                        plural(s.groups.len(), "instance group")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            spec,
            out,
            check,
            format,
        } => {
            let format = format.unwrap_or(root_format);
            let s = Spec::load(&spec.file)?;
            let m = model::build(&s)?;
            let rendered = render::render(&m)?;
            if check {
                let diffs = rendered.check(&out);
                if format == Format::Json {
                    print_json(
                        &serde_json::json!({ "upToDate": diffs.is_empty(), "differences": diffs }),
                    )?;
                } else if diffs.is_empty() {
                    println!(
                        "{} is up to date ({} files)",
                        out.display(),
                        rendered.files.len()
                    );
                } else {
                    println!("{} is stale; {} files differ:", out.display(), diffs.len());
                    for d in &diffs {
                        println!("  {:<8} {}", d.kind, d.path);
                    }
                }
                return Ok(if diffs.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            let written = rendered.write(&out)?;
            let counts = m.counts();
            if format == Format::Json {
                print_json(&serde_json::json!({
                    "cluster": m.cluster_name,
                    "out": out,
                    "resources": counts,
                    "files": rendered.files.keys().collect::<Vec<_>>(),
                    "written": written,
                }))?;
            } else {
                println!(
                    "cluster {} ({}): {} resources",
                    m.cluster_name,
                    m.region,
                    m.resources.len()
                );
                for (kind, n) in &counts {
                    println!("  {n:>4}  {kind}");
                }
                let tf = rendered
                    .files
                    .keys()
                    .filter(|k| k.starts_with("terraform/"))
                    .count();
                let addons = rendered.files.len() - tf;
                println!(
                    "wrote {written} of {} files to {} ({tf} under terraform/, {addons} under addons/)",
                    rendered.files.len(),
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::State {
            command: StateCommand::Show { spec, output },
        } => {
            let format = output.output.unwrap_or(root_format);
            let s = Spec::load(&spec.file)?;
            runtime()?.block_on(async {
                let store = state_store(&s).await;
                let serial = store.serial().await?;
                let lock = store.lock_holder().await?;
                let objects = store.list().await?;
                if format == Format::Json {
                    let objs: Vec<_> = objects
                        .iter()
                        .map(|(k, n)| serde_json::json!({ "key": k, "size": n }))
                        .collect();
                    print_json(&serde_json::json!({
                        "store": format!("s3://{}/{}", store.bucket, store.prefix),
                        "serial": serial, "lock": lock, "objects": objs,
                    }))?;
                } else {
                    println!("state store s3://{}/{}", store.bucket, store.prefix);
                    println!("serial: {serial}");
                    match &lock {
                        Some(l) => println!(
                            "lock: {} held by {} for {} since {}",
                            l.id, l.who, l.operation, l.created
                        ),
                        None => println!("lock: free"),
                    }
                    println!("{} objects:", objects.len());
                    for (k, n) in &objects {
                        println!("  {n:>8}  {k}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::State {
            command: StateCommand::Pull { spec, dir },
        } => {
            let s = Spec::load(&spec.file)?;
            runtime()?.block_on(async {
                let store = state_store(&s).await;
                let n = store.pull(&dir).await?;
                println!(
                    "pulled {} objects from s3://{}/{} into {} (owner-only: they hold the cluster's CA keys)",
                    n,
                    store.bucket,
                    store.prefix,
                    dir.display()
                );
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::ForceUnlock { id, spec } => {
            let s = Spec::load(&spec.file)?;
            runtime()?.block_on(async {
                let store = state_store(&s).await;
                store.force_unlock(&id).await?;
                println!(
                    "lock {id} removed from s3://{}/{}",
                    store.bucket, store.prefix
                );
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "clusterctl",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            spec,
            output,
            detailed_exitcode,
            out,
        } => {
            let format = output.output.unwrap_or(root_format);
            let s = Spec::load(&spec.file)?;
            let m = model::build(&s)?;
            runtime()?.block_on(async {
                let mut d = clusterctl::direct::Direct::connect(&s, m).await?;
                d.resolve_images().await?;
                let (mut plan, _) = d.plan().await?;
                if let Some(path) = &out {
                    plan.spec = Some(clusterctl::plan::SavedSpec {
                        file: spec.file.display().to_string(),
                        text: s.source.clone(),
                    });
                    std::fs::write(path, serde_json::to_vec_pretty(&plan)?)?;
                }
                if format == Format::Json {
print_json(&serde_json::json!({
                        "plan": plan,
                        "summary": plan.summary(),
                        "apiCalls": d.calls.operations(),
                    }))?;
                } else {
                    print!("{}", plan.render());
                    print!("{}", plan.untouched_note(&format!("{}=owned", clusterctl::model::naming::ownership_tag(&d.model.cluster_name))));
                    if let Some(path) = &out {
                        println!("\nSaved the plan to {} (state serial {}, with its spec). Apply it with: clusterctl apply {}", path.display(), plan.serial, path.display());
                    } else if !plan.is_empty() {
                        println!("\nMust specify --yes to apply changes: clusterctl apply -f {} --yes", spec.file.display());
                    }
                }
                Ok(if detailed_exitcode && !plan.is_empty() { ExitCode::from(2) } else { ExitCode::SUCCESS })
            })
        }
        Command::Apply {
            file,
            plan,
            yes,
            run,
        } => {
            if plan.is_none() && !yes {
                eprintln!(
                    "Must specify --yes to apply changes (or give a plan saved with `clusterctl plan --out`)."
                );
                return Ok(ExitCode::from(1));
            }
            let saved = plan.as_deref().map(read_saved_plan).transpose()?;
            let s = match (&file, saved.as_ref().and_then(|p| p.spec.as_ref())) {
                (Some(f), Some(embedded)) => {
                    let s = Spec::load(f)?;
                    if s.source != embedded.text {
                        return Err(AppError::Usage(format!(
                            "{} is not the spec the saved plan was made from ({} as it was then); run plan again, or apply the plan without -f",
                            f.display(),
                            embedded.file
                        )));
                    }
                    s
                }
                (Some(f), None) => Spec::load(f)?,
                (None, Some(embedded)) => Spec::parse(&embedded.text, &embedded.file)?,
                (None, None) => {
                    return Err(AppError::Usage(
                        "give the spec with -f FILE (or a plan saved with `clusterctl plan --out`)"
                            .into(),
                    ));
                }
            };
            let m = model::build(&s)?;
            run_direct(&s, m, false, saved, &run)
        }
        Command::Destroy { spec, yes, run } => {
            if !yes {
                eprintln!("Must specify --yes to destroy.");
                return Ok(ExitCode::from(1));
            }
            let s = Spec::load(&spec.file)?;
            let m = model::build(&s)?;
            run_direct(&s, m, true, None, &run)
        }
        Command::Preview(_) => not_implemented("preview"),
        Command::NodeAutoscaler(_) => not_implemented("node-autoscaler"),
        Command::QueueAutoscaler(_) => not_implemented("queue-autoscaler"),
        Command::Janitor(_) => not_implemented("janitor"),
        Command::NodeCleanup(_) => not_implemented("node-cleanup"),
    }
}
