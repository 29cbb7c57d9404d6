//! The local adapters: everything `provisioner serve` needs on one machine, kept in a
//! data directory (docs/ARCHITECTURE.md, "The ports and their adapters").

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod authority;
pub mod crl_refresh;
pub mod crls;
pub mod datadir;
pub mod operations;
pub mod registry;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use provisioner_core::{
    CertificateAuthority, IssuanceProfile, PortError, SignedCertificate, SystemClock, UnixTime,
    VerifiedCsr,
};

use authority::{AuthorityError, LocalAuthority};
use datadir::DataDir;
use provisioner_app::flow::{Adapters, Ports};
use registry::{RegistryError, SqliteRegistry};

/// Why the local data directory could not be prepared or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A file or directory could not be read or written (or held an unusable secret).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The CA could not be created or loaded.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The local adapter set: one SQLite registry serves as device registry, thing registry
/// and audit log; the on-disk CA signs.
#[derive(Debug)]
pub struct LocalAdapters;

impl Adapters for LocalAdapters {
    type Registry = SqliteRegistry;
    type Authority = CurrentAuthority;
    type Things = SqliteRegistry;
    type Audit = SqliteRegistry;
    type Clock = SystemClock;
}

impl LocalAdapters {
    /// Opens the registry and the current CA of an initialised data directory.
    ///
    /// # Errors
    /// When the registry cannot be opened or the CA cannot be loaded.
    pub fn open(data_dir: &DataDir) -> Result<Ports<Self>, LocalError> {
        let registry = SqliteRegistry::open(data_dir.registry_path())?;
        Ok(Ports {
            authority: CurrentAuthority::open(data_dir.ca_dir())?,
            things: registry.clone(),
            audit: registry.clone(),
            registry,
            clock: SystemClock,
        })
    }
}

/// What [`initialise`] created, for the operator.
#[derive(Debug, Default)]
pub struct Initialised {
    /// One line per thing created.
    pub messages: Vec<String>,
    /// The admin token, when it was just created (shown once).
    pub admin_token: Option<String>,
}

/// Makes a data directory ready to serve: the directory, a development CA when there is
/// none, the admin token and the URL signing key.
///
/// # Errors
/// Any I/O or CA error, with the path it concerns.
pub fn initialise(data_dir: &DataDir) -> Result<Initialised, LocalError> {
    let mut created = Initialised::default();
    data_dir.ensure_exists()?;
    match LocalAuthority::load(&data_dir.ca_dir()) {
        Ok(_) => {}
        Err(AuthorityError::NotInitialised { .. }) => {
            let now = provisioner_core::Clock::now(&SystemClock);
            let report = LocalAuthority::init_development(&data_dir.ca_dir(), now)?;
            created.messages.push(format!(
                "created a development CA in {} (issuing CA {}; root certificate {})",
                data_dir.ca_dir().display(),
                report.id,
                report.root_certificate.display()
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let token = data_dir.admin_token()?;
    if token.created {
        created.admin_token = Some(String::from_utf8_lossy(&token.bytes).into_owned());
    }
    if data_dir.url_signing_key()?.created {
        created.messages.push(format!(
            "created the retrieval URL signing key {}",
            data_dir.url_signing_key_path().display()
        ));
    }
    let registry_existed = data_dir.registry_path().exists();
    drop(SqliteRegistry::open(data_dir.registry_path())?);
    if !registry_existed {
        created.messages.push(format!(
            "created the registry {}",
            data_dir.registry_path().display()
        ));
    }
    Ok(created)
}

/// When the `current` file was written, and its inode.
type Stamp = (Option<SystemTime>, u64);

/// The current issuing CA, followed across rotations: `provisioner ca rotate` (another
/// process) switches the `current` file, and the next issuance uses the new CA.
pub struct CurrentAuthority {
    ca_dir: PathBuf,
    loaded: RwLock<(Option<Stamp>, Arc<LocalAuthority>)>,
}

impl std::fmt::Debug for CurrentAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentAuthority")
            .field("ca_dir", &self.ca_dir)
            .finish_non_exhaustive()
    }
}

impl CurrentAuthority {
    /// Loads the current CA of `ca_dir`.
    ///
    /// # Errors
    /// When it cannot be loaded.
    pub fn open(ca_dir: PathBuf) -> Result<Self, AuthorityError> {
        let stamp = Self::stamp(&ca_dir);
        let authority = Arc::new(LocalAuthority::load(&ca_dir)?);
        Ok(Self {
            ca_dir,
            loaded: RwLock::new((stamp, authority)),
        })
    }

    /// The `current` file's identity: a rotation replaces it by a rename, so the inode
    /// changes even when the modification time, at the file system's granularity, does
    /// not (the registry refusing the retired CA's certificate must find the new CA here).
    fn stamp(ca_dir: &std::path::Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(ca_dir.join("current")).ok()?;
        Some((metadata.modified().ok(), metadata.ino()))
    }

    /// The CA to use now, reloaded if the `current` file changed since it was loaded.
    fn current(&self) -> Result<Arc<LocalAuthority>, PortError> {
        let stamp = Self::stamp(&self.ca_dir);
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if loaded.0 == stamp {
                return Ok(loaded.1.clone());
            }
        }
        let authority = Arc::new(
            LocalAuthority::load(&self.ca_dir)
                .map_err(|e| PortError::Internal(format!("cannot load the rotated CA: {e}")))?,
        );
        tracing::info!(
            ca = authority.id(),
            "issuing CA changed; using it from now on"
        );
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = (stamp, authority.clone());
        Ok(authority)
    }
}

impl CertificateAuthority for CurrentAuthority {
    fn issue(
        &self,
        request: &VerifiedCsr,
        _idempotency_key: &str,
        profile: &IssuanceProfile,
        now: UnixTime,
    ) -> impl Future<Output = Result<SignedCertificate, PortError>> + Send {
        let result = self.current().and_then(|authority| {
            authority
                .issue_certificate(request, profile, now)
                .map_err(|e| PortError::Internal(e.to_string()))
        });
        async move { result }
    }

    fn chain_pem(&self) -> impl Future<Output = Result<String, PortError>> + Send {
        let result = self
            .current()
            .map(|authority| LocalAuthority::chain_pem(&authority).to_owned());
        async move { result }
    }
}
