//! The `clusterctl` binary: parse arguments, set up logging, dispatch to
//! a command, print its report, and turn an error into a message and an
//! exit code. Each command lives in `commands/<name>.rs`.

mod cli;
mod commands;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use clusterctl::direct::Operation;
use clusterctl::spec::SpecError;

use cli::{
    AddonsCommand, Cli, Command, Format, NodeAutoscalerCommand, SecretsCommand, StateCommand,
    TokenCommand,
};
use commands::{AppError, Report};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let log_format = if format == Format::Json {
        clusterctl::telemetry::LogFormat::Json
    } else {
        clusterctl::telemetry::LogFormat::Auto
    };
    clusterctl::telemetry::init(cli.verbose, log_format);
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
    let _ = writeln!(err, "error: {e}");
    let mut last = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let msg = s.to_string();
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
            ..
        } => commands::plan::run(&spec.file, out.as_deref(), detailed_exitcode)?,
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
                    kubeconfig,
                    api_timeout,
                    ..
                },
        } => commands::addons::apply(&spec.file, kubeconfig.as_deref(), api_timeout.0)?,
        Command::Addons {
            command: AddonsCommand::Plan {
                spec, kubeconfig, ..
            },
        } => commands::addons::plan(&spec.file, kubeconfig.as_deref())?,
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
        Command::Preview { .. } => return Ok(None),
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
