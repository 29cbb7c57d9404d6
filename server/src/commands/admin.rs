//! `provisioner admin`: the admin API's credentials.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::Global;

/// `provisioner admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print the admin API's bearer token (creating it if there is none).
    ///
    /// The admin API (`/admin/api/...` on `provisioner serve`) takes it as
    /// `Authorization: Bearer TOKEN`. With --rotate, a new token replaces the old one,
    /// which stops working at once, also for a running `provisioner serve`.
    Token(TokenArgs),
}

/// Arguments of `provisioner admin token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Replace the token with a new one and print that.
    #[arg(long)]
    rotate: bool,
}

impl AdminCommand {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// When the data directory or the token file cannot be read or written.
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Self::Token(args) => token(global, args),
        }
    }
}

fn token(global: &Global, args: TokenArgs) -> anyhow::Result<ExitCode> {
    let data_dir = &global.data_dir;
    let path = data_dir.admin_token_path();
    data_dir.ensure_exists().with_context(|| {
        format!(
            "cannot create the data directory {}",
            data_dir.root().display()
        )
    })?;
    let (token, note) = if args.rotate {
        let token = data_dir
            .rotate_admin_token()
            .with_context(|| format!("cannot write the admin token {}", path.display()))?;
        (
            token,
            "a new admin token replaces the old one, which no longer works",
        )
    } else {
        let secret = data_dir
            .admin_token()
            .with_context(|| format!("cannot read the admin token {}", path.display()))?;
        let note = if secret.created {
            "created the admin token"
        } else {
            "the admin token"
        };
        (secret.bytes, note)
    };
    // The token goes to stdout only (for `$(provisioner admin token)`); the reminder
    // that it is a secret to stderr.
    eprintln!(
        "{note} (stored in {}). It is a secret: it grants full control of the admin API; keep it out of logs, tickets and shell history.",
        path.display()
    );
    println!("{}", String::from_utf8_lossy(&token).trim());
    Ok(ExitCode::SUCCESS)
}
