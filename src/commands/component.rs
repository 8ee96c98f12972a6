//! Running an in-cluster component: flags checked (exit 2 naming the
//! flag), logs set up, then the runtime until SIGTERM (exit 0) or a
//! permanent error (exit 1).

use std::process::ExitCode;

use clusterctl::controllers::runtime::{self, Component, LogFormatArg, RuntimeArgs};
use clusterctl::telemetry::LogFormat;

/// Runs `component` with `args`.
pub fn run<C: Component>(component: C, args: RuntimeArgs, verbose: u8) -> ExitCode {
    if let Err(msg) = args.check() {
        eprintln!("error: {msg}\n\nFor more information, try '--help'.");
        return ExitCode::from(2);
    }
    let format = match args.log_format {
        LogFormatArg::Auto => LogFormat::Auto,
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    };
    // A component logs each pass and action: info and up by default.
    clusterctl::telemetry::init(verbose.max(1), format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(runtime::run_until_signal(component, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", clusterctl::cloud::error_chain(&e));
            ExitCode::from(1)
        }
    }
}
