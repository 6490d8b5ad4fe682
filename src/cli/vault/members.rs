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
            let added: serde_json::Value = client
                .post(
                    &target.path("/users"),
                    &json!({ "email": email, "role": role }),
                )
                .await?;
            output::success(format!("Added {email} to vault \"{vault}\" as {role}."));
            if let Some(caution) = added["caution"].as_str() {
                output::warn(caution);
            }
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

pub async fn run_agents(target: Target, command: VaultAgentCommand) -> anyhow::Result<()> {
    let Target { client, vault } = &target;
    match command {
        VaultAgentCommand::List => {
            let reply: serde_json::Value = client.get(&target.path("/agents")).await?;
            let rows: Vec<Vec<String>> = reply["agents"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    let text = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                    vec![text("name"), text("role")]
                })
                .collect();
            if rows.is_empty() {
                println!("No agents in vault \"{vault}\".");
            } else {
                output::table(&["NAME", "ROLE"], &rows);
            }
        }
        VaultAgentCommand::Add { name, role } => {
            let _: serde_json::Value = client
                .post(
                    &target.path("/agents"),
                    &json!({ "name": name, "role": role }),
                )
                .await?;
            output::success(format!(
                "Added agent \"{name}\" to vault \"{vault}\" as {role}."
            ));
        }
        VaultAgentCommand::Remove { name } => {
            let _: serde_json::Value = client
                .delete(&target.path(&format!("/agents/{}", segment(&name))))
                .await?;
            output::success(format!("Removed agent \"{name}\" from vault \"{vault}\"."));
        }
        VaultAgentCommand::SetRole { name, role } => {
            let _: serde_json::Value = client
                .post(
                    &target.path(&format!("/agents/{}/role", segment(&name))),
                    &json!({ "role": role }),
                )
                .await?;
            output::success(format!(
                "Agent \"{name}\" is now {role} of vault \"{vault}\"."
            ));
        }
    }
    Ok(())
}
