//! `clusterctl node-cleanup`: the DaemonSet's controller on one node, or
//! one pass with `--once`. No leader election: every node cleans itself.

use std::process::ExitCode;

use clusterctl::controllers::node_cleanup::component::{NodeCleanup, Sockets};
use clusterctl::controllers::node_cleanup::decide::Rules;
use clusterctl::controllers::runtime::RuntimeArgs;

use crate::cli::NodeCleanupArgs;

/// Runs node cleanup.
pub fn run(a: &NodeCleanupArgs, mut runtime: RuntimeArgs, verbose: u8) -> ExitCode {
    if !(0.0..=100.0).contains(&a.disk_threshold) {
        eprintln!(
            "error: invalid value '{}' for '--disk-threshold <PERCENT>': must be 0 to 100\\n\\nFor more information, try '--help'.",
            a.disk_threshold
        );
        return ExitCode::from(2);
    }
    runtime.leader_elect = false;
    let rules = Rules {
        container_grace: a.container_grace,
        image_grace: a.image_grace,
        volumes: !a.keep_volumes,
        unused_images_above: a.unused_images.then_some(a.disk_threshold),
    };
    let sockets = Sockets {
        docker: a.docker_socket.clone(),
        containerd: a.containerd_socket.clone(),
        containerd_root: Some(a.containerd_root.clone()),
    };
    super::component::run(NodeCleanup::new(sockets, rules), runtime, verbose)
}
