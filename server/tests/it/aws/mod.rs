//! `provisioner` with `--backend aws` and `provisioner aws ...` against moto.

mod cli;
mod compat;
mod iot_core;
mod race;
mod support;
