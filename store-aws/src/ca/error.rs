//! Why a CA operation failed ([`CaError`]), and the AWS SDK's errors mapped to it:
//! throttling is retried with backoff, then answered `Unavailable`; an unknown ACM Private
//! CA is `NotFound`.

use std::future::Future;
use std::time::Duration;

// The SDK's error types are the same in every service crate.
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use provisioner_core::PortError;

use crate::acm_pca::backoff;
use crate::dynamodb::DynamoDbError;
use crate::is_throttling;

pub(super) const PCA: &str = "ACM Private CA";
pub(super) const IOT: &str = "IoT Core";
pub(super) const DYNAMODB: &str = "DynamoDB";

/// Attempts at a throttled call before giving up.
const MAX_ATTEMPTS: u32 = 8;

/// Why a CA operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A service throttled past the retries: run the command again shortly (it resumes).
    #[error("{service} cannot serve {operation} now ({cause}); run it again shortly")]
    Unavailable {
        /// The AWS service.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// The error code.
        cause: String,
    },
    /// The request cannot be done as given (bad subject, certificate for another key...).
    #[error("{0}")]
    InvalidInput(String),
    /// Something changed meanwhile (another rotation, another issuing CA).
    #[error("{0}")]
    Conflict(String),
    /// The CA (or certificate) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The CA is not in the state the operation needs (e.g. not ACTIVE yet).
    #[error("{0}")]
    WrongState(String),
    /// A service answered something unusable, or a stored item is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// Any other failure of the SDK or a service, with the SDK error's display.
    #[error("{service} {operation} failed: {message}")]
    Sdk {
        /// The AWS service.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// What the SDK reported.
        message: String,
    },
    /// A failure reported through the ports (issuance wait, registry, IoT revocation).
    #[error(transparent)]
    Port(#[from] PortError),
}

impl CaError {
    /// A stable snake_case code for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::InvalidInput(_) => "invalid_input",
            Self::Conflict(_) => "conflict",
            Self::NotFound(_) => "not_found",
            Self::WrongState(_) => "wrong_state",
            Self::Corrupt(_) => "corrupt",
            Self::Sdk { .. } => "aws_error",
            Self::Port(PortError::Unavailable { .. }) => "unavailable",
            Self::Port(_) => "internal",
        }
    }
}

impl From<CaError> for PortError {
    fn from(error: CaError) -> Self {
        match error {
            CaError::Port(port) => port,
            CaError::Unavailable { service, .. } => PortError::Unavailable {
                what: service.into(),
                retry_after_secs: 1,
            },
            other => PortError::Internal(other.to_string()),
        }
    }
}

impl From<DynamoDbError> for CaError {
    fn from(error: DynamoDbError) -> Self {
        match error {
            DynamoDbError::Unavailable { operation, cause } => CaError::Unavailable {
                service: DYNAMODB,
                operation,
                cause,
            },
            DynamoDbError::Corrupt(message) => CaError::Corrupt(message),
            other => CaError::Sdk {
                service: DYNAMODB,
                operation: "registry",
                message: other.to_string(),
            },
        }
    }
}

pub(super) fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    error: &SdkError<E, R>,
) -> CaError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if is_throttling(error.code()) {
        return CaError::Unavailable {
            service,
            operation,
            cause: error.code().unwrap_or_default().to_owned(),
        };
    }
    CaError::Sdk {
        service,
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

/// Calls `call` again while it is throttled, backing off from 200 ms to 5 s, at most
/// [`MAX_ATTEMPTS`] times; returns the last answer.
pub(super) async fn retry_throttled<T, E, R, F, Fut>(mut call: F) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if is_throttling(error.code()) && attempt + 1 < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff(
                    Duration::from_millis(200),
                    Duration::from_secs(5),
                    attempt,
                ))
                .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The failure of an ACM Private CA `operation` on the CA `arn`: an unknown CA or a
/// malformed ARN says so.
pub(super) fn not_found_or<E, R>(
    error: &SdkError<E, R>,
    arn: &str,
    operation: &'static str,
) -> CaError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.code() {
        Some("ResourceNotFoundException") => CaError::NotFound(format!(
            "no ACM Private CA {arn} in this account and region (check the ARN and AWS_REGION)"
        )),
        Some("InvalidArnException") => CaError::InvalidInput(format!(
            "{arn:?} is not a CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)"
        )),
        _ => sdk_error(PCA, operation, error),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn throttling_is_unavailable_for_the_ports() {
        let port: PortError = CaError::Unavailable {
            service: IOT,
            operation: "UpdateCertificate",
            cause: "ThrottlingException".into(),
        }
        .into();
        assert!(matches!(port, PortError::Unavailable { ref what, .. } if what == IOT));
        let port: PortError = CaError::Conflict("x".into()).into();
        assert_eq!(port, PortError::Internal("x".into()));
    }
}
