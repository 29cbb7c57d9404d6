//! The MQTT side's registry of things and principals (IoT Core in every region on AWS, the
//! SQLite things tables locally).

use std::future::Future;

use super::{CertificateRecord, PortError};

/// The MQTT side's registry of things and principals (IoT Core, or its local stand-in).
pub trait ThingRegistry: Send + Sync {
    /// Creates the thing if absent, attaches the policy, and attaches the certificate as
    /// its principal.
    fn register(
        &self,
        device_id: &str,
        certificate: &CertificateRecord,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Stops the MQTT side accepting certificates a new issuance superseded (IoT Core:
    /// status REVOKED in every region). The local stand-in reads the registry's CRL, so it
    /// has nothing to do. Idempotent.
    fn retire(
        &self,
        device_id: &str,
        superseded: &[CertificateRecord],
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let _ = (device_id, superseded);
        std::future::ready(Ok(()))
    }
}

impl<T: ThingRegistry + ?Sized> ThingRegistry for std::sync::Arc<T> {
    fn register(
        &self,
        device_id: &str,
        certificate: &CertificateRecord,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).register(device_id, certificate)
    }

    fn retire(
        &self,
        device_id: &str,
        superseded: &[CertificateRecord],
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).retire(device_id, superseded)
    }
}
