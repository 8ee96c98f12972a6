//! The SDK clients, built once from the standard AWS configuration chain;
//! `AWS_ENDPOINT_URL` points every client at an emulator such as
//! moto_server (S3 then uses path-style addressing). An interceptor counts
//! operations and attempts, so retries can be reported.

use std::sync::Arc;

use aws_config::BehaviorVersion;

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
    /// STS (the caller's account).
    pub sts: aws_sdk_sts::Client,
    /// Attempts made by all clients (retries included).
    pub attempts: AttemptCounter,
    /// Public hosted zone ids, looked up once per run.
    pub zone_ids: super::aws::ZoneIds,
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
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // One event per attempt, inside the span of the apply step or
        // discovery that made the call: `-v` shows every call, its
        // resource and its retries.
        let meta = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>();
        let attempt = cfg
            .load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
            .map_or(1, |a| a.attempts());
        tracing::info!(
            service = meta.map_or("", |m| m.service()),
            operation = meta.map_or("", |m| m.name()),
            attempt,
            "AWS call"
        );
        Ok(())
    }
}

/// AWS requests in flight per service unless `--parallelism` says otherwise.
pub const DEFAULT_PARALLELISM: usize = 10;

/// Attempts per call: throttling at scale (kops#7111) needs more than the
/// SDK's default 3; backoff with jitter comes from the SDK's standard mode.
pub const MAX_ATTEMPTS: u32 = 8;

impl Clients {
    /// Loads the AWS configuration (environment, profile, instance role)
    /// for `region`, with [`DEFAULT_PARALLELISM`] requests at once per service.
    pub async fn load(region: &str) -> Clients {
        Clients::load_bounded(region, DEFAULT_PARALLELISM).await
    }

    /// As [`Clients::load`], with at most `parallelism` requests in flight
    /// per service.
    pub async fn load_bounded(region: &str, parallelism: usize) -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS),
            )
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        Clients::from_sdk_bounded(&config, custom_endpoint, parallelism)
    }

    /// Clients from an SDK configuration; `path_style` for S3 emulators.
    pub fn from_sdk(config: &aws_config::SdkConfig, path_style: bool) -> Clients {
        Clients::from_sdk_bounded(config, path_style, DEFAULT_PARALLELISM)
    }

    /// As [`Clients::from_sdk`], with at most `parallelism` requests in
    /// flight per service (each service has its own bound: AWS throttles
    /// per API, and one busy service must not hold up the others).
    pub fn from_sdk_bounded(
        config: &aws_config::SdkConfig,
        path_style: bool,
        parallelism: usize,
    ) -> Clients {
        let attempts = AttemptCounter::default();
        let http = config
            .http_client()
            .unwrap_or_else(super::bounded::default_https_client);
        let bound = || super::bounded::Bounded::new(http.clone(), parallelism);
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .http_client(bound())
            .interceptor(attempts.clone())
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .http_client(bound())
                    .interceptor(attempts.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config)
                    .http_client(bound())
                    .interceptor(attempts.clone())
                    .build(),
            ),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(config)
                    .http_client(bound())
                    .interceptor(attempts.clone())
                    .build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                    .http_client(bound())
                    .interceptor(attempts.clone())
                    .build(),
            ),
            route53: aws_sdk_route53::Client::from_conf(
                aws_sdk_route53::config::Builder::from(config)
                    .http_client(bound())
                    .interceptor(attempts.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .http_client(bound())
                    .interceptor(attempts.clone())
                    .build(),
            ),
            attempts,
            zone_ids: Default::default(),
        }
    }

    /// The state store at `bucket`/`prefix`, expecting the bucket to be
    /// owned by the credentials' account.
    pub async fn state_store(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<crate::state::StateStore, super::CloudError> {
        let owner = self.account_id().await?;
        Ok(
            crate::state::StateStore::new(self.s3.clone(), bucket, prefix)
                .with_expected_owner(owner),
        )
    }

    /// The account of the credentials in use (`sts:GetCallerIdentity`,
    /// which needs no permission): the state bucket's expected owner.
    /// `None` when STS names no account (it always does on AWS).
    pub async fn account_id(&self) -> Result<Option<String>, super::CloudError> {
        let out =
            self.sts.get_caller_identity().send().await.map_err(|e| {
                super::call_error("GetCallerIdentity", "the credentials' account", e)
            })?;
        Ok(out.account.filter(|a| !a.is_empty()))
    }
}
