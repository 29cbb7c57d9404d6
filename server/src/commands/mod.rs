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
