//! What clusterctl needs from AWS, behind small traits with an SDK
//! implementation ([`aws`]) and an in-memory fake ([`fake`]):
//!
//! - [`Cloud`]: what plan and apply need: discover, create, update, delete,
//!   shaped around the model;
//! - [`Catalog`]: what the preflight asks before any change: zones,
//!   instance-type offerings and architectures, images, DNS zones.

pub mod auth;
pub mod aws;
pub mod bounded;
mod clients;
pub mod dns;
pub mod fake;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub use clients::{AttemptCounter, Clients, DEFAULT_PARALLELISM, MAX_ATTEMPTS};

use crate::model::{Model, Resource};
pub use crate::resource::Actual;
use crate::resource::{AttrChange, Kind, Untouched};

/// The boxed cause of a failed call (the SDK's error, with its own causes).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Errors of a cloud call.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// A call failed after its retries; the SDK's error is the source.
    #[error("{op} {address} failed")]
    Call {
        /// The API operation.
        op: String,
        /// The resource (or what was asked about).
        address: String,
        /// Throttling, a timeout, a dropped connection or a 5xx answer:
        /// trying again later may succeed.
        transient: bool,
        /// The IAM action, and what AWS answered.
        detail: Box<CallDetail>,
        /// The SDK's error.
        #[source]
        source: Cause,
    },
    /// A reference could not be resolved to an id (its resource is missing).
    #[error("{address} refers to {missing}, which does not exist yet")]
    Unresolved {
        /// The resource.
        address: String,
        /// The reference.
        missing: String,
    },
    /// A delete was refused: the resource does not carry this cluster's
    /// ownership mark (checked by the cloud itself, whatever its caller said).
    #[error(
        "refusing to delete {address} ({kind} {id}): it does not carry the ownership mark of cluster {cluster}"
    )]
    NotOwned {
        /// Its kind.
        kind: Kind,
        /// Its address.
        address: String,
        /// Its AWS id.
        id: String,
        /// This cluster.
        cluster: String,
    },
    /// An attribute that has no update call was asked to change in place.
    #[error("{address}: attribute {attr} cannot change in place")]
    NotInPlace {
        /// The resource.
        address: String,
        /// The attribute.
        attr: String,
    },
    /// A kind reached an area that does not own it: a bug in the dispatch.
    #[error("internal error: {0} was dispatched to an area that does not own it")]
    WrongArea(Kind),
    /// A request could not be built from the model (a bug, or a value AWS
    /// would refuse).
    #[error("building the {what} request for {address}")]
    Build {
        /// What was being built.
        what: String,
        /// The resource.
        address: String,
        /// The builder's error.
        #[source]
        source: Cause,
    },
    /// A launch template still names an image lookup: lookups are resolved
    /// before planning.
    #[error("{0}: its image lookup was not resolved before applying")]
    ImageNotResolved(String),
    /// The hosted zone a DNS record belongs in does not exist.
    #[error("{address}: no public hosted zone {zone}")]
    NoZone {
        /// The record.
        address: String,
        /// The zone.
        zone: String,
    },
    /// A fault injected by the fake cloud.
    #[error("{address}: injected fault")]
    Injected {
        /// The resource.
        address: String,
    },
}

/// The IAM action of a failed call, and AWS's answer.
#[derive(Debug, Clone, Default)]
pub struct CallDetail {
    /// `ec2:DescribeVpcs`.
    pub action: String,
    /// AWS's error code, when AWS answered (`AccessDenied`).
    pub code: Option<String>,
    /// AWS's message, when AWS answered.
    pub message: Option<String>,
}

impl CloudError {
    /// Trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CloudError::Call {
                transient: true,
                ..
            }
        )
    }
}

/// Whether an error is worth trying again, and what AWS said.
pub trait Transience {
    /// Throttling, a timeout, a dropped connection or a 5xx answer.
    fn is_transient(&self) -> bool;
    /// AWS's error code and message, when AWS answered.
    fn aws_error(&self) -> Option<(String, Option<String>)> {
        None
    }
}

/// Error codes AWS services use for throttling.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

impl<E: aws_sdk_ec2::error::ProvideErrorMetadata> Transience
    for aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>
{
    fn is_transient(&self) -> bool {
        use aws_sdk_ec2::error::SdkError;
        match self {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(s) => {
                s.raw().status().is_server_error()
                    || s.err().code().is_some_and(|c| THROTTLING.contains(&c))
            }
            _ => false,
        }
    }

    fn aws_error(&self) -> Option<(String, Option<String>)> {
        match self {
            aws_sdk_ec2::error::SdkError::ServiceError(s) => Some((
                s.err().code()?.to_string(),
                s.err().message().map(str::to_string),
            )),
            _ => None,
        }
    }
}

impl Transience for aws_sdk_iam::error::BuildError {
    fn is_transient(&self) -> bool {
        false
    }
}

/// A failed SDK call of `op` on `address`.
pub(crate) fn call_error<E>(op: &str, address: &str, e: E) -> CloudError
where
    E: std::error::Error + Transience + Send + Sync + 'static,
{
    let (code, message) = e.aws_error().map_or((None, None), |(c, m)| (Some(c), m));
    CloudError::Call {
        op: op.to_string(),
        address: address.to_string(),
        transient: e.is_transient(),
        detail: Box::new(CallDetail {
            action: auth::action::<E>(op),
            code,
            message,
        }),
        source: Box::new(e),
    }
}

/// A failed cloud call in one line for a person: an access problem as
/// [`auth::diagnose`] says it; AWS's code and message when AWS answered
/// (not the SDK's wrappers around them); else the chain of causes.
pub fn describe(e: &CloudError) -> String {
    if let Some(p) = auth::diagnose(e) {
        return p.to_string();
    }
    if let CloudError::Call {
        op,
        address,
        detail,
        ..
    } = e
        && let Some(code) = &detail.code
    {
        return match &detail.message {
            Some(m) if !m.is_empty() => format!("{op} {address} failed: {code}: {m}"),
            _ => format!("{op} {address} failed: {code}"),
        };
    }
    error_chain(e)
}

/// An error and its causes, joined with `: ` (for one-line reports).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.ends_with(&s_msg) {
            msg.push_str(&format!(": {s_msg}"));
        }
        src = s.source();
    }
    msg
}

/// Tags as a map, from any SDK's (key, value) pairs (each service has its
/// own tag type); a tag without a key is dropped, a missing value is empty.
pub(crate) fn tag_map<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> std::collections::BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string())))
        .collect()
}

/// EC2 tags as a map.
pub(crate) fn ec2_tags(
    t: &[aws_sdk_ec2::types::Tag],
) -> std::collections::BTreeMap<String, String> {
    tag_map(t.iter().map(|t| (t.key(), t.value())))
}

/// Model address → AWS id, filled by discovery and by creates.
#[derive(Debug, Clone, Default)]
pub struct IdMap(Arc<Mutex<HashMap<String, String>>>);

impl IdMap {
    /// The ids of what a discovery found.
    pub fn of(actual: &[Actual]) -> IdMap {
        let ids = IdMap::default();
        for a in actual {
            ids.insert(&a.address, &a.id);
        }
        ids
    }

    /// Records an id.
    pub fn insert(&self, address: &str, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(address.to_string(), id.to_string());
    }

    /// Forgets an id.
    pub fn remove(&self, address: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
    }

    /// The id of an address.
    pub fn get(&self, address: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(address)
            .cloned()
    }

    /// The id of `r`'s reference, or an error naming both.
    pub fn resolve(&self, from: &str, r: &crate::model::Ref) -> Result<String, CloudError> {
        self.get(&r.address())
            .ok_or_else(|| CloudError::Unresolved {
                address: from.to_string(),
                missing: r.address(),
            })
    }
}

/// What a discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Everything of this cluster that exists (and what the model names,
    /// owned or not).
    pub actual: Vec<Actual>,
    /// Resources inside the cluster's VPC without its ownership mark:
    /// reported, never touched.
    pub untouched: Vec<Untouched>,
}

/// What plan and apply need from a cloud. Discovery is batched: one
/// (paginated) call per resource type, never one per resource.
#[async_trait::async_trait]
pub trait Cloud: Send + Sync {
    /// Everything of this cluster that exists, and what is left alone.
    async fn discover(&self, model: &Model) -> Result<Discovery, CloudError>;
    /// Creates a resource; returns its id. Must not duplicate a resource
    /// that a crashed earlier run already made (look it up by name first).
    async fn create(&self, r: &Resource, ids: &IdMap) -> Result<String, CloudError>;
    /// Changes a resource in place.
    async fn update(
        &self,
        r: &Resource,
        actual_id: &str,
        changes: &[AttrChange],
        ids: &IdMap,
    ) -> Result<(), CloudError>;
    /// Deletes a resource. Implementations check, themselves, that it
    /// carries the ownership mark, and refuse ([`CloudError::NotOwned`])
    /// when it does not.
    async fn delete(&self, kind: Kind, address: &str, id: &str) -> Result<(), CloudError>;
    /// API calls made so far, attempts included.
    fn calls(&self) -> u64 {
        0
    }
}

/// What the direct target needs to know of an AMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `x86_64`, `arm64`, … (empty when EC2 does not say)
    pub architecture: String,
    /// The device name of its root volume (`/dev/sda1`, `/dev/xvda`).
    pub root_device: String,
}

/// What the preflight asks of a region before any change. Each question
/// is one call, whatever the spec's size.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// The region's available zones, sorted.
    async fn zones(&self) -> Result<Vec<String>, CloudError>;
    /// The (instance type, zone) pairs among `types` × `zones` offered.
    async fn offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Result<HashSet<(String, String)>, CloudError>;
    /// The architectures each of `types` runs (unknown types are absent).
    async fn architectures(
        &self,
        types: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CloudError>;
    /// The AMIs among `ids` that exist and this account may use.
    async fn images(&self, ids: &[String]) -> Result<HashMap<String, ImageInfo>, CloudError>;
    /// The newest available AMI of `owner` whose name matches `name`.
    async fn newest_image(&self, owner: &str, name: &str) -> Result<Option<String>, CloudError>;
    /// A public hosted zone of this name exists in the account.
    async fn public_zone_exists(&self, zone: &str) -> Result<bool, CloudError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::error::{ErrorMetadata, SdkError};
    use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};

    fn service_error(code: &str, status: u16) -> CloudError {
        let err = DescribeVpcsError::generic(ErrorMetadata::builder().code(code).build());
        let raw = Response::new(
            StatusCode::try_from(status).unwrap_or_else(|e| panic!("{e}")),
            aws_sdk_s3::primitives::ByteStream::from_static(b"").into_inner(),
        );
        call_error(
            "DescribeVpcs",
            "aws_vpc.x",
            SdkError::service_error(err, raw),
        )
    }

    #[test]
    fn throttling_timeouts_and_server_errors_are_transient() {
        assert!(service_error("RequestLimitExceeded", 503).is_transient());
        assert!(service_error("Throttling", 400).is_transient());
        assert!(service_error("InternalError", 500).is_transient());
        assert!(!service_error("InvalidVpcID.NotFound", 400).is_transient());
        assert!(!service_error("UnauthorizedOperation", 403).is_transient());
        let timeout: SdkError<DescribeVpcsError, aws_sdk_ec2::config::http::HttpResponse> =
            SdkError::timeout_error("slow");
        assert!(call_error("DescribeVpcs", "x", timeout).is_transient());
        assert!(!CloudError::WrongArea(Kind::Vpc).is_transient());
    }

    #[test]
    fn a_call_error_keeps_the_sdk_error_as_its_source_and_does_not_repeat_it() {
        let e = service_error("InvalidVpcID.NotFound", 400);
        assert_eq!(e.to_string(), "DescribeVpcs aws_vpc.x failed");
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert!(source.is_some());
        assert!(!e.to_string().contains(&source.unwrap_or_default()));
        assert!(
            error_chain(&e).contains("InvalidVpcID.NotFound"),
            "{}",
            error_chain(&e)
        );
    }
}
