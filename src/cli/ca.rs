//! `agent-vault ca fetch`.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Context, not_yet};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Fetch the root CA certificate used by Agent Vault's transparent MITM proxy, in PEM form.
    /// The endpoint is public; it fails only if the server runs with --mitm-port 0
    Fetch {
        /// Write PEM to file instead of stdout
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub async fn run(command: CaCommand, _context: &Context) -> anyhow::Result<()> {
    match command {
        CaCommand::Fetch { .. } => Err(not_yet("ca fetch")),
    }
}
