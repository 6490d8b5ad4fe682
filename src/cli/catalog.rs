//! `agent-vault catalog`: the built-in service templates, from the server (no login needed).

use clap::Args;
use serde::Deserialize;

use super::{Context, output};

#[derive(Args)]
pub struct CatalogArgs {
    /// Output response as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Catalog {
    services: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    name: String,
    host: String,
    auth_type: String,
    suggested_credential_keys: Vec<String>,
}

pub async fn run(args: CatalogArgs, context: &Context) -> anyhow::Result<()> {
    let client = context.anonymous_client()?;
    let body: serde_json::Value = client.get("/v1/service-catalog").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let catalog: Catalog = serde_json::from_value(body)?;
    let rows: Vec<Vec<String>> = catalog
        .services
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.name.clone(),
                e.host.clone(),
                e.auth_type.clone(),
                e.suggested_credential_keys.join(", "),
            ]
        })
        .collect();
    output::table(&["ID", "NAME", "HOST", "AUTH", "CREDENTIAL KEYS"], &rows);
    println!("Add one with `agent-vault vault service add --host <HOST> --auth-type <AUTH> …`.");
    Ok(())
}
