//! Why an IoT Core operation failed ([`IotError`]), and the AWS SDK's errors mapped to it:
//! throttling, outages, timeouts and lost connections are `Unavailable` (a 503 for the
//! device), anything else an internal error with the SDK's display.

use std::fmt;

use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use provisioner_core::PortError;

/// Why an IoT Core operation (or the registrations table behind it) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IotError {
    /// Throttled, unreachable or briefly failing, after the SDK's retries: retry shortly.
    #[error("{service} in {region} cannot serve {operation} now ({cause}); retry shortly")]
    Unavailable {
        /// `AWS IoT Core` or `DynamoDB`.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// The region it was sent to.
        region: String,
        /// The error code, or the kind of failure.
        cause: String,
    },
    /// The adapter is configured wrongly (no client, a region twice, no CA certificate).
    #[error("IoT registry configuration: {0}")]
    Config(String),
    /// IoT Core answered something this adapter cannot use (unparsable certificate, an id
    /// that is not SHA-256 of the DER, a key the CSR did not request).
    #[error("AWS IoT Core answered an unusable certificate: {0}")]
    Corrupt(String),
    /// The device registry failed (its own error, passed on unchanged).
    #[error(transparent)]
    Registry(PortError),
    /// Any other failure of the SDK or the service, with the SDK error's display.
    #[error("{service} {operation} in {region} failed: {message}")]
    Sdk {
        /// `AWS IoT Core` or `DynamoDB`.
        service: &'static str,
        /// The operation.
        operation: &'static str,
        /// The region it was sent to.
        region: String,
        /// What the SDK reported.
        message: String,
    },
}

impl From<IotError> for PortError {
    fn from(error: IotError) -> Self {
        match error {
            IotError::Unavailable { service, .. } => PortError::Unavailable {
                what: match service {
                    IOT => "AWS IoT Core".into(),
                    _ => "the registrations table".into(),
                },
                retry_after_secs: 1,
            },
            IotError::Registry(error) => error,
            other => PortError::Internal(other.to_string()),
        }
    }
}

pub(super) const IOT: &str = "AWS IoT Core";
pub(super) const DYNAMODB: &str = "DynamoDB";

/// Error codes that mean "too much, too fast" or "briefly broken" in IoT and DynamoDB.
fn is_transient_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "TooManyRequestsException"
                | "ServiceUnavailableException"
                | "InternalFailureException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
        )
    )
}

/// The failure of `operation` of `service` in `region`.
pub(super) fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    region: &str,
    error: &SdkError<E, R>,
) -> IotError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let cause = match error {
        SdkError::TimeoutError(_) => Some("timeout".to_owned()),
        SdkError::DispatchFailure(_) => Some("connection failed".to_owned()),
        _ if is_transient_code(error.code()) => error.code().map(str::to_owned),
        _ => None,
    };
    match cause {
        Some(cause) => IotError::Unavailable {
            service,
            operation,
            region: region.to_owned(),
            cause,
        },
        None => IotError::Sdk {
            service,
            operation,
            region: region.to_owned(),
            message: DisplayErrorContext(error).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn throttling_and_outages_are_unavailable_and_become_503s() {
        for code in [
            "ThrottlingException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(is_transient_code(Some(code)), "{code}");
        }
        for code in [
            "InvalidRequestException",
            "LimitExceededException",
            "UnauthorizedException",
        ] {
            assert!(!is_transient_code(Some(code)), "{code}");
        }
        let port: PortError = IotError::Unavailable {
            service: IOT,
            operation: "RegisterCertificate",
            region: "eu-west-1".into(),
            cause: "ThrottlingException".into(),
        }
        .into();
        assert_eq!(
            port,
            PortError::Unavailable {
                what: "AWS IoT Core".into(),
                retry_after_secs: 1
            }
        );
        let port: PortError = IotError::Corrupt("x".into()).into();
        assert!(matches!(port, PortError::Internal(_)));
        // The registry's own errors pass through unchanged.
        let registry = PortError::Unavailable {
            what: "the device registry".into(),
            retry_after_secs: 1,
        };
        assert_eq!(
            PortError::from(IotError::Registry(registry.clone())),
            registry
        );
    }
}
