//! clusterctl: provision Kubernetes clusters on AWS from a kops-style spec,
//! and run the in-cluster components that keep them lean.
//!
//! Dependencies point one way: `spec` → `model` → {`render`, `plan`} →
//! {`apply`, `direct`, the controllers}. `resource` (kinds, attributes, a
//! resource as found) is a leaf under `model`, `plan` and `cloud`, so that
//! `cloud` never imports `plan`.

pub mod addons;
pub mod apply;
pub mod cloud;
pub mod controllers;
pub mod direct;
pub mod kubeconfig;
pub mod model;
pub mod plan;
pub mod preview;
pub mod render;
pub mod resource;
pub mod spec;
pub mod state;
pub mod telemetry;
