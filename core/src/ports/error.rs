//! How an adapter fails, as the use cases see it.

/// A failure of an adapter, as the flow sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The backend cannot serve now but may soon (503 with `Retry-After`).
    #[error("{what} is unavailable now; retry after {retry_after_secs} s")]
    Unavailable {
        /// What is unavailable (safe to show the caller).
        what: String,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Another request took the device's issuance claim after this one's lapsed, so this
    /// one's certificate was not recorded (503 with `Retry-After`: the retry finds the
    /// other's certificate).
    #[error("another request for device {device_id} is issuing its certificate; retry")]
    ClaimLost {
        /// The device whose claim was lost.
        device_id: String,
    },
    /// The CA that signed the certificate was retired (a rotation finished meanwhile), so
    /// the certificate was not recorded; the flow signs again under the current CA.
    #[error("the issuing CA {issuer} was retired while the certificate was being issued")]
    IssuerRetired {
        /// The retired CA's id.
        issuer: String,
    },
    /// Anything else: logged with its cause, answered as a generic 500.
    #[error("{0}")]
    Internal(String),
}
