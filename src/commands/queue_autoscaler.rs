//! `clusterctl queue-autoscaler`: the controller, until SIGTERM.

use std::process::ExitCode;

use clusterctl::controllers::queue_autoscaler::component::QueueAutoscaler;
use clusterctl::controllers::queue_autoscaler::source::{Server, Servers, Source};
use clusterctl::controllers::runtime::RuntimeArgs;

use crate::cli::RabbitmqArgs;

/// Reads `NAME=URL` servers, their AMQP endpoints and their credentials
/// (never printed).
pub fn servers(args: &RabbitmqArgs) -> Result<Servers, String> {
    let mut out = Servers::new();
    for s in &args.servers {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            format!("invalid value '{s}' for '--server <NAME=URL>': use NAME=URL")
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "invalid value '{s}' for '--server <NAME=URL>': the URL must start with http:// or https://"
            ));
        }
        out.insert(
            name.to_string(),
            Server::with_credentials(name, url, args.credentials_dir.as_deref())?,
        );
    }
    for a in &args.amqp {
        let bad = |why: &str| format!("invalid value '{a}' for '--amqp <NAME=URL>': {why}");
        let (name, url) = a.split_once('=').ok_or_else(|| bad("use NAME=URL"))?;
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(bad("the URL must start with amqp:// or amqps://"));
        }
        let server = out
            .remove(name)
            .ok_or_else(|| bad(&format!("no --server named {name}")))?;
        out.insert(name.to_string(), server.with_amqp(url));
    }
    Ok(out)
}

/// Runs the controller.
pub fn run(args: &RabbitmqArgs, runtime: RuntimeArgs, verbose: u8) -> ExitCode {
    let usage = |e: String| {
        eprintln!("error: {e}\n\nFor more information, try '--help'.");
        ExitCode::from(2)
    };
    let servers = match servers(args) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let source = match Source::with_ca_file(args.request_timeout, args.ca_file.as_deref()) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    super::component::run(QueueAutoscaler::new(servers, source), runtime, verbose)
}
