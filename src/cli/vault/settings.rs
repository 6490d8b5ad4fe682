//! `vault settings get | set` and `vault logs`.

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::Target;
use crate::cli::output;

#[derive(Clone, Copy, ValueEnum)]
pub enum Policy {
    /// Forward requests to unmatched hosts unchanged, without credentials (default)
    Forward,
    /// Refuse them with 403 (agents can file a proposal for a new service)
    Deny,
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Show the vault's settings
    Get,
    /// Change the vault's settings (vault admins)
    Set {
        /// What the broker does with a host no service matches
        #[arg(long, value_enum)]
        unmatched_host_policy: Policy,
    },
}

pub async fn run(target: Target, command: SettingsCommand) -> anyhow::Result<()> {
    let reply: serde_json::Value = match command {
        SettingsCommand::Get => target.client.get(&target.path("/settings")).await?,
        SettingsCommand::Set {
            unmatched_host_policy,
        } => {
            let value = match unmatched_host_policy {
                Policy::Forward => "forward",
                Policy::Deny => "deny",
            };
            let reply = target
                .client
                .send(
                    reqwest::Method::PUT,
                    &target.path("/settings"),
                    Some(&json!({ "unmatched_host_policy": value })),
                )
                .await?;
            output::success(format!("Settings of vault \"{}\" updated.", target.vault));
            reply
        }
    };
    println!(
        "unmatched_host_policy: {}",
        reply["unmatched_host_policy"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub async fn logs(target: Target, limit: u32, json: bool) -> anyhow::Result<()> {
    let reply: serde_json::Value = target
        .client
        .get(&target.path(&format!("/logs?limit={limit}")))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reply["requests"])?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply["requests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            let keys: Vec<&str> = r["credential_keys"]
                .as_array()
                .map(|a| a.iter().filter_map(|k| k.as_str()).collect())
                .unwrap_or_default();
            let when = chrono::DateTime::from_timestamp(r["created_at"].as_i64().unwrap_or(0), 0)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            vec![
                when,
                text("method"),
                text("host"),
                text("path"),
                r["status"].to_string(),
                text("service"),
                keys.join(","),
                text("error_code"),
                format!("{}ms", r["duration_ms"]),
            ]
        })
        .collect();
    output::table(
        &[
            "TIME",
            "METHOD",
            "HOST",
            "PATH",
            "STATUS",
            "SERVICE",
            "CREDENTIALS",
            "ERROR",
            "TOOK",
        ],
        &rows,
    );
    Ok(())
}
