//! The AWS backend's wiring, in one place for `provisioner serve --backend aws`, the CLI
//! and the Lambdas (docs/ARCHITECTURE.md, "Where to add things": a backend's wiring is
//! built once and reused):
//!
//! - [`AwsDeviceFlow`]: the provisioning flow on the AWS adapters, its settings adapted to
//!   the issuance mode, and where latent delivery leaves certificates (the issuer Lambda,
//!   `serve --backend aws`); with the tables `serve --create-tables` makes;
//! - [`registry`]: the DynamoDB registry and audit log alone (the authorizer, which needs
//!   no CA or IoT client on its cold start, and `provisioner import --backend aws`).

use std::sync::Arc;

use provisioner_app::flow::{FlowSettings, Provisioner};
use provisioner_app::latent::CertificateStore;
use provisioner_core::PortError;

use crate::adapters::AwsAdapters;
use crate::ca::{CaError, IssuingCaStore};
use crate::config::AwsSettings;
use crate::dynamodb::{DynamoDbError, DynamoDbRegistry, DynamoDbTables};
use crate::iot::IotError;
use crate::s3::S3RetrievalStore;

/// The device flow on AWS: what the device router is built over.
pub struct AwsDeviceFlow {
    /// The flow over [`AwsAdapters`].
    pub provisioner: Provisioner<AwsAdapters>,
    /// The S3 bucket of latent delivery, `None` when none is configured (the router's
    /// signed route then serves it).
    pub certificate_store: Option<Arc<dyn CertificateStore>>,
}

impl std::fmt::Debug for AwsDeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsDeviceFlow")
            .field("certificate_store", &self.certificate_store.is_some())
            .finish_non_exhaustive()
    }
}

/// Why [`AwsDeviceFlow::create_tables`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateTablesError {
    /// The registry's tables.
    #[error(transparent)]
    Registry(#[from] DynamoDbError),
    /// The regional registrations table.
    #[error(transparent)]
    Registrations(#[from] IotError),
    /// The config table (the issuing CA).
    #[error(transparent)]
    Config(#[from] CaError),
}

impl AwsDeviceFlow {
    /// Builds the adapters ([`AwsAdapters::connect`]) and the flow over them with `flow`
    /// under the configured issuance mode (in IoT Core mode a subject beyond the CN is
    /// refused before IoT Core copies it), and the S3 store of latent delivery.
    ///
    /// # Errors
    /// As [`AwsAdapters::connect`].
    pub async fn connect(
        settings: &AwsSettings,
        mut flow: FlowSettings,
    ) -> Result<Self, PortError> {
        let ports = AwsAdapters::connect(settings).await?;
        flow.profile.csr = settings.issuance_mode.csr_policy(flow.profile.csr);
        Ok(Self {
            provisioner: Provisioner::new(ports, flow),
            certificate_store: S3RetrievalStore::for_settings(settings).await,
        })
    }

    /// Creates the tables the flow and the issuing CA's lookup use when absent (to try the
    /// service against moto or a fresh account without deploying the template).
    ///
    /// # Errors
    /// The first table that cannot be created.
    pub async fn create_tables(&self, settings: &AwsSettings) -> Result<(), CreateTablesError> {
        let ports = self.provisioner.ports();
        ports.registry.create_tables().await?;
        ports.things.create_registrations_table().await?;
        IssuingCaStore::new(ports.registry.client().clone(), settings.config_table())
            .ensure_config_table()
            .await?;
        Ok(())
    }
}

/// The DynamoDB registry and audit log of `settings`' tables, from the standard AWS
/// configuration.
pub async fn registry(settings: &AwsSettings) -> DynamoDbRegistry {
    DynamoDbRegistry::from_env(DynamoDbTables::with_prefix(&settings.table_prefix)).await
}
