//! One module per subcommand group.

pub mod admin;
pub mod ca;
pub mod certs;
pub mod csr;
pub mod device;
pub mod import;
pub mod serve;
