//! What runs inside the cluster. Each component is observe → pure decide →
//! thin act (`../shared/DESIGN.md`).

pub mod bootstrap_token;
