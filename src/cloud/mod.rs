//! What clusterctl needs from AWS, and how it connects. The SDK clients are
//! built once from the standard AWS configuration chain; `AWS_ENDPOINT_URL`
//! points every client at an emulator such as moto_server (S3 then uses
//! path-style addressing).

use aws_config::BehaviorVersion;

/// AWS clients for one region.
#[derive(Debug, Clone)]
pub struct Clients {
    /// S3 (state store).
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Loads the AWS configuration (environment, profile, instance role)
    /// for `region`.
    pub async fn load(region: &str) -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(custom_endpoint)
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }
}

/// The short code and message of an SDK error, for reports.
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
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            msg
        }
    }
}
