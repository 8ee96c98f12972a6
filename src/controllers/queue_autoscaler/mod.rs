//! `clusterctl queue-autoscaler`: sizes Deployments and StatefulSets to
//! their RabbitMQ queues: a target's settings from its annotations
//! ([`target`]), the management API's queue statistics read defensively
//! ([`stats`], [`source`]), a queue's exact depth by AMQP when the API has
//! not counted it ([`amqp`]), the decision ([`decide`]), which consumers
//! are busy ([`consumers`]), and the controller ([`component`]).

pub mod amqp;
pub mod component;
pub mod consumers;
pub mod decide;
pub mod source;
pub mod stats;
pub mod target;
pub mod tls;

#[cfg(test)]
mod tests;
