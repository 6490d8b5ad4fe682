//! `agent-vault agent …`: instance-level agents and agent invites.

use clap::{Args, Subcommand};

use super::{Context, not_yet};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create an agent invite and print the onboarding prompt. The agent redeems the invite
    /// via HTTP and receives an instance-level agent token. `agent invite list` and
    /// `agent invite revoke` manage pending invites
    Invite(AgentInviteArgs),
    /// List all agents across the instance
    List,
    /// Show agent details including vaults, status, and active session count
    Info {
        /// Agent name
        name: String,
    },
    /// Delete an agent and all its sessions across all vaults
    Delete {
        /// Agent name
        name: String,
    },
    /// Create a rotation invite to re-issue an agent's session. The old sessions are
    /// invalidated when the agent redeems the new invite
    Rotate {
        /// Agent name
        name: String,
    },
    /// Rename an agent. Keeps the same vault access
    Rename {
        /// Agent name
        name: String,
        /// New agent name
        new_name: String,
    },
    /// Change an agent's instance-level role. The last owner (across both users and agents)
    /// cannot be demoted
    SetRole {
        /// Agent name
        name: String,
        /// Instance role: owner or member (required)
        #[arg(long, required = true)]
        role: String,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentInviteArgs {
    /// Name of the agent to invite
    #[arg(required = true)]
    name: Option<String>,
    /// Instance-level role: owner or member
    #[arg(long, default_value = "member")]
    role: String,
    /// Vault pre-assignment in name:role format (repeatable). Role defaults to proxy
    #[arg(long, value_name = "NAME:ROLE")]
    vault: Vec<String>,
    /// Invite link expiration time (Go duration format, e.g. 15m, 1h30m)
    #[arg(long, default_value = "15m")]
    invite_ttl: String,
    /// Output only the raw invite token (for programmatic use)
    #[arg(long)]
    token_only: bool,

    #[command(subcommand)]
    command: Option<AgentInviteCommand>,
}

#[derive(Subcommand)]
pub enum AgentInviteCommand {
    /// List agent invites
    List {
        /// Filter by status (e.g. pending)
        #[arg(long)]
        status: Option<String>,
    },
    /// Revoke a pending invite by the last 8 or more characters of the token
    Revoke {
        /// The last 8 or more characters of the invite token
        token_suffix: String,
    },
}

pub async fn run(command: AgentCommand, _context: &Context) -> anyhow::Result<()> {
    let name = match command {
        AgentCommand::Invite(args) => match args.command {
            Some(AgentInviteCommand::List { .. }) => "agent invite list",
            Some(AgentInviteCommand::Revoke { .. }) => "agent invite revoke",
            None => "agent invite",
        },
        AgentCommand::List => "agent list",
        AgentCommand::Info { .. } => "agent info",
        AgentCommand::Delete { .. } => "agent delete",
        AgentCommand::Rotate { .. } => "agent rotate",
        AgentCommand::Rename { .. } => "agent rename",
        AgentCommand::SetRole { .. } => "agent set-role",
    };
    Err(not_yet(name))
}
