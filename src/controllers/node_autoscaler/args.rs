//! The node autoscaler's flags (each with a `CLUSTERCTL_<FLAG>` fallback),
//! shared by the controller and `simulate`.

use std::time::Duration;

use crate::controllers::runtime::duration;

use super::view::{Expander, Settings};

fn threshold(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number such as 0.5"))?;
    if !(0.0..=1.0).contains(&v) || v.is_nan() {
        return Err(format!("`{s}` is not between 0 and 1"));
    }
    Ok(v)
}

/// The decision's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SettingsArgs {
    /// How the group to grow is chosen.
    #[arg(
        long,
        value_enum,
        env = "CLUSTERCTL_EXPANDER",
        default_value = "least-waste"
    )]
    pub expander: Expander,
    /// Nodes in all groups together, at most.
    #[arg(long, env = "CLUSTERCTL_MAX_NODES_TOTAL", default_value_t = 1000)]
    pub max_nodes_total: i64,
    /// A node whose requested CPU or memory share stays below this may go.
    #[arg(long, env = "CLUSTERCTL_SCALE_DOWN_UTILIZATION_THRESHOLD", default_value = "0.5", value_parser = threshold)]
    pub scale_down_utilization_threshold: f64,
    /// How long a node must stay below the threshold.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_SCALE_DOWN_UNNEEDED_TIME", default_value = "10m", value_parser = duration, allow_hyphen_values = true)]
    pub scale_down_unneeded_time: Duration,
    /// Nodes with pods to move, removed per pass at most.
    #[arg(long, env = "CLUSTERCTL_MAX_SCALE_DOWN_PER_LOOP", default_value_t = 1)]
    pub max_scale_down_per_loop: usize,
    /// Empty nodes removed per pass at most.
    #[arg(long, env = "CLUSTERCTL_MAX_EMPTY_BULK_DELETE", default_value_t = 10)]
    pub max_empty_bulk_delete: usize,
    /// No scale-down for this long after a scale-up.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_SCALE_DOWN_DELAY_AFTER_ADD", default_value = "10m", value_parser = duration, allow_hyphen_values = true)]
    pub scale_down_delay_after_add: Duration,
    /// No scale-down for this long after a failed one.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_SCALE_DOWN_DELAY_AFTER_FAILURE", default_value = "3m", value_parser = duration, allow_hyphen_values = true)]
    pub scale_down_delay_after_failure: Duration,
    /// An ASG whose scaling failed for lack of capacity is left alone this long.
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_BACKOFF", default_value = "5m", value_parser = duration, allow_hyphen_values = true)]
    pub backoff: Duration,
    /// A node not Ready this long after registering counts as unready
    /// (before that it is capacity on its way).
    #[arg(long, value_name = "DURATION", env = "CLUSTERCTL_MAX_NODE_PROVISION_TIME", default_value = "15m", value_parser = duration, allow_hyphen_values = true)]
    pub max_node_provision_time: Duration,
}

impl SettingsArgs {
    /// The settings.
    pub fn settings(&self) -> Settings {
        Settings {
            expander: self.expander,
            max_nodes_total: self.max_nodes_total,
            scale_down_utilization_threshold: self.scale_down_utilization_threshold,
            scale_down_unneeded_time: self.scale_down_unneeded_time,
            max_scale_down_per_loop: self.max_scale_down_per_loop,
            max_empty_bulk_delete: self.max_empty_bulk_delete,
            scale_down_delay_after_add: self.scale_down_delay_after_add,
            scale_down_delay_after_failure: self.scale_down_delay_after_failure,
            backoff: self.backoff,
            max_node_provision_time: self.max_node_provision_time,
            ..Settings::default()
        }
    }
}
