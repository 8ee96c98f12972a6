//! What runs inside the cluster. Each component is observe → pure decide →
//! thin act (`../shared/DESIGN.md`) on the shared [`runtime`].

pub mod bootstrap_token;
pub mod drain;
pub mod heartbeat;
pub mod janitor;
pub mod node_autoscaler;
pub mod node_cleanup;
pub mod queue_autoscaler;
pub mod runtime;
