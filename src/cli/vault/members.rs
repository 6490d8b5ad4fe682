//! `vault user …` and `vault agent …`: who belongs to a vault, with which role.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum VaultUserCommand {
    /// Add an existing instance user to a vault (direct grant, no invite needed)
    Add {
        /// The user's email
        email: String,
        /// Vault role: admin or member
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// List members of a vault, including pending invite pre-assignments
    List,
    /// Remove a user from a vault
    Remove {
        /// The user's email
        email: String,
    },
    /// Change a user's vault-level role
    SetRole {
        /// The user's email
        email: String,
        /// Vault role: admin or member (required)
        #[arg(long, required = true)]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum VaultAgentCommand {
    /// List agents in a specific vault
    List,
    /// Add an existing instance agent to a vault
    Add {
        /// Agent name
        name: String,
        /// Vault role: proxy, member, or admin
        #[arg(long, default_value = "proxy")]
        role: String,
    },
    /// Remove an agent from a vault
    Remove {
        /// Agent name
        name: String,
    },
    /// Change an agent's vault role
    SetRole {
        /// Agent name
        name: String,
        /// Vault role: proxy, member, or admin (required)
        #[arg(long, required = true)]
        role: String,
    },
}

impl VaultUserCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "vault user add",
            Self::List => "vault user list",
            Self::Remove { .. } => "vault user remove",
            Self::SetRole { .. } => "vault user set-role",
        }
    }
}

impl VaultAgentCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::List => "vault agent list",
            Self::Add { .. } => "vault agent add",
            Self::Remove { .. } => "vault agent remove",
            Self::SetRole { .. } => "vault agent set-role",
        }
    }
}
