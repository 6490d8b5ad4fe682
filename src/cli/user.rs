//! `agent-vault user list | invite …`.

use clap::{Args, Subcommand};

use super::{Context, not_yet};

#[derive(Subcommand)]
pub enum UserCommand {
    /// List all users in the instance. Owners see vault memberships; members see email, role,
    /// and creation date
    List,
    /// Invite a user to the instance (prints the invite link). `user invite list` and
    /// `user invite revoke` manage pending invites
    Invite(InviteArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct InviteArgs {
    /// Email address of the person to invite
    #[arg(required = true)]
    email: Option<String>,
    /// Instance role for the invited user: owner or member
    #[arg(long, default_value = "member")]
    role: String,
    /// Vault pre-assignment in name:role format (repeatable). Role defaults to member
    #[arg(long, value_name = "NAME:ROLE")]
    vault: Vec<String>,

    #[command(subcommand)]
    command: Option<InviteCommand>,
}

#[derive(Subcommand)]
pub enum InviteCommand {
    /// List user invites. Owners see all invites; others see invites they created or with
    /// pre-assignments to vaults they admin
    List {
        /// Filter by status (e.g. pending)
        #[arg(long)]
        status: Option<String>,
    },
    /// Revoke a pending user invite by the last 8 or more characters of the token
    Revoke {
        /// The last 8 or more characters of the invite token
        token_suffix: String,
    },
}

pub async fn run(command: UserCommand, _context: &Context) -> anyhow::Result<()> {
    match command {
        UserCommand::List => Err(not_yet("user list")),
        UserCommand::Invite(args) => match args.command {
            Some(InviteCommand::List { .. }) => Err(not_yet("user invite list")),
            Some(InviteCommand::Revoke { .. }) => Err(not_yet("user invite revoke")),
            None => Err(not_yet("user invite")),
        },
    }
}
