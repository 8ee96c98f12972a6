//! `clusterctl queue-autoscaler`: sizes Deployments and StatefulSets to
//! their RabbitMQ queues. What is built so far is the pure part: a
//! target's settings from its annotations ([`target`]), the management
//! API's queue statistics read defensively ([`stats`]), and the decision
//! ([`decide`]). The controller, the management-API client and the
//! deletion costs come next.

pub mod component;
pub mod decide;
pub mod source;
pub mod stats;
pub mod target;

#[cfg(test)]
mod tests;
