//! The ports: small traits, named for their roles, through which the use cases reach
//! the outside world (docs/ARCHITECTURE.md, "The ports and their adapters"). Adapters
//! implement them (SQLite, the on-disk CA, DynamoDB, ACM Private CA, IoT Core, S3); this
//! module only names what the use cases need, one file per port with the shapes it
//! speaks in.
//!
//! Methods return `Send` futures so one flow serves both the local service and Lambdas,
//! in one of two forms, chosen by how the port is held:
//!
//! - The ports the provisioning flow is generic over ([`DeviceRegistry`],
//!   [`CertificateAuthority`], [`ThingRegistry`], [`AuditLog`], [`Clock`]) return
//!   `impl Future + Send`: an adapter set is chosen once per process (`Adapters` in
//!   `provisioner-app`), the flow is monomorphised, and the request path allocates no
//!   future.
//! - The roles held as trait objects, chosen at run time ([`CertificateStore`] and the
//!   admin API's `FleetAdmin`), return a [`BoxFuture`], the one boxed form.

mod audit;
mod authority;
mod clock;
mod delivery;
mod error;
mod registry;
mod things;

pub use audit::{AuditEvent, AuditLog};
pub use authority::{CertificateAuthority, SignedCertificate};
pub use clock::{Clock, SystemClock};
pub use delivery::{CertificateStore, Publication, PublishFuture};
pub use error::PortError;
pub use registry::{
    CertificateRecord, ClaimOutcome, Device, DeviceRegistry, IssuanceClaim, RevocationReason,
};
pub use things::ThingRegistry;

/// The future of a role held as a trait object: boxed, `Send`, borrowing for `'a`.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
