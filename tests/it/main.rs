//! Integration tests, in one binary so the AWS SDK is linked once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod addons_apply;
pub mod apiserver;
mod bootstrap_token;
mod bucket_owner;
mod cli;
pub mod component;
mod direct;
mod faults;
mod fuzz;
mod invalid_specs;
mod kube_conformance;
pub mod kube_env;
mod kube_secrets;
mod kube_testserver;
pub mod kubelet;
mod lifecycle;
mod moto;
mod neighbours;
mod node_autoscaler;
mod node_autoscaler_moto;
mod node_autoscaler_run;
mod nodeup;
mod proxy;
mod queue_autoscaler;
mod rabbitmq;
mod reachability;
mod render;
mod runtime;
mod runtime_process;
mod safety;
mod secrets;
mod shellcheck;
mod state_store;
mod support;
pub(crate) mod terraform;
mod upgrade;
