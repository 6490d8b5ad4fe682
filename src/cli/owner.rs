//! `agent-vault owner …`: owner-only administration.

use clap::{Args, Subcommand};
use serde::Deserialize;

use super::account::{VaultGrant, grants_line};
use super::client::segment;
use super::{Context, not_yet};

#[derive(Subcommand)]
pub enum OwnerCommand {
    /// Instance users
    #[command(subcommand)]
    User(OwnerUserCommand),
    /// All vaults of the instance
    #[command(subcommand)]
    Vault(OwnerVaultCommand),
    /// Instance settings
    #[command(subcommand)]
    Config(OwnerConfigCommand),
    /// Email delivery
    #[command(subcommand)]
    Email(OwnerEmailCommand),
    /// Permanently delete all data and reset the instance to a fresh state. Requires a running
    /// server for role verification. Auto-stops the server before wiping data. Owner only
    Reset {
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum OwnerUserCommand {
    /// List all users on the instance. Owner only
    List,
    /// View user info and vault memberships (and, for a pending account when no email is
    /// sent, its verification code). Without an email, shows your own info
    Info {
        /// The user's email
        email: Option<String>,
    },
    /// Remove a user from the instance. Owner only
    Remove {
        /// The user's email
        email: String,
    },
    /// Change a user's instance-level role. The last owner cannot be demoted. Owner only
    SetRole(SetRoleArgs),
}

#[derive(Args)]
pub struct SetRoleArgs {
    /// The user's email
    email: String,
    /// Instance role: owner or member (required)
    #[arg(long, required = true)]
    role: String,
}

#[derive(Subcommand)]
pub enum OwnerVaultCommand {
    /// List all vaults on the instance. Owner only
    List,
    /// Join a vault as admin. Useful for recovering orphaned vaults. Owner only
    Join {
        /// Vault name
        name: String,
    },
    /// Delete a vault. Owner only
    Delete {
        /// Vault name
        name: String,
    },
}

#[derive(Subcommand)]
pub enum OwnerConfigCommand {
    /// Show current instance settings including invite_only and allowed_email_domains
    Get,
    /// Update instance settings
    Set {
        /// Enable or disable invite-only registration (true or false)
        #[arg(long, value_name = "BOOL")]
        invite_only: Option<bool>,
        /// Comma-separated list of allowed email domains (empty to clear)
        #[arg(long, value_name = "DOMAINS")]
        allowed_domains: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum OwnerEmailCommand {
    /// Send a test email to verify SMTP configuration. Owner only
    Test {
        /// Recipient email address (default: your own)
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Deserialize)]
struct UserInfo {
    email: String,
    role: String,
    status: String,
    vaults: Vec<VaultGrant>,
    created_at: String,
    verification_code: Option<String>,
    verification_code_expires_at: Option<String>,
}

pub async fn run(command: OwnerCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        OwnerCommand::User(OwnerUserCommand::Info { email }) => {
            let client = context.logged_in_client()?;
            let who = email.as_deref().unwrap_or("me");
            let info: UserInfo = client
                .get(&format!("/v1/admin/users/{}", segment(who)))
                .await?;
            println!("Email:    {}", info.email);
            println!("Role:     {}", info.role);
            println!("Status:   {}", info.status);
            println!("Vaults:   {}", grants_line(&info.vaults));
            println!("Created:  {}", info.created_at);
            if let Some(code) = info.verification_code {
                let expires = info.verification_code_expires_at.unwrap_or_default();
                println!("Verification code: {code} (expires {expires})");
                println!(
                    "  Give it to {} to run `agent-vault auth verify --email {}`.",
                    info.email, info.email
                );
            }
            Ok(())
        }
        OwnerCommand::User(OwnerUserCommand::List) => Err(not_yet("owner user list")),
        OwnerCommand::User(OwnerUserCommand::Remove { .. }) => Err(not_yet("owner user remove")),
        OwnerCommand::User(OwnerUserCommand::SetRole(_)) => Err(not_yet("owner user set-role")),
        OwnerCommand::Vault(OwnerVaultCommand::List) => Err(not_yet("owner vault list")),
        OwnerCommand::Vault(OwnerVaultCommand::Join { .. }) => Err(not_yet("owner vault join")),
        OwnerCommand::Vault(OwnerVaultCommand::Delete { .. }) => Err(not_yet("owner vault delete")),
        OwnerCommand::Config(OwnerConfigCommand::Get) => Err(not_yet("owner config get")),
        OwnerCommand::Config(OwnerConfigCommand::Set { .. }) => Err(not_yet("owner config set")),
        OwnerCommand::Email(OwnerEmailCommand::Test { .. }) => Err(not_yet("owner email test")),
        OwnerCommand::Reset { .. } => Err(not_yet("owner reset")),
    }
}
