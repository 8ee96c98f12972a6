//! `clusterctl queue-autoscaler`: the controller, until SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clusterctl::controllers::queue_autoscaler::component::QueueAutoscaler;
use clusterctl::controllers::queue_autoscaler::source::{Server, Servers, Source};
use clusterctl::controllers::runtime::RuntimeArgs;

/// Reads `NAME=URL` servers with their credentials (never printed).
pub fn servers(specs: &[String], credentials: Option<&Path>) -> Result<Servers, String> {
    let mut out = Servers::new();
    for s in specs {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            format!("invalid value '{s}' for '--server <NAME=URL>': use NAME=URL")
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "invalid value '{s}' for '--server <NAME=URL>': the URL must start with http:// or https://"
            ));
        }
        if url.starts_with("https://") {
            return Err(format!(
                "invalid value '{s}' for '--server <NAME=URL>': TLS to the management API is not supported yet"
            ));
        }
        out.insert(
            name.to_string(),
            Server::with_credentials(name, url, credentials)?,
        );
    }
    Ok(out)
}

/// Runs the controller.
pub fn run(
    specs: &[String],
    credentials: Option<&Path>,
    timeout: Duration,
    runtime: RuntimeArgs,
    verbose: u8,
) -> ExitCode {
    let servers = match servers(specs, credentials) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
    super::component::run(
        QueueAutoscaler::new(servers, Source::new(timeout)),
        runtime,
        verbose,
    )
}
