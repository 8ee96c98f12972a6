//! One module per CLI command. Each runs its command and returns a
//! [`Report`]: what it found or did, in a form for people and a JSON form
//! for programs, with the exit code. `main` prints it; only `main` turns an
//! [`AppError`] into the user-facing message.

pub mod addons;
pub mod apply;
pub mod component;
pub mod init;
pub mod janitor;
pub mod node_autoscaler;
pub mod node_cleanup;
pub mod plan;
pub mod preview;
pub mod queue_autoscaler;
pub mod render;
pub mod secrets;
pub mod state;
pub mod token;
pub mod validate;

use std::process::ExitCode;

use clusterctl::model::ModelError;
use clusterctl::render::RenderError;
use clusterctl::spec::{Spec, SpecError};
use clusterctl::state::{StateError, StateStore};

/// Everything that can end a command. Each variant's message says what
/// went wrong at its level; the cause is its source, printed by `main`
/// once, never repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The spec is unreadable or invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Rendering or writing failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The state store failed or is locked.
    #[error(transparent)]
    State(#[from] StateError),
    /// The direct target failed.
    #[error(transparent)]
    Direct(#[from] clusterctl::direct::DirectError),
    /// The addons could not be installed.
    #[error("installing the addons")]
    Addons(#[source] clusterctl::addons::install::InstallError),
    /// `apply` changed AWS, but the addons could not be installed after it.
    #[error(
        "the cluster's AWS resources are applied (state serial {serial}), but its addons are not; `clusterctl addons apply -f {file}` installs them once the API answers"
    )]
    AddonsPending {
        /// The state serial the apply reached.
        serial: u64,
        /// The spec file.
        file: String,
        /// Why.
        #[source]
        source: Box<AppError>,
    },
    /// Bootstrap-token rotation failed.
    #[error("rotating the bootstrap token")]
    Token(#[from] clusterctl::controllers::bootstrap_token::RotateError),
    /// An AWS call outside the direct target failed.
    #[error(transparent)]
    Cloud(#[from] clusterctl::cloud::CloudError),
    /// No client for the cluster's API.
    #[error(transparent)]
    Kubeconfig(#[from] clusterctl::kubeconfig::KubeconfigError),
    /// A flag's value or a file given on the command line is unusable.
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout (or a file named on the command line) failed.
    #[error("writing output")]
    Io(#[from] std::io::Error),
    /// A file named on the command line cannot be written (or exists
    /// where a new one was asked for).
    #[error("cannot write {}: {}", path.display(), clusterctl::io_reason(source))]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// JSON output failed.
    #[error("serialising output")]
    Json(#[from] serde_json::Error),
}

/// What a command reports.
#[derive(Debug)]
pub struct Report {
    /// For people (printed as is).
    pub human: String,
    /// For programs (`-o json`).
    pub json: serde_json::Value,
    /// The exit code.
    pub code: ExitCode,
}

impl Report {
    /// A successful report.
    pub fn ok(human: String, json: serde_json::Value) -> Report {
        Report {
            human,
            json,
            code: ExitCode::SUCCESS,
        }
    }

    /// The same report with another exit code.
    pub fn with_code(self, code: u8) -> Report {
        Report {
            code: ExitCode::from(code),
            ..self
        }
    }
}

/// The state store of the cluster a spec describes.
pub async fn state_store(spec: &Spec) -> Result<StateStore, AppError> {
    let (bucket, prefix) = clusterctl::model::state_location(
        &spec.cluster.spec.state_store,
        &spec.cluster.metadata.name,
    );
    let clients = clusterctl::cloud::Clients::load(&spec.cluster.spec.region).await;
    Ok(clients.state_store(&bucket, &prefix).await?)
}

/// The async runtime the AWS commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `n thing` or `n things`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `--tag` note on the untouched report.
pub fn ownership_note(cluster: &str) -> String {
    format!(
        "{}=owned",
        clusterctl::model::naming::ownership_tag(cluster)
    )
}
