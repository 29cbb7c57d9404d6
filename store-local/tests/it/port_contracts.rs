//! The port contracts of `provisioner_testkit` (`authority_contract`, `things_contract`,
//! `audit_contract`) on the in-memory fakes and on the local adapters: the on-disk CA,
//! and SQLite as thing registry and audit log.

mod audit;
mod authority;
mod things;
