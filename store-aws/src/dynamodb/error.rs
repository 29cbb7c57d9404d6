//! Why a registry operation failed ([`DynamoDbError`]), and the AWS SDK's errors mapped
//! to it: throttling and transaction conflicts are `Unavailable` (a 503), anything else
//! an internal error with the SDK's display.

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use provisioner_core::{PortError, UnixTime};

use crate::is_throttling;

/// Why a DynamoDB registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoDbError {
    /// DynamoDB throttled the request, or a transaction conflicted with another write,
    /// after the SDK's retries: retry shortly.
    #[error("DynamoDB cannot serve {operation} now ({cause}); retry shortly")]
    Unavailable {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The error or cancellation code.
        cause: String,
    },
    /// No device has this id.
    #[error("no device {0:?} in the registry: import its manufacturer manifest first (`provisioner import`)")]
    UnknownDevice(String),
    /// The certificate id is already recorded for another device.
    #[error("certificate {certificate_id:?} is already recorded for device {recorded_for:?}, not {device_id:?}")]
    CertificateConflict {
        /// The certificate id.
        certificate_id: String,
        /// The device the new record names.
        device_id: String,
        /// The device it is recorded for.
        recorded_for: String,
    },
    /// Another request took the device's issuance claim after this one's lapsed: nothing
    /// was recorded.
    #[error("another request took the issuance claim of device {0:?}; nothing was recorded")]
    ClaimLost(String),
    /// A device's key changed while an import replacing it ran.
    #[error("device {0:?} changed while the import ran; run the import again (it finishes what is left)")]
    ImportRaced(String),
    /// A time cannot be represented (before year -9999 or after 9999).
    #[error("time {0} is out of range")]
    TimeOutOfRange(UnixTime),
    /// A stored item is not what the schema allows.
    #[error("the registry is damaged: {0}")]
    Corrupt(String),
    /// Any other failure of the SDK or the service, with the SDK error's display.
    #[error("DynamoDB {operation} failed: {message}")]
    Sdk {
        /// The DynamoDB operation.
        operation: &'static str,
        /// What the SDK reported.
        message: String,
    },
}

impl From<DynamoDbError> for PortError {
    fn from(error: DynamoDbError) -> Self {
        match error {
            DynamoDbError::Unavailable { .. } => PortError::Unavailable {
                what: "the device registry".into(),
                retry_after_secs: 1,
            },
            DynamoDbError::ClaimLost(device_id) => PortError::ClaimLost { device_id },
            other => PortError::Internal(other.to_string()),
        }
    }
}

/// The failure of the DynamoDB `operation`.
pub(crate) fn sdk_error<E>(operation: &'static str, error: SdkError<E>) -> DynamoDbError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // A write to an item a transaction is changing (a claim or its release while the
    // holder records) is refused, not queued: retry shortly, as for throttling.
    if is_throttling(error.code()) || error.code() == Some("TransactionConflictException") {
        return DynamoDbError::Unavailable {
            operation,
            cause: error.code().unwrap_or_default().to_owned(),
        };
    }
    DynamoDbError::Sdk {
        operation,
        message: DisplayErrorContext(&error).to_string(),
    }
}

/// A request the SDK could not build.
pub(crate) fn build_error(error: BuildError) -> DynamoDbError {
    DynamoDbError::Sdk {
        operation: "building a request",
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_unavailable_and_others_internal() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            assert!(is_throttling(Some(code)), "{code}");
        }
        assert!(!is_throttling(Some("ValidationException")));
        assert!(!is_throttling(None));
        let port: PortError = DynamoDbError::Unavailable {
            operation: "Query",
            cause: "ThrottlingException".into(),
        }
        .into();
        assert_eq!(
            port,
            PortError::Unavailable {
                what: "the device registry".into(),
                retry_after_secs: 1
            }
        );
        let port: PortError = DynamoDbError::UnknownDevice("dev-1".into()).into();
        assert!(matches!(port, PortError::Internal(m) if m.contains("dev-1")));
    }
}
