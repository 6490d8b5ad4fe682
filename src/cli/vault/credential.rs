//! `vault credential` (alias `creds`): list, get, set, delete.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::Target;
use crate::cli::client::segment;
use crate::cli::{output, prompt};
use crate::crypto::SecretString;
use crate::services::validate_credential_key;

#[derive(Subcommand)]
pub enum CredentialCommand {
    /// List credential keys in a vault
    List {
        /// Show decrypted credential values (requires member+ role)
        #[arg(long)]
        reveal: bool,
    },
    /// Print the decrypted value of a single credential to stdout. Pipe-friendly. Requires
    /// member+ role
    Get {
        /// Credential key
        key: String,
    },
    /// Store one or more credentials using KEY=VALUE format (all or none). A bare KEY reads its
    /// value from a hidden prompt, or from a line of stdin, keeping it out of shell history
    Set {
        /// KEY=VALUE pairs (or KEY alone)
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Delete one or more credentials
    Delete {
        /// Credential keys
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

#[derive(Deserialize)]
struct Listing {
    keys: Vec<String>,
    #[serde(default)]
    credentials: Vec<Revealed>,
}

#[derive(Deserialize)]
struct Revealed {
    key: String,
    value: SecretString,
}

/// Splits `KEY=VALUE`; a bare `KEY` takes its value from a hidden prompt or a stdin line,
/// which keeps the secret out of argv and shell history.
pub(super) fn parse_pairs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, SecretString>> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let (key, value) = match pair.split_once('=') {
            Some(("", _)) => bail!("\"{pair}\" has no key; write KEY=VALUE"),
            Some((key, value)) => (key.to_owned(), SecretString::from(value)),
            None if prompt::stdin_is_tty() => (
                pair.clone(),
                prompt::hidden(&format!("Value for {pair}: "))?,
            ),
            None => (
                pair.clone(),
                prompt::stdin_secret_line(&format!("value of {pair}"))?,
            ),
        };
        validate_credential_key(&key).map_err(anyhow::Error::msg)?;
        if out.insert(key.clone(), value).is_some() {
            bail!("{key} is given twice");
        }
    }
    Ok(out)
}

pub async fn run(target: Target, command: CredentialCommand) -> anyhow::Result<()> {
    let Target { client, vault } = &target;
    match command {
        CredentialCommand::List { reveal } => {
            let path = target.path(if reveal {
                "/credentials?reveal=true"
            } else {
                "/credentials"
            });
            let listing: Listing = client.get(&path).await?;
            if listing.keys.is_empty() {
                println!(
                    "No credentials in vault \"{vault}\". Add one with `agent-vault vault credential set KEY=VALUE`."
                );
            } else if reveal {
                let rows: Vec<Vec<String>> = listing
                    .credentials
                    .iter()
                    .map(|c| vec![c.key.clone(), c.value.expose().to_owned()])
                    .collect();
                output::table(&["KEY", "VALUE"], &rows);
            } else {
                let rows: Vec<Vec<String>> = listing.keys.iter().map(|k| vec![k.clone()]).collect();
                output::table(&["KEY"], &rows);
            }
        }
        CredentialCommand::Get { key } => {
            let revealed: Revealed = client
                .get(&target.path(&format!("/credentials/{}", segment(&key))))
                .await?;
            output::raw_value(revealed.value.expose());
        }
        CredentialCommand::Set { pairs } => {
            let values = parse_pairs(&pairs)?;
            let body = json!({
                "credentials": values.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect::<BTreeMap<_, _>>()
            });
            let _: serde_json::Value = client.post(&target.path("/credentials"), &body).await?;
            for key in values.keys() {
                output::success(format!("Set {key} in vault \"{vault}\"."));
            }
        }
        CredentialCommand::Delete { keys } => {
            let _: serde_json::Value = client
                .send(
                    Method::DELETE,
                    &target.path("/credentials"),
                    Some(&json!({ "keys": keys })),
                )
                .await?;
            for key in &keys {
                output::success(format!("Deleted {key} from vault \"{vault}\"."));
            }
        }
    }
    Ok(())
}
