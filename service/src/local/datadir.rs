//! The data directory: where the local service keeps its registry, CA and secrets.
//!
//! ```text
//! DATA_DIR/                    0700
//!   registry.sqlite3           the registry (WAL)
//!   ca/                        the on-disk CA (keys 0600)
//!   admin-token                0600, 256 random bits, hex
//!   url-signing.key            0600, HMAC key of latent retrieval URLs
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

/// The data directory of the local service.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// A secret read from the data directory, and whether this call created it.
#[derive(Debug)]
pub struct Secret {
    /// The secret bytes.
    pub bytes: Vec<u8>,
    /// True when it did not exist before and was just generated.
    pub created: bool,
}

impl DataDir {
    /// A data directory at `root` (not created until [`DataDir::ensure_exists`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite registry.
    pub fn registry_path(&self) -> PathBuf {
        self.root.join("registry.sqlite3")
    }

    /// The on-disk CA's directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// The admin API's bearer token.
    pub fn admin_token_path(&self) -> PathBuf {
        self.root.join("admin-token")
    }

    /// The HMAC key that signs latent retrieval URLs.
    pub fn url_signing_key_path(&self) -> PathBuf {
        self.root.join("url-signing.key")
    }

    /// Creates the directory (mode 0700) if it is missing.
    ///
    /// # Errors
    /// Any I/O error creating it.
    pub fn ensure_exists(&self) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    /// The admin token (hex of 256 random bits), generated on first use.
    ///
    /// # Errors
    /// Any I/O error reading or writing it.
    pub fn admin_token(&self) -> io::Result<Secret> {
        self.secret(&self.admin_token_path(), |bytes| {
            hex::encode(bytes).into_bytes()
        })
    }

    /// Replaces the admin token with a new one and returns it.
    ///
    /// # Errors
    /// Any I/O error writing it.
    pub fn rotate_admin_token(&self) -> io::Result<Vec<u8>> {
        let token = hex::encode(random_32()).into_bytes();
        write_secret_replacing(&self.admin_token_path(), &token)?;
        Ok(token)
    }

    /// The URL signing key (32 random bytes), generated on first use.
    ///
    /// # Errors
    /// Any I/O error reading or writing it.
    pub fn url_signing_key(&self) -> io::Result<Secret> {
        self.secret(&self.url_signing_key_path(), |bytes| bytes.to_vec())
    }

    fn secret(&self, path: &Path, encode: impl Fn(&[u8]) -> Vec<u8>) -> io::Result<Secret> {
        match fs::read(path) {
            Ok(bytes) => Ok(Secret {
                bytes,
                created: false,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_exists()?;
                let bytes = encode(&random_32());
                match write_secret_new(path, &bytes) {
                    Ok(()) => Ok(Secret {
                        bytes,
                        created: true,
                    }),
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Secret {
                        bytes: fs::read(path)?,
                        created: false,
                    }),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

fn random_32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Writes a new secret file readable by its owner only; fails if it exists.
///
/// # Errors
/// `AlreadyExists` if the file exists; any other I/O error.
pub fn write_secret_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces a secret file atomically (write a 0600 temporary file, then rename).
///
/// # Errors
/// Any I/O error.
pub fn write_secret_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("new");
    let _ = fs::remove_file(&temporary);
    write_secret_new(&temporary, bytes)?;
    fs::rename(&temporary, path)
}

/// Replaces a file that holds nothing secret (certificates, CRLs, configuration)
/// atomically: a 0644 temporary file beside it, synced, then renamed over it.
///
/// # Errors
/// Any I/O error.
pub fn write_public_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A name of its own per write: `serve` and a CLI command may write the same CRL at
    // once, and a shared temporary file could be renamed half-written.
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(
        ".{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let temporary = PathBuf::from(temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_admin_token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        let first = data.admin_token().unwrap();
        let second = data.admin_token().unwrap();
        assert!(first.created);
        assert!(!second.created);
        assert_eq!(first.bytes, second.bytes);
        assert_eq!(first.bytes.len(), 64);
        let mode = fs::metadata(data.admin_token_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(data.root()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn rotating_the_token_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let first = data.admin_token().unwrap().bytes;
        let rotated = data.rotate_admin_token().unwrap();
        assert_ne!(first, rotated);
        assert_eq!(data.admin_token().unwrap().bytes, rotated);
    }
}
