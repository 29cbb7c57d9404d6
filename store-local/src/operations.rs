//! Operations that need both the on-disk CA and the registry: revocation lists, CA
//! rotation with cascading revocation, and the files a local MQTT broker needs.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use provisioner_core::{RevocationReason, UnixTime};

use super::authority::{LocalAuthority, RevokedEntry};
use super::datadir::{write_public_replacing as write_public, write_secret_replacing, DataDir};
use super::registry::{CaState, RotationJob, SqliteRegistry};
use super::LocalError;

/// How long a CRL stays current by default (`--crl-lifetime`); brokers need a fresh one
/// before then, which `serve` writes at half this lifetime ([`super::crl_refresh`]).
pub const CRL_LIFETIME_SECS: i64 = 7 * 24 * 60 * 60;

/// How many certificates one commit of the rotation cascade revokes.
pub const CASCADE_BATCH: usize = 500;

/// The CRL file of an issuing CA.
pub fn crl_path(data_dir: &DataDir, ca_id: &str) -> PathBuf {
    data_dir
        .ca_dir()
        .join("issuing")
        .join(ca_id)
        .join("crl.pem")
}

/// The root's CRL file (it lists revoked intermediates).
pub fn root_crl_path(data_dir: &DataDir) -> PathBuf {
    data_dir.ca_dir().join("root.crl.pem")
}

/// Every issuing CA on disk: the previous ones, oldest first, then the current one.
///
/// # Errors
/// When the CA directory cannot be read.
pub fn issuing_ca_ids(data_dir: &DataDir) -> Result<Vec<String>, LocalError> {
    let ca_dir = data_dir.ca_dir();
    let mut ids = LocalAuthority::previous_ids(&ca_dir)?;
    let current = LocalAuthority::load(&ca_dir)?.id().to_owned();
    ids.retain(|id| id != &current);
    ids.push(current);
    Ok(ids)
}

/// Records the current CA in the registry (idempotent; done at start-up).
///
/// # Errors
/// When the CA cannot be loaded or the registry written.
pub async fn record_current_ca(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    now: UnixTime,
) -> Result<String, LocalError> {
    let current = LocalAuthority::load(&data_dir.ca_dir())?;
    let recorded = registry.cas().await?;
    let already = recorded
        .iter()
        .any(|ca| ca.ca_id == current.id() && ca.state == CaState::Current);
    if !already {
        registry
            .record_ca(
                current.id(),
                current.certificate_pem(),
                CaState::Current,
                now,
            )
            .await?;
    }
    Ok(current.id().to_owned())
}

/// Writes a fresh CRL for every issuing CA (and the root's, when its key is local),
/// each listing every revocation recorded before it was read and valid for
/// `lifetime_secs` from `now` (its nextUpdate). Returns the files written.
///
/// # Errors
/// When a CA cannot be loaded or signing or writing fails.
pub async fn regenerate_crls(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    now: UnixTime,
    lifetime_secs: i64,
) -> Result<Vec<PathBuf>, LocalError> {
    let ca_dir = data_dir.ca_dir();
    let mut written = Vec::new();
    for id in issuing_ca_ids(data_dir)? {
        let authority = LocalAuthority::load_id(&ca_dir, &id)?;
        let entries: Vec<RevokedEntry> = registry
            .revoked_for_issuer(&id)
            .await?
            .into_iter()
            .map(|r| RevokedEntry {
                serial_hex: r.serial,
                revoked_at: r.revoked_at,
                reason: r.reason,
            })
            .collect();
        let pem = authority.crl_pem(&entries, now, lifetime_secs)?;
        let path = crl_path(data_dir, &id);
        write_public(&path, pem.as_bytes())?;
        written.push(path);
    }
    if LocalAuthority::overview(&ca_dir)?.root_key_local {
        let mut revoked_intermediates = Vec::new();
        for ca in registry.cas().await? {
            if let (CaState::Revoked, Some(revoked_at)) = (ca.state, ca.revoked_at) {
                let serial_hex = LocalAuthority::load_id(&ca_dir, &ca.ca_id)?
                    .serial_hex()
                    .to_owned();
                revoked_intermediates.push(RevokedEntry {
                    serial_hex,
                    revoked_at,
                    reason: RevocationReason::CessationOfOperation,
                });
            }
        }
        let pem =
            LocalAuthority::root_crl_pem(&ca_dir, &revoked_intermediates, now, lifetime_secs)?;
        let path = root_crl_path(data_dir);
        write_public(&path, pem.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// What a CA rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The retired issuing CA.
    pub old_ca: String,
    /// The issuing CA now current.
    pub new_ca: String,
    /// Certificates revoked by the cascade, in all (including an interrupted earlier run).
    pub revoked: u64,
    /// True when this call finished an interrupted rotation instead of starting one.
    pub resumed: bool,
}

/// Rotates the issuing CA and cascades: a new intermediate signed by the local root
/// becomes current at once (the running service picks it up on its next issuance), the
/// old intermediate is revoked on the root's CRL, and every certificate it issued that is
/// not yet revoked is revoked (reason superseded: the device comes back through `/new`).
/// Then every CRL is regenerated, valid for `crl_lifetime_secs`.
///
/// Resumable: an interrupted rotation is finished by the next call instead of starting
/// another. `progress` is called after each committed batch with the running total.
///
/// # Errors
/// When the CA cannot rotate (e.g. an external root: use `ca rotate --csr-only`) or the
/// registry fails; what was committed stays committed, and the next call resumes.
pub async fn rotate_ca(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    now: UnixTime,
    crl_lifetime_secs: i64,
    mut progress: impl FnMut(u64),
) -> Result<RotationOutcome, LocalError> {
    let ca_dir = data_dir.ca_dir();
    let unfinished = registry.unfinished_rotations().await?.into_iter().next();
    let resumed = unfinished.is_some();
    let job = match unfinished {
        Some(job) => job,
        None => {
            record_current_ca(data_dir, registry, now).await?;
            let report = LocalAuthority::rotate(&ca_dir, now)?;
            switch_recorded_ca(registry, &report.old_id, &report.new_id, now).await?
        }
    };
    let finishing = Cascade {
        job,
        resumed,
        now,
        crl_lifetime_secs,
    };
    finish_cascade(data_dir, registry, finishing, &mut progress).await
}

/// After a new intermediate was installed by other means (`ca import-cert` after a
/// `--csr-only` rotation): records it and cascades from `old_id` like [`rotate_ca`].
///
/// # Errors
/// As [`rotate_ca`].
pub async fn complete_rotation(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    old_id: &str,
    now: UnixTime,
    crl_lifetime_secs: i64,
    mut progress: impl FnMut(u64),
) -> Result<RotationOutcome, LocalError> {
    let new_id = LocalAuthority::load(&data_dir.ca_dir())?.id().to_owned();
    let job = switch_recorded_ca(registry, old_id, &new_id, now).await?;
    let finishing = Cascade {
        job,
        resumed: false,
        now,
        crl_lifetime_secs,
    };
    finish_cascade(data_dir, registry, finishing, &mut progress).await
}

/// A rotation job to finish, and how.
struct Cascade {
    job: RotationJob,
    resumed: bool,
    now: UnixTime,
    crl_lifetime_secs: i64,
}

/// Revokes what the old CA issued, closes the job, and regenerates every CRL.
async fn finish_cascade(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    finishing: Cascade,
    progress: &mut impl FnMut(u64),
) -> Result<RotationOutcome, LocalError> {
    // The order holds invariant 4 against a `serve` in another process without one
    // transaction for all: once the state switch commits, the issuance record refuses
    // the old CA's certificates (it checks the `cas` state in the writer's transaction);
    // every one recorded before it is ACTIVE by then, and the cascade, which reads after
    // the switch and runs until none is left, revokes it.
    let Cascade {
        job,
        resumed,
        now,
        crl_lifetime_secs,
    } = finishing;
    record_ca_states(data_dir, registry, &job, now).await?;
    cascade(
        registry,
        job.id,
        &job.old_ca,
        job.revoked_count,
        now,
        progress,
    )
    .await?;
    let finished = registry.finish_rotation(job.id, now).await?;
    regenerate_crls(data_dir, registry, now, crl_lifetime_secs).await?;
    Ok(RotationOutcome {
        old_ca: finished.old_ca,
        new_ca: finished.new_ca,
        revoked: finished.revoked_count,
        resumed,
    })
}

/// Starts (or finds) the rotation job from `old_id` to `new_id`. The job is written
/// first: if the process stops after this, the next call resumes the cascade.
async fn switch_recorded_ca(
    registry: &SqliteRegistry,
    old_id: &str,
    new_id: &str,
    now: UnixTime,
) -> Result<RotationJob, LocalError> {
    Ok(registry.start_rotation(old_id, new_id, now).await?)
}

/// Records the new CA as current and the old one as revoked (idempotent, so a resumed
/// rotation repeats it safely).
async fn record_ca_states(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    job: &RotationJob,
    now: UnixTime,
) -> Result<(), LocalError> {
    let ca_dir = data_dir.ca_dir();
    let new = LocalAuthority::load_id(&ca_dir, &job.new_ca)?;
    let old = LocalAuthority::load_id(&ca_dir, &job.old_ca)?;
    registry
        .record_ca(&job.new_ca, new.certificate_pem(), CaState::Current, now)
        .await?;
    registry
        .record_ca(&job.old_ca, old.certificate_pem(), CaState::Revoked, now)
        .await?;
    Ok(())
}

async fn cascade(
    registry: &SqliteRegistry,
    job: i64,
    old_ca: &str,
    already: u64,
    now: UnixTime,
    progress: &mut impl FnMut(u64),
) -> Result<(), LocalError> {
    let mut total = already;
    loop {
        let batch = registry.active_issued_by(old_ca, CASCADE_BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        total += registry
            .revoke_batch(batch, RevocationReason::Superseded, now, Some(job))
            .await?;
        progress(total);
    }
}

/// The files [`export_mosquitto`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoExport {
    /// `mosquitto.conf`.
    pub config: PathBuf,
    /// The port the listener uses.
    pub port: u16,
}

/// Writes what a mosquitto TLS listener on 127.0.0.1 needs into `out`: `mosquitto.conf`,
/// `ca.pem` (the root and every issuing CA), `crl.pem` (a current CRL for every CA in
/// `ca.pem`: mosquitto refuses every client otherwise), `server.pem` (a server certificate
/// for 127.0.0.1 and localhost, then its chain), `server.key`, and `acl`
/// (`pattern readwrite dt/%u/#`: a device may use its own topics only). Files are readable
/// by the broker's own user.
///
/// # Errors
/// When the CA cannot be loaded or files cannot be written.
pub async fn export_mosquitto(
    data_dir: &DataDir,
    registry: &SqliteRegistry,
    out: &Path,
    port: u16,
    now: UnixTime,
    crl_lifetime_secs: i64,
) -> Result<MosquittoExport, LocalError> {
    fs::create_dir_all(out)?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o755))?;
    // Absolute paths in the configuration, so mosquitto can be started from anywhere.
    let out = &fs::canonicalize(out)?;
    regenerate_crls(data_dir, registry, now, crl_lifetime_secs).await?;
    let current = LocalAuthority::load(&data_dir.ca_dir())?;
    let bundles = BrokerBundles::read(data_dir)?;
    let server = current.server_certificate(&["127.0.0.1", "localhost"], now)?;
    let server_chain = format!("{}{}", server.certificate_pem, current.chain_pem());

    bundles.write_changed(out)?;
    write_public(&out.join("server.pem"), server_chain.as_bytes())?;
    write_public(&out.join("acl"), b"pattern readwrite dt/%u/#\n")?;
    let key_path = out.join("server.key");
    write_secret_replacing(&key_path, server.key_pem.as_bytes())?;
    let user = file_owner_name(&key_path)?;

    let config = out.join("mosquitto.conf");
    let text = format!(
        "# Written by `provisioner ca export-mosquitto`: a stand-in for AWS IoT Core's\n\
         # certificate authentication. Run: mosquitto -c {config}\n\
         # Started as root, mosquitto switches to `user`: the owner of these files.\n\
         user {user}\n\
         listener {port} 127.0.0.1\n\
         cafile {ca}\n\
         crlfile {crl}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         acl_file {acl}\n\
         persistence false\n",
        config = config.display(),
        ca = out.join("ca.pem").display(),
        crl = out.join("crl.pem").display(),
        cert = out.join("server.pem").display(),
        key = key_path.display(),
        acl = out.join("acl").display(),
    );
    write_public(&config, text.as_bytes())?;
    Ok(MosquittoExport { config, port })
}

/// What a broker trusts and checks, as files of the export: `ca.pem` (the root, then
/// every issuing CA) and `crl.pem` (the CRL of each: mosquitto refuses every client when
/// a CA in `cafile` has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerBundles {
    /// `ca.pem`.
    pub ca_pem: String,
    /// `crl.pem`.
    pub crl_pem: String,
}

impl BrokerBundles {
    /// The bundles from the data directory's CA and CRL files as they are now (a CRL
    /// not written yet is left out).
    ///
    /// # Errors
    /// When the CA cannot be loaded or a file read.
    pub fn read(data_dir: &DataDir) -> Result<Self, LocalError> {
        let ca_dir = data_dir.ca_dir();
        let mut ca_pem = fs::read_to_string(ca_dir.join("root.pem")).unwrap_or_default();
        let mut crl_pem = String::new();
        for id in issuing_ca_ids(data_dir)? {
            ca_pem.push_str(LocalAuthority::load_id(&ca_dir, &id)?.certificate_pem());
            crl_pem.push_str(&read_if_present(&crl_path(data_dir, &id))?);
        }
        if LocalAuthority::overview(&ca_dir)?.root_key_local {
            crl_pem.push_str(&read_if_present(&root_crl_path(data_dir))?);
        }
        Ok(Self { ca_pem, crl_pem })
    }

    /// Writes `ca.pem` and `crl.pem` into `dir` where they differ from what is there
    /// (each atomically: a broker starting meanwhile reads the old file or the new one).
    /// Returns whether anything changed.
    ///
    /// # Errors
    /// When a file cannot be read or written.
    pub fn write_changed(&self, dir: &Path) -> Result<bool, LocalError> {
        let mut changed = false;
        for (name, text) in [("ca.pem", &self.ca_pem), ("crl.pem", &self.crl_pem)] {
            let path = dir.join(name);
            if read_if_present(&path)? != *text {
                write_public(&path, text.as_bytes())?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

fn read_if_present(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        other => other,
    }
}

/// The name of the user owning `path` (whoever ran the export), from /etc/passwd.
fn file_owner_name(path: &Path) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = fs::metadata(path)?.uid();
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 2 && fields[2].parse() == Ok(uid))
        .map(|fields| fields[0].to_owned())
        .ok_or_else(|| io::Error::other(format!("no user with uid {uid} in /etc/passwd")))
}
