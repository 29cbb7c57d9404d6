//! The local adapters: everything `provisioner serve` needs on one machine, kept in a
//! data directory.

pub mod authority;
pub mod datadir;
pub mod registry;
