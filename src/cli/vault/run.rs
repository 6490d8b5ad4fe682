//! `vault run` and `vault token`: sessions for agents.

use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::json;

use super::Target;
use crate::cli::output;

use crate::store::VaultRole;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SessionRole {
    Proxy,
    Member,
    Admin,
}

impl From<SessionRole> for VaultRole {
    fn from(role: SessionRole) -> Self {
        match role {
            SessionRole::Proxy => Self::Proxy,
            SessionRole::Member => Self::Member,
            SessionRole::Admin => Self::Admin,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sandbox {
    /// Run the child directly on this machine (cooperative)
    #[value(alias = "host")]
    Process,
    /// Run the child in a Docker container whose only network path is the broker
    Container,
}

#[derive(Args)]
pub struct RunArgs {
    /// Vault role for the session: proxy, member, or admin
    #[arg(long, value_enum, default_value = "proxy")]
    pub role: SessionRole,
    /// Session TTL in seconds (300–604800). Default: server default (24h)
    #[arg(long, default_value_t = 0)]
    pub ttl: u64,
    /// Skip HTTPS_PROXY/CA env injection; rely solely on the explicit /proxy/{host}/{path} endpoint
    #[arg(long)]
    pub no_mitm: bool,
    /// Sandbox mode for the child: process (default, cooperative) or container (Docker sandbox)
    #[arg(
        long,
        alias = "isolation",
        env = "AGENT_VAULT_SANDBOX",
        value_enum,
        default_value = "process"
    )]
    pub sandbox: Sandbox,
    /// Override the bundled container image (--sandbox=container only)
    #[arg(long)]
    pub image: Option<String>,
    /// Extra bind mount src:dst[:ro]; repeatable (--sandbox=container only). Host paths are
    /// resolved through symlinks; reserved paths are rejected
    #[arg(long, value_name = "SRC:DST[:ro]")]
    pub mount: Vec<String>,
    /// Keep the agent container after it exits (--sandbox=container only; for debugging)
    #[arg(long)]
    pub keep: bool,
    /// Skip the egress firewall (--sandbox=container only; debug, prints a warning)
    #[arg(long)]
    pub no_firewall: bool,
    /// Share /home/claude/.claude across invocations (--sandbox=container only)
    #[arg(long)]
    pub home_volume_shared: bool,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct TokenArgs {
    /// Vault role for the session: proxy, member, or admin
    #[arg(long, value_enum, default_value = "proxy")]
    pub role: SessionRole,
    /// Session TTL in seconds (300–604800). Default: server default (24h)
    #[arg(long, default_value_t = 0)]
    pub ttl: u64,
}

#[derive(Deserialize)]
struct Minted {
    token: String,
}

/// `vault token`: prints only the token, so `$(agent-vault vault token)` captures it.
pub async fn token(target: Target, args: TokenArgs) -> anyhow::Result<()> {
    let role = VaultRole::from(args.role);
    let minted: Minted = target
        .client
        .post(
            "/v1/sessions",
            &json!({ "vault": target.vault, "role": role, "ttl_seconds": args.ttl }),
        )
        .await?;
    output::raw_value(&minted.token);
    Ok(())
}
