//! One module per subcommand group.

pub mod admin;
pub mod aws;
pub mod ca;
pub mod certs;
pub mod crl_lifetime;
pub mod crl_upkeep;
pub mod csr;
pub mod device;
pub mod devices;
pub mod import;
pub mod serve;

/// The local registry of `data_dir` for a command, the directory created first when
/// absent (the one way the CLI commands open it; `ca` opens an existing one).
pub(crate) fn open_local_registry(
    data_dir: &provisioner_store_local::datadir::DataDir,
) -> anyhow::Result<provisioner_store_local::registry::SqliteRegistry> {
    use anyhow::Context;
    data_dir.ensure_exists().with_context(|| {
        format!(
            "cannot create the data directory {}",
            data_dir.root().display()
        )
    })?;
    Ok(provisioner_store_local::registry::SqliteRegistry::open(
        data_dir.registry_path(),
    )?)
}

/// The adapter sets the service and the import can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// SQLite registry and on-disk CA in the data directory.
    Local,
    /// DynamoDB, ACM Private CA or IoT Core, and IoT Core in every configured region, set
    /// up by the deployment's `PROVISIONER_*` and `AWS_*` variables (a build with
    /// `--features aws`).
    Aws,
}

/// What a command says when asked for the AWS backend in a build without it.
#[cfg(not(feature = "aws"))]
pub const NO_AWS_FEATURE: &str = "this provisioner was built without the AWS adapters: \
    rebuild with `cargo build --release -p provisioner --features aws`";
