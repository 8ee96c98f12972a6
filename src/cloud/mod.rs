//! What clusterctl needs from AWS, and how it connects. The SDK clients are
//! built once from the standard AWS configuration chain; `AWS_ENDPOINT_URL`
//! points every client at an emulator such as moto_server (S3 then uses
//! path-style addressing).

pub mod aws;
mod compute;
pub use compute::ImageInfo;
mod edge;
pub mod fake;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;

use crate::model::{Model, Resource};
use crate::plan::AttrChange;
use crate::plan::attrs::Attrs;

/// A resource that exists, as a cloud describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    /// The model address it corresponds to (`type.label`), derived from its
    /// type and name, so resources made by the Terraform target match too.
    pub address: String,
    /// Terraform type.
    pub kind: String,
    /// AWS name.
    pub name: String,
    /// AWS id (or ARN, or key).
    pub id: String,
    /// Comparable attributes (see `plan::attrs`).
    pub attrs: Attrs,
    /// Carries this cluster's ownership mark, so it may be deleted.
    pub owned: bool,
}

/// Errors of a cloud call.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// A call failed after its retries.
    #[error("{op} {address}: {message}")]
    Call {
        /// The API operation.
        op: String,
        /// The resource.
        address: String,
        /// The service's code and message.
        message: String,
    },
    /// A reference could not be resolved to an id (its resource is missing).
    #[error("{address} refers to {missing}, which does not exist yet")]
    Unresolved {
        /// The resource.
        address: String,
        /// The reference.
        missing: String,
    },
    /// No image matches a spec's `owner/name-pattern`.
    #[error(
        "no available image of owner {owner} matches the name {name}; give an ami- id or another pattern in the instance group's `image`"
    )]
    NoImage {
        /// Owner account or alias.
        owner: String,
        /// Name pattern.
        name: String,
    },
    /// The implementation does not handle this resource type yet.
    #[error("{0}: this resource type is not supported by the direct target yet")]
    Unsupported(String),
}

/// Model address → AWS id, filled by discovery and by creates.
#[derive(Debug, Clone, Default)]
pub struct IdMap(Arc<Mutex<HashMap<String, String>>>);

impl IdMap {
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

/// What plan and apply need from a cloud. Discovery is batched: one
/// (paginated) call per resource type, filtered by the cluster's tag.
#[async_trait::async_trait]
pub trait Cloud: Send + Sync {
    /// Everything of this cluster that exists.
    async fn discover(&self, model: &Model) -> Result<Vec<Actual>, CloudError>;
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
    /// Deletes a resource (only ever one that carries the ownership mark).
    async fn delete(&self, kind: &str, address: &str, id: &str) -> Result<(), CloudError>;
    /// Resources inside the cluster's VPC (found in `actual`) that do not
    /// carry the ownership tag: reported, never touched.
    async fn untouched(
        &self,
        _actual: &[Actual],
    ) -> Result<Vec<crate::plan::Untouched>, CloudError> {
        Ok(vec![])
    }
    /// API calls made so far, attempts included.
    fn calls(&self) -> u64 {
        0
    }
}

/// AWS clients for one region.
#[derive(Debug, Clone)]
pub struct Clients {
    /// S3 (state store).
    pub s3: aws_sdk_s3::Client,
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// Auto Scaling.
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// Elastic Load Balancing v2.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// Route53.
    pub route53: aws_sdk_route53::Client,
    /// Attempts made by all clients (retries included).
    pub attempts: AttemptCounter,
}

/// Counts SDK operations and their attempts, so retries can be reported.
#[derive(Debug, Clone, Default)]
pub struct AttemptCounter {
    operations: Arc<std::sync::atomic::AtomicU64>,
    attempts: Arc<std::sync::atomic::AtomicU64>,
}

impl AttemptCounter {
    /// Attempts so far (first tries and retries).
    pub fn get(&self) -> u64 {
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Operations so far (each counted once, however often it was tried).
    pub fn operations(&self) -> u64 {
        self.operations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.get().saturating_sub(self.operations())
    }
}

impl aws_sdk_ec2::config::Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "clusterctl-attempt-counter"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_ec2::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        self.operations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Attempts per call: throttling at scale (kops#7111) needs more than the
/// SDK's default 3; backoff with jitter comes from the SDK's standard mode.
pub const MAX_ATTEMPTS: u32 = 8;

impl Clients {
    /// Loads the AWS configuration (environment, profile, instance role)
    /// for `region`.
    pub async fn load(region: &str) -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS),
            )
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        Clients::from_sdk(&config, custom_endpoint)
    }

    /// Clients from an SDK configuration; `path_style` for S3 emulators.
    pub fn from_sdk(config: &aws_config::SdkConfig, path_style: bool) -> Clients {
        let attempts = AttemptCounter::default();
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .interceptor(attempts.clone())
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .interceptor(attempts.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config)
                    .interceptor(attempts.clone())
                    .build(),
            ),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(config)
                    .interceptor(attempts.clone())
                    .build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                    .interceptor(attempts.clone())
                    .build(),
            ),
            route53: aws_sdk_route53::Client::from_conf(
                aws_sdk_route53::config::Builder::from(config)
                    .interceptor(attempts.clone())
                    .build(),
            ),
            attempts,
        }
    }
}

/// An error and its causes, joined with `: ` (SDK errors keep the useful
/// part in their sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// A failed SDK call of `op` on `address`.
pub(crate) fn call_error<E: std::error::Error + 'static>(
    op: &str,
    address: &str,
    e: E,
) -> CloudError {
    CloudError::Call {
        op: op.to_string(),
        address: address.to_string(),
        message: error_chain(&e),
    }
}

/// EC2 tags as a map.
pub(crate) fn ec2_tags(
    t: &[aws_sdk_ec2::types::Tag],
) -> std::collections::BTreeMap<String, String> {
    t.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// The short code and message of an S3 error, for reports.
pub fn describe_error<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            )
        }
        other => error_chain(other),
    }
}
