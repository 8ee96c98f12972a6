//! Credentials and permissions, said in one line: no credentials found,
//! credentials AWS rejected, or an action AWS denied. The commands print
//! this instead of the SDK's chain of causes (the credential chain's IMDS
//! attempt, a dispatch failure, ...), which names none of what to do.

use std::error::Error;

use super::CloudError;

/// What is wrong with the caller's access to AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProblem {
    /// The SDK's credential chain found nothing usable.
    NoCredentials,
    /// AWS refused the credentials themselves (expired, unknown, bad
    /// signature).
    Rejected {
        /// AWS's code.
        code: String,
        /// The call that was refused (`sts:GetCallerIdentity`).
        action: String,
    },
    /// The credentials are valid but not allowed this action.
    Denied {
        /// The IAM action (`ec2:DescribeVpcs`).
        action: String,
        /// AWS's code.
        code: String,
        /// AWS's message (it often names the principal and the policy).
        message: Option<String>,
    },
}

/// Codes of credentials AWS does not accept.
const REJECTED: &[&str] = &[
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidToken",
    "RequestExpired",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

/// Codes of an action the credentials may not take.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
];

/// What to set, for a caller without (usable) credentials.
pub const WHAT_TO_SET: &str = "set AWS_PROFILE (after `aws sso login` for an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for an emulator, also AWS_ENDPOINT_URL";

impl std::fmt::Display for AuthProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthProblem::NoCredentials => write!(f, "no AWS credentials were found: {WHAT_TO_SET}"),
            AuthProblem::Rejected { code, action } => write!(
                f,
                "AWS rejected the credentials ({code}, on {action}): they are expired, revoked or wrong; {WHAT_TO_SET}"
            ),
            AuthProblem::Denied {
                action,
                code,
                message,
            } => {
                write!(f, "AWS denied {action} ({code})")?;
                match message {
                    Some(m) if !m.is_empty() => write!(f, ": {}", m.trim()),
                    _ => write!(f, ": allow {action} to the caller's IAM policy"),
                }
            }
        }
    }
}

/// The access problem an error comes from, if any: its own or one of its
/// causes'.
pub fn diagnose(e: &(dyn Error + 'static)) -> Option<AuthProblem> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return Some(AuthProblem::NoCredentials);
        }
        if let Some(CloudError::Call { detail, .. }) = err.downcast_ref::<CloudError>()
            && let Some(code) = &detail.code
        {
            let (action, aws_message) = (&detail.action, &detail.message);
            if REJECTED.contains(&code.as_str()) {
                return Some(AuthProblem::Rejected {
                    code: code.clone(),
                    action: action.clone(),
                });
            }
            if DENIED.contains(&code.as_str()) {
                return Some(AuthProblem::Denied {
                    action: action.clone(),
                    code: code.clone(),
                    message: aws_message.clone(),
                });
            }
        }
        cur = err.source();
    }
    None
}

/// The IAM action of operation `op` of the SDK error type `E`: the service
/// from the SDK crate's name (`aws_sdk_ec2` → `ec2`).
pub(crate) fn action<E>(op: &str) -> String {
    let name = std::any::type_name::<E>();
    let service = name
        .split("aws_sdk_")
        .nth(1)
        .and_then(|rest| rest.split("::").next())
        .map(|s| match s {
            "elasticloadbalancingv2" => "elasticloadbalancing",
            other => other,
        })
        .unwrap_or("aws");
    format!("{service}:{op}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_by_their_service() {
        assert_eq!(
            action::<
                aws_sdk_ec2::error::SdkError<
                    aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError,
                >,
            >("DescribeVpcs"),
            "ec2:DescribeVpcs"
        );
        assert_eq!(
            action::<aws_sdk_elasticloadbalancingv2::error::SdkError<aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersError>>("DescribeLoadBalancers"),
            "elasticloadbalancing:DescribeLoadBalancers"
        );
        assert_eq!(action::<std::io::Error>("X"), "aws:X");
    }

    fn call(code: &str, message: Option<&str>) -> CloudError {
        CloudError::Call {
            op: "DescribeVpcs".into(),
            address: "vpc".into(),
            transient: false,
            detail: Box::new(super::super::CallDetail {
                action: "ec2:DescribeVpcs".into(),
                code: Some(code.into()),
                message: message.map(str::to_string),
            }),
            source: Box::new(std::io::Error::other("x")),
        }
    }

    #[test]
    fn problems_are_told_apart_and_said_in_one_line() {
        let denied = call(
            "UnauthorizedOperation",
            Some("You are not authorized to perform this operation."),
        );
        let p = diagnose(&denied).unwrap();
        assert_eq!(
            p.to_string(),
            "AWS denied ec2:DescribeVpcs (UnauthorizedOperation): You are not authorized to perform this operation."
        );
        let expired = call("ExpiredToken", None);
        assert!(matches!(
            diagnose(&expired),
            Some(AuthProblem::Rejected { .. })
        ));
        assert!(diagnose(&call("InvalidVpcID.NotFound", None)).is_none());
        let none = AuthProblem::NoCredentials.to_string();
        assert!(!none.contains('\n'));
        for needle in [
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
            "sso login",
        ] {
            assert!(none.contains(needle), "{needle}");
        }
        // Found among the causes, too.
        #[derive(Debug, thiserror::Error)]
        #[error("finding existing resources")]
        struct Outer(#[source] CloudError);
        assert!(matches!(
            diagnose(&Outer(call("AccessDenied", None))),
            Some(AuthProblem::Denied { .. })
        ));
    }
}
