//! Logging set-up shared by the commands and the in-cluster controllers:
//! `tracing` to stderr, human-readable on a terminal and one JSON object
//! per line otherwise (or when asked, as `-o json` does), filtered by
//! verbosity unless `RUST_LOG` says otherwise.

use std::io::IsTerminal;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, text when it is.
    Auto,
    /// Always one JSON object per line.
    Json,
    /// Always text.
    Text,
}

/// The filter for a verbosity count: warnings by default; `-v` adds
/// clusterctl's spans and events (an apply step, each cloud call and its
/// attempts), `-vv` debug, `-vvv` trace.
pub fn filter_for(verbose: u8) -> &'static str {
    match verbose {
        // kube's client logs every failed connection at ERROR before
        // returning it; clusterctl reports the error itself (and retries
        // while it waits for a new cluster's API).
        0 => "warn,kube_client::client::builder=off",
        1 => "warn,clusterctl=info,kube_client::client::builder=off",
        2 => "info,clusterctl=debug",
        _ => "trace",
    }
}

/// The filter of the CLI commands: by default only clusterctl's own
/// warnings (errors are printed by the command itself), so the AWS SDK's
/// credential chain, hyper and kube stay quiet; `-v` and up as
/// [`filter_for`].
pub fn cli_filter_for(verbose: u8) -> &'static str {
    match verbose {
        0 => "off,clusterctl=warn",
        v => filter_for(v),
    }
}

/// Installs the global subscriber of a controller (once; later calls do
/// nothing).
pub fn init(verbose: u8, format: LogFormat) {
    install(filter_for(verbose), format);
}

/// Installs the global subscriber of a CLI command: [`cli_filter_for`].
pub fn init_cli(verbose: u8, format: LogFormat) {
    install(cli_filter_for(verbose), format);
}

fn install(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_widens_the_filter() {
        for v in 0..4 {
            assert!(tracing_subscriber::EnvFilter::try_new(filter_for(v)).is_ok());
        }
        assert!(filter_for(1).contains("clusterctl=info"));
        assert!(filter_for(0).starts_with("warn,"));
        // kube's duplicate connection errors stay quiet until -vv.
        assert!(filter_for(0).contains("kube_client::client::builder=off"));
        assert!(!filter_for(2).contains("=off"));
        // The CLI hears only itself until -v.
        assert_eq!(cli_filter_for(0), "off,clusterctl=warn");
        assert!(tracing_subscriber::EnvFilter::try_new(cli_filter_for(0)).is_ok());
        assert_eq!(cli_filter_for(1), filter_for(1));
    }
}
