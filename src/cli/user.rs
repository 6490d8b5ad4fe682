//! `agent-vault user list | invite …`.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use super::client::segment;
use super::{Context, output};

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

#[derive(Deserialize)]
pub struct UserRow {
    pub email: String,
    pub role: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub vaults: Option<Vec<super::account::VaultGrant>>,
    pub created_at: String,
}

#[derive(Deserialize)]
pub struct UserList {
    pub users: Vec<UserRow>,
}

/// Prints users; the owner's view adds status and vault memberships.
pub fn print_users(list: &UserList) {
    let full = list.users.iter().any(|u| u.vaults.is_some());
    let rows: Vec<Vec<String>> = list
        .users
        .iter()
        .map(|u| {
            let mut row = vec![u.email.clone(), u.role.clone()];
            if full {
                row.push(u.status.clone().unwrap_or_default());
                row.push(super::account::grants_line(
                    u.vaults.as_deref().unwrap_or_default(),
                ));
            }
            row.push(u.created_at.clone());
            row
        })
        .collect();
    if full {
        output::table(&["EMAIL", "ROLE", "STATUS", "VAULTS", "CREATED"], &rows);
    } else {
        output::table(&["EMAIL", "ROLE", "CREATED"], &rows);
    }
}

/// Parses `name:role` pre-assignments (role defaults to `default_role`).
pub fn vault_assignments(
    specs: &[String],
    default_role: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    specs
        .iter()
        .map(|spec| {
            let (vault, role) = spec.split_once(':').unwrap_or((spec.as_str(), default_role));
            if vault.is_empty() || role.is_empty() {
                bail!("\"{spec}\" is not a vault assignment; write NAME:ROLE, for example default:{default_role}");
            }
            Ok(json!({ "vault": vault, "role": role }))
        })
        .collect()
}

#[derive(Deserialize)]
struct InviteRow {
    email: String,
    role: String,
    status: String,
    token_suffix: String,
    vaults: Vec<InviteVault>,
    created_by: Option<String>,
    expires_at: String,
    #[serde(default)]
    invite_link: Option<String>,
    #[serde(default)]
    email_sent: bool,
}

#[derive(Deserialize)]
struct InviteVault {
    vault: String,
    role: String,
}

#[derive(Deserialize)]
struct InviteList {
    invites: Vec<InviteRow>,
}

fn vaults_line(vaults: &[InviteVault]) -> String {
    vaults
        .iter()
        .map(|v| format!("{} ({})", v.vault, v.role))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(command: UserCommand, context: &Context) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    match command {
        UserCommand::List => print_users(&client.get("/v1/users").await?),
        UserCommand::Invite(args) => match args.command {
            Some(InviteCommand::List { status }) => {
                let path = match &status {
                    Some(s) => format!("/v1/users/invites?status={}", segment(s)),
                    None => "/v1/users/invites".into(),
                };
                let list: InviteList = client.get(&path).await?;
                if list.invites.is_empty() {
                    println!("No invites.");
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .invites
                    .iter()
                    .map(|i| {
                        vec![
                            i.email.clone(),
                            i.role.clone(),
                            i.status.clone(),
                            vaults_line(&i.vaults),
                            format!("…{}", i.token_suffix),
                            i.created_by.clone().unwrap_or_default(),
                            i.expires_at.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "EMAIL",
                        "ROLE",
                        "STATUS",
                        "VAULTS",
                        "TOKEN",
                        "INVITED BY",
                        "EXPIRES",
                    ],
                    &rows,
                );
            }
            Some(InviteCommand::Revoke { token_suffix }) => {
                let suffix = token_suffix.trim_start_matches('…');
                let reply: serde_json::Value = client
                    .delete(&format!("/v1/users/invites/{}", segment(suffix)))
                    .await?;
                output::success(format!(
                    "Revoked the invite for {}.",
                    reply["email"].as_str().unwrap_or("?")
                ));
            }
            None => {
                let email = args.email.unwrap_or_default();
                let body = json!({
                    "email": email,
                    "role": args.role,
                    "vaults": vault_assignments(&args.vault, "member")?,
                });
                let invite: InviteRow = client.post("/v1/users/invites", &body).await?;
                output::success(format!(
                    "Invite created for {} (role {}).",
                    invite.email, invite.role
                ));
                if !invite.vaults.is_empty() {
                    println!("  Vaults:  {}", vaults_line(&invite.vaults));
                }
                println!("  Expires: {}", invite.expires_at);
                let link = invite.invite_link.unwrap_or_default();
                println!("  Link:    {link}");
                if invite.email_sent {
                    println!(
                        "  Email:   on its way to {} (if it does not arrive, send them the link yourself)",
                        invite.email
                    );
                } else {
                    println!(
                        "Send them the link; they accept it with `agent-vault auth accept-invite {link}`."
                    );
                }
            }
        },
    }
    Ok(())
}
