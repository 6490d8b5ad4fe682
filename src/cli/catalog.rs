//! `agent-vault catalog`.

use clap::Args;

use super::{Context, not_yet};

#[derive(Args)]
pub struct CatalogArgs {
    /// Output response as JSON
    #[arg(long)]
    json: bool,
}

pub async fn run(_args: CatalogArgs, _context: &Context) -> anyhow::Result<()> {
    Err(not_yet("catalog"))
}
