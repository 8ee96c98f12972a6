//! `clusterctl node-autoscaler`: keeps each node group sized to its pods,
//! balanced across zones on the way up and down, and safe to shrink.
//!
//! - [`model`]: the snapshot a decision reads (serde: `simulate` replays a
//!   recorded one);
//! - [`decide`]: the pure decision, in [`scale_up`] and [`scale_down`],
//!   over the indexes of [`view`] and the predicates of [`fit`].

pub mod args;
pub mod cloud;
pub mod component;
pub mod decide;
pub mod fit;
pub mod generate;
pub mod model;
pub mod observe;
pub mod resources;
pub mod scale_down;
pub mod scale_up;
pub mod view;

#[cfg(test)]
mod tests;

pub use decide::{Decision, decide};
pub use model::Snapshot;
pub use view::{Expander, Settings};
