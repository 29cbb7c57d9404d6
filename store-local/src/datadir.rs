//! The data directory: where the local service keeps its registry, CA and secrets.
//!
//! ```text
//! DATA_DIR/                    0700
//!   registry.sqlite3           the registry (WAL)
//!   ca/                        the on-disk CA (keys 0600)
//!   admin-token                0600, 256 random bits, hex
//!   url-signing.key            0600, HMAC key of latent retrieval URLs
//! ```
//!
//! Every file here is written by one atomic writer ([`write_secret_new`],
//! [`write_secret_replacing`], [`write_public_replacing`]): a temporary file in the same
//! directory, written, synced, renamed (or linked) into place, then the directory synced,
//! so a crash leaves the old file or the new one, never a short one. A secret found
//! empty or shorter than its minimum (a crash under an older build, a hand edit) is
//! refused with the file's path and what to do, never used.

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
    /// Any I/O error reading or writing it; `InvalidData` naming the file when it holds
    /// fewer than [`MIN_ADMIN_TOKEN_LEN`] characters (besides surrounding whitespace).
    pub fn admin_token(&self) -> io::Result<Secret> {
        let path = self.admin_token_path();
        let secret = self.secret(&path, |bytes| hex::encode(bytes).into_bytes())?;
        if secret.bytes.trim_ascii().len() < MIN_ADMIN_TOKEN_LEN {
            return Err(too_short(
                &path,
                "admin token",
                secret.bytes.trim_ascii().len(),
                MIN_ADMIN_TOKEN_LEN,
                "characters",
                "run `provisioner admin token --rotate` to replace it (it prints the new token)",
            ));
        }
        Ok(secret)
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
    /// Any I/O error reading or writing it; `InvalidData` naming the file when it holds
    /// fewer than [`MIN_URL_SIGNING_KEY_LEN`] bytes (an HMAC key that short, or empty,
    /// would let anyone forge retrieval URLs).
    pub fn url_signing_key(&self) -> io::Result<Secret> {
        let path = self.url_signing_key_path();
        let secret = self.secret(&path, |bytes| bytes.to_vec())?;
        if secret.bytes.len() < MIN_URL_SIGNING_KEY_LEN {
            return Err(too_short(
                &path,
                "URL signing key",
                secret.bytes.len(),
                MIN_URL_SIGNING_KEY_LEN,
                "bytes",
                "delete the file and start again: a new random key is generated (retrieval URLs handed out before stop working)",
            ));
        }
        Ok(secret)
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

/// The shortest URL signing key accepted: HMAC-SHA256's output size, as RFC 2104 advises.
pub const MIN_URL_SIGNING_KEY_LEN: usize = 32;

pub use provisioner_app::admin_token::MIN_ADMIN_TOKEN_LEN;

/// The refusal of a secret file too short to be safe.
fn too_short(path: &Path, what: &str, len: usize, min: usize, unit: &str, fix: &str) -> io::Error {
    let found = if len == 0 {
        "is empty (perhaps an interrupted first start)".to_owned()
    } else {
        format!("holds {len} {unit}, fewer than the {min} required")
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the {what} {} {found}; it is not used: {fix}",
            path.display()
        ),
    )
}

fn random_32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Writes a new secret file readable by its owner only (0600), atomically; fails if it
/// exists. Other processes see no file or the whole of it.
///
/// # Errors
/// `AlreadyExists` if the file exists; any other I/O error.
pub fn write_secret_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes, 0o600, Install::CreateNew)
}

/// Replaces (or creates) a secret file readable by its owner only (0600), atomically.
///
/// # Errors
/// Any I/O error.
pub fn write_secret_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes, 0o600, Install::Replace)
}

/// Replaces (or creates) a file that holds nothing secret (certificates, CRLs,
/// configuration), mode 0644, atomically.
///
/// # Errors
/// Any I/O error.
pub fn write_public_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes, 0o644, Install::Replace)
}

/// How the finished temporary file takes the final name.
#[derive(Clone, Copy)]
enum Install {
    /// `rename`: replaces whatever is there.
    Replace,
    /// `link`: fails with `AlreadyExists` if the name is taken, so two processes
    /// creating the same file cannot both win.
    CreateNew,
}

/// The one atomic writer: a temporary file in the same directory (created exclusively
/// with `mode`, so a secret is never readable by others, even briefly), written and
/// synced, installed under `path`, then the directory synced so the name survives a
/// crash. A crash at any point leaves the old file (or none) or the new one, plus at
/// worst a stray temporary file; never a short file under `path`.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32, install: Install) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.tmp", hex::encode(&random_32()[..8])));
    let temporary = directory.join(temporary_name);
    let written = write_then_install(&temporary, path, bytes, mode, install);
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    fs::File::open(directory)?.sync_all()
}

fn write_then_install(
    temporary: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    install: Install,
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    match install {
        Install::Replace => fs::rename(temporary, path),
        Install::CreateNew => {
            fs::hard_link(temporary, path)?;
            fs::remove_file(temporary)
        }
    }
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
    fn an_empty_or_short_url_signing_key_is_refused_with_its_path() {
        for found in [&b""[..], &[7u8; MIN_URL_SIGNING_KEY_LEN - 1][..]] {
            // Given a data directory whose URL signing key was left short
            let dir = tempfile::tempdir().unwrap();
            let data = DataDir::new(dir.path());
            fs::write(data.url_signing_key_path(), found).unwrap();
            // When it is read, then it is refused, naming the file and the fix
            let error = data.url_signing_key().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            let message = error.to_string();
            assert!(
                message.contains(&data.url_signing_key_path().display().to_string()),
                "{message}"
            );
            assert!(message.contains("delete the file"), "{message}");
            // and the file is left for the operator, not silently replaced
            assert_eq!(fs::read(data.url_signing_key_path()).unwrap(), found);
        }
    }

    #[test]
    fn an_empty_or_short_admin_token_is_refused_until_rotated() {
        for found in ["", "\n", "0123456789abcdef\n"] {
            let dir = tempfile::tempdir().unwrap();
            let data = DataDir::new(dir.path());
            fs::write(data.admin_token_path(), found).unwrap();
            let error = data.admin_token().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            let message = error.to_string();
            assert!(message.contains("admin-token"), "{message}");
            assert!(message.contains("admin token --rotate"), "{message}");
            // Rotating is the fix it names.
            let rotated = data.rotate_admin_token().unwrap();
            assert_eq!(data.admin_token().unwrap().bytes, rotated);
        }
    }

    #[test]
    fn a_full_length_secret_is_accepted_as_found() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        fs::write(data.url_signing_key_path(), [9u8; 32]).unwrap();
        let key = data.url_signing_key().unwrap();
        assert!(!key.created);
        assert_eq!(key.bytes, [9u8; 32]);
    }

    #[test]
    fn writes_leave_no_temporary_file_and_create_new_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_secret_new(&path, b"first").unwrap();
        let again = write_secret_new(&path, b"second").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_secret_replacing(&path, b"third").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_public_replacing(&dir.path().join("public"), b"x").unwrap();
        let public_mode = fs::metadata(dir.path().join("public"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(public_mode & 0o777, 0o644);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "stray files: {names:?}");
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
