//! The audit log: every allow and deny, with its reason.

use std::future::Future;

use super::PortError;
use crate::issuance::UnixTime;

/// One decision, allow or deny, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When.
    pub at: UnixTime,
    /// The device id, when the request named one.
    pub device_id: Option<String>,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The refusal's stable code (deny), or what was done (allow: `issued`, `returned`).
    pub code: String,
    /// The client address.
    pub remote_addr: Option<String>,
    /// The CSR fingerprint, when the CSR parsed.
    pub fingerprint: Option<String>,
    /// The certificate returned, if any.
    pub certificate_id: Option<String>,
}

/// Where every allow and deny is written.
pub trait AuditLog: Send + Sync {
    /// Appends an event.
    fn record(&self, event: AuditEvent) -> impl Future<Output = Result<(), PortError>> + Send;
}

impl<T: AuditLog + ?Sized> AuditLog for std::sync::Arc<T> {
    fn record(&self, event: AuditEvent) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).record(event)
    }
}
