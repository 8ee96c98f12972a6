//! The `clusterctl` binary: parse arguments, set up logging, dispatch to
//! a command, print its report, and turn an error into a message and an
//! exit code. Each command lives in `commands/<name>.rs`.

mod cli;
mod commands;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use clusterctl::direct::Operation;
use clusterctl::spec::SpecError;

use cli::{
    AddonsCommand, Cli, Command, Format, NodeAutoscalerCommand, SecretsCommand, StateCommand,
    TokenCommand,
};
use commands::{AppError, Report};

fn main() -> ExitCode {
    // Every command's help ends with examples (cli/examples.rs).
    let matches = cli::examples::with_examples(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::NodeAutoscaler {
        command: None,
        cluster_name,
        region,
        drain_timeout,
        runtime,
        settings,
    } = cli.command
    {
        return commands::node_autoscaler::run(
            cluster_name,
            region,
            drain_timeout,
            *runtime,
            settings.settings(),
            cli.verbose,
        );
    }
    if let Command::NodeCleanup { cleanup, runtime } = cli.command {
        return commands::node_cleanup::run(&cleanup, *runtime, cli.verbose);
    }
    if let Command::Init(flags) = &cli.command {
        clusterctl::telemetry::init_cli(cli.verbose, clusterctl::telemetry::LogFormat::Text);
        let args = commands::init::InitArgs {
            name: flags.name.clone(),
            zones: flags.zones.clone(),
            region: flags.region.clone(),
            state: flags.state.clone(),
            dns_zone: flags.dns_zone.clone(),
            topology: flags.topology.clone(),
            control_planes: flags.control_planes,
            control_plane_size: flags.control_plane_size.clone(),
            node_size: flags.node_size.clone(),
            nodes: flags.nodes.clone(),
            kubernetes_version: flags.kubernetes_version.clone(),
            out: flags.out.clone(),
        };
        let argv = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        return match commands::init::run(&args, &argv) {
            Ok(report) => print_report(report, cli.output),
            Err(commands::init::InitError::Flags(msg)) => Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, msg)
                .exit(),
            Err(commands::init::InitError::App(e)) => {
                report_error(&e, cli.output);
                ExitCode::from(1)
            }
        };
    }
    if let Command::Preview { command } = cli.command {
        return commands::preview::run(command, cli.verbose);
    }
    if let Command::Janitor { janitor, runtime } = cli.command {
        return commands::janitor::run(&janitor, *runtime, cli.verbose);
    }
    if let Command::QueueAutoscaler { rabbitmq, runtime } = cli.command {
        return commands::queue_autoscaler::run(&rabbitmq, *runtime, cli.verbose);
    }
    if let Command::Heartbeat { runtime, heartbeat } = cli.command {
        return commands::component::run(
            clusterctl::controllers::heartbeat::Heartbeat::new(heartbeat),
            *runtime,
            cli.verbose,
        );
    }
    let format = match &cli.command {
        Command::Validate { output, .. }
        | Command::Plan { output, .. }
        | Command::State {
            command: StateCommand::Show { output, .. },
        }
        | Command::Addons {
            command: AddonsCommand::Apply { output, .. } | AddonsCommand::Plan { output, .. },
        }
        | Command::BootstrapToken {
            command: TokenCommand::Rotate { output, .. },
        }
        | Command::NodeAutoscaler {
            command: Some(NodeAutoscalerCommand::Simulate { output, .. }),
            ..
        } => output.output.unwrap_or(cli.output),
        Command::Render { format, .. } => format.unwrap_or(cli.output),
        _ => cli.output,
    };
    // Commands log text unless asked for JSON (`-o json` is the result's
    // format, not the logs').
    let log_format = match cli.log_format {
        cli::CliLogFormat::Json => clusterctl::telemetry::LogFormat::Json,
        cli::CliLogFormat::Text => clusterctl::telemetry::LogFormat::Text,
    };
    clusterctl::telemetry::init_cli(cli.verbose, log_format);
    match run(cli.command, format) {
        Ok(Some(report)) => print_report(report, format),
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e, format);
            ExitCode::from(1)
        }
    }
}

fn print_report(report: Report, format: Format) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Json => serde_json::to_writer_pretty(&mut out, &report.json)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out)),
        _ => out.write_all(report.human.as_bytes()),
    };
    match written {
        Ok(()) => report.code,
        Err(e) => {
            eprintln!("error: writing output: {e}");
            ExitCode::from(1)
        }
    }
}

/// The error, then each cause once: no message repeats its source.
fn report_error(e: &AppError, format: Format) {
    let spec_error = match e {
        AppError::Spec(s) | AppError::Direct(clusterctl::direct::DirectError::Spec(s)) => Some(s),
        _ => None,
    };
    let mut err = std::io::stderr().lock();
    if let Some(SpecError::Invalid { file, problems }) = spec_error {
        if format == Format::Json {
            let v = serde_json::json!({ "valid": false, "file": file, "problems": problems });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        let _ = writeln!(err, "error: {e}");
        for p in problems {
            let _ = writeln!(err, "  {}", p.to_string().replace('\n', "\n  "));
        }
        return;
    }
    // No credentials, rejected ones, or a denied action: one line that says
    // what to do, instead of the SDK's causes. A failed apply keeps its own
    // line first (how many changes failed; the summary above says what was
    // done).
    if let AppError::Direct(clusterctl::direct::DirectError::Apply {
        error: clusterctl::apply::ApplyError::Failed { failed, total },
        ..
    }) = e
        && let Some((address, problem)) = failed.iter().find_map(|f| match &f.error {
            clusterctl::apply::StepError::Cloud(c) => {
                clusterctl::cloud::auth::diagnose(c).map(|p| (&f.address, p))
            }
            _ => None,
        })
    {
        let _ = writeln!(
            err,
            "error: {} of {total} changes failed; {address}: {problem}",
            failed.len()
        );
        return;
    }
    // (A transparent wrapper hands on its inner error's causes, not the
    // inner error: look at the cloud error itself.)
    let problem = match e {
        AppError::Cloud(c) => clusterctl::cloud::auth::diagnose(c),
        other => clusterctl::cloud::auth::diagnose(other),
    };
    if let Some(problem) = problem {
        let _ = writeln!(err, "error: {problem}");
        return;
    }
    let _ = writeln!(err, "error: {e}");
    let mut last = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        // An I/O cause reads as its reason, which the message before it
        // already ends with when it names a file.
        let msg = match s.downcast_ref::<std::io::Error>() {
            Some(io) => clusterctl::io_reason(io),
            None => s.to_string(),
        };
        // Some libraries' errors end with their cause's text: print it once.
        if !last.contains(&msg) {
            let _ = writeln!(err, "  caused by: {msg}");
        }
        last = msg;
        src = s.source();
    }
}

fn run(command: Command, format: Format) -> Result<Option<Report>, AppError> {
    let report = match command {
        Command::Validate { spec, .. } => commands::validate::run(&spec.file, format)?,
        Command::Render {
            spec, out, check, ..
        } => commands::render::run(&spec.file, &out, check)?,
        Command::Plan {
            spec,
            detailed_exitcode,
            out,
            parallelism,
            ..
        } => commands::plan::run(&spec.file, out.as_deref(), detailed_exitcode, parallelism)?,
        Command::Apply {
            file,
            plan,
            yes,
            run,
            addons,
        } => {
            if plan.is_none() && !yes {
                eprintln!(
                    "Must specify --yes to apply changes (or give a plan saved with `clusterctl plan --out`)."
                );
                return Ok(Some(Report {
                    human: String::new(),
                    json: serde_json::json!({ "applied": false }),
                    code: ExitCode::from(1),
                }));
            }
            let saved = plan
                .as_deref()
                .map(commands::apply::read_saved_plan)
                .transpose()?;
            let s = commands::apply::spec_for(file.as_deref(), saved.as_ref())?;
            commands::apply::run(&s, Operation::Apply, saved, &run, Some(&addons))?
        }
        Command::Destroy { spec, yes, run } => {
            if !yes {
                eprintln!("Must specify --yes to destroy.");
                return Ok(Some(Report {
                    human: String::new(),
                    json: serde_json::json!({ "destroyed": false }),
                    code: ExitCode::from(1),
                }));
            }
            let s = clusterctl::spec::Spec::load(&spec.file)?;
            commands::apply::run(&s, Operation::Destroy, None, &run, None)?
        }
        Command::State {
            command: StateCommand::Show { spec, .. },
        } => commands::state::show(&spec.file)?,
        Command::State {
            command: StateCommand::Pull { spec, dir },
        } => commands::state::pull(&spec.file, &dir)?,
        Command::ForceUnlock { id, spec } => commands::state::force_unlock(&spec.file, &id)?,
        Command::Secrets {
            command: SecretsCommand::Create { spec, run },
        } => commands::secrets::create(&spec.file, &run)?,
        Command::Secrets {
            command: SecretsCommand::Delete { spec, yes, run },
        } => commands::secrets::delete(&spec.file, yes, &run)?,
        Command::Addons {
            command:
                AddonsCommand::Apply {
                    spec,
                    api,
                    api_timeout,
                    ..
                },
        } => commands::addons::apply(&spec.file, api.kubeconfig.as_deref(), api_timeout.0)?,
        Command::Addons {
            command: AddonsCommand::Plan { spec, api, .. },
        } => commands::addons::plan(&spec.file, api.kubeconfig.as_deref())?,
        Command::BootstrapToken {
            command:
                TokenCommand::Rotate {
                    state_store,
                    cluster,
                    region,
                    namespace,
                    ttl,
                    renew_before,
                    dry_run,
                    kubeconfig,
                    ..
                },
        } => commands::token::rotate(
            &state_store,
            &cluster,
            &region,
            kubeconfig.as_deref(),
            clusterctl::controllers::bootstrap_token::Options {
                namespace,
                ttl: ttl.0,
                renew_before: renew_before.0,
                dry_run,
            },
        )?,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "clusterctl",
                &mut std::io::stdout(),
            );
            return Ok(None);
        }
        Command::Preview { .. } | Command::Init(_) => return Ok(None),
        Command::NodeAutoscaler {
            command:
                Some(NodeAutoscalerCommand::Simulate {
                    snapshot, settings, ..
                }),
            ..
        } => commands::node_autoscaler::simulate(&snapshot, &settings.settings())?,
        Command::NodeAutoscaler { .. } => return Ok(None),
        Command::QueueAutoscaler { .. } => return Ok(None),
        Command::Janitor { .. } => return Ok(None),
        // Dispatched in main before logging is set up.
        Command::Heartbeat { .. } => return Ok(None),
        Command::NodeCleanup { .. } => return Ok(None),
    };
    Ok(Some(report))
}
