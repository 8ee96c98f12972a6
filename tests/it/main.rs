//! Integration tests, in one binary so the AWS SDK is linked once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod fuzz;
mod invalid_specs;
mod render;
mod shellcheck;
mod support;
mod terraform;
