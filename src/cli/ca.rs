//! `agent-vault ca fetch`: the MITM root CA, from the server's public endpoint.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::{Context, output};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Fetch the root CA certificate used by Agent Vault's transparent MITM proxy, in PEM form.
    /// Install it into your client trust store so HTTPS through the proxy validates. The
    /// endpoint is public; it fails only if the server runs with --mitm-port 0
    Fetch {
        /// Write PEM to file instead of stdout
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub async fn run(command: CaCommand, context: &Context) -> anyhow::Result<()> {
    let CaCommand::Fetch { output: file } = command;
    let client = context.anonymous_client()?;
    let (_, pem) = client.get_text("/v1/mitm/ca.pem").await?;
    match file {
        None => print!("{pem}"),
        Some(path) => {
            std::fs::write(&path, &pem)
                .with_context(|| format!("cannot write {}", path.display()))?;
            output::success(format!(
                "Wrote the agent-vault CA certificate to {}.",
                path.display()
            ));
        }
    }
    Ok(())
}
