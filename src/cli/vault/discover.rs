//! `vault discover`: the services and credential key names an agent can use.

use super::Target;
use crate::cli::client::segment;
use crate::cli::vault::context::VAULT_ENV;
use crate::cli::{Client, Context, output};

/// The client and vault of the caller: an agent's environment token when set (its vault from
/// `--vault` or `AGENT_VAULT_VAULT`, or the token's own), else the saved login and the
/// resolved vault.
pub fn agent_or_login(
    context: &Context,
    flag: Option<&str>,
) -> anyhow::Result<(Client, Option<String>)> {
    match context.agent_client()? {
        Some(client) => {
            let vault = flag
                .map(str::to_owned)
                .or_else(|| std::env::var(VAULT_ENV).ok().filter(|v| !v.is_empty()));
            Ok((client, vault))
        }
        None => {
            let target = Target::resolve(flag, context)?;
            Ok((target.client, Some(target.vault)))
        }
    }
}

pub async fn discover(context: &Context, flag: Option<&str>, json: bool) -> anyhow::Result<()> {
    let (client, vault) = agent_or_login(context, flag)?;
    let path = match &vault {
        Some(vault) => format!("/v1/discover?vault={}", segment(vault)),
        None => "/v1/discover".to_owned(),
    };
    let reply: serde_json::Value = client.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    println!(
        "Vault: {} (role {})",
        text(&reply["vault"]),
        text(&reply["role"])
    );
    let services = reply["services"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if services.is_empty() {
        println!("\nNo services yet. Ask for one with `agent-vault vault proposal create`.");
    } else {
        println!();
        let rows: Vec<Vec<String>> = services
            .iter()
            .map(|s| {
                let keys: Vec<String> = s["credential_keys"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default();
                vec![
                    text(&s["matcher"]),
                    text(&s["auth_type"]),
                    keys.join(", "),
                    if s["enabled"] == true {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    text(&s["description"]),
                ]
            })
            .collect();
        output::table(
            &["SERVICE", "AUTH", "CREDENTIALS", "ENABLED", "DESCRIPTION"],
            &rows,
        );
    }
    let keys: Vec<String> = reply["credentials"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    println!(
        "\nCredentials present: {}",
        if keys.is_empty() {
            "(none)".to_owned()
        } else {
            keys.join(", ")
        }
    );
    if let Some(proxy) = reply["proxy"].as_object() {
        println!(
            "Proxy: HTTPS_PROXY={} (trust the CA at {})",
            proxy["https_proxy"].as_str().unwrap_or_default(),
            proxy["ca_url"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}
