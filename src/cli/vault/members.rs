//! `vault user …` and `vault agent …`: who belongs to a vault, with which role.

use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;

use super::Target;
use crate::cli::client::segment;
use crate::cli::output;

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

#[derive(Deserialize)]
struct Members {
    users: Vec<Member>,
}

#[derive(Deserialize)]
struct Member {
    email: String,
    role: String,
    status: String,
}

pub async fn run_users(target: Target, command: VaultUserCommand) -> anyhow::Result<()> {
    let Target { client, vault } = &target;
    match command {
        VaultUserCommand::List => {
            let members: Members = client.get(&target.path("/users")).await?;
            let rows: Vec<Vec<String>> = members
                .users
                .iter()
                .map(|m| vec![m.email.clone(), m.role.clone(), m.status.clone()])
                .collect();
            output::table(&["EMAIL", "ROLE", "STATUS"], &rows);
        }
        VaultUserCommand::Add { email, role } => {
            let _: serde_json::Value = client
                .post(
                    &target.path("/users"),
                    &json!({ "email": email, "role": role }),
                )
                .await?;
            output::success(format!("Added {email} to vault \"{vault}\" as {role}."));
        }
        VaultUserCommand::Remove { email } => {
            let _: serde_json::Value = client
                .delete(&target.path(&format!("/users/{}", segment(&email))))
                .await?;
            output::success(format!("Removed {email} from vault \"{vault}\"."));
        }
        VaultUserCommand::SetRole { email, role } => {
            let _: serde_json::Value = client
                .post(
                    &target.path(&format!("/users/{}/role", segment(&email))),
                    &json!({ "role": role }),
                )
                .await?;
            output::success(format!("{email} is now {role} of vault \"{vault}\"."));
        }
    }
    Ok(())
}
