//! `agent-vault account whoami | change-password | delete`.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;

use super::session::{self, SavedSession};
use super::{Context, output, prompt};
use crate::crypto::SecretString;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Show current user and session info
    Whoami,
    /// Change your own password. Invalidates all existing sessions and issues a new one
    ChangePassword {
        /// Read current and new passwords as two lines from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Permanently delete your own account. Owners cannot delete themselves — transfer
    /// ownership first
    Delete {
        /// Skip the confirmation prompt
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Deserialize)]
struct Me {
    email: String,
    role: String,
    vaults: Vec<VaultGrant>,
    created_at: String,
    session_expires_at: Option<String>,
}

#[derive(Deserialize)]
pub struct VaultGrant {
    pub name: String,
    pub role: String,
}

pub fn grants_line(vaults: &[VaultGrant]) -> String {
    if vaults.is_empty() {
        return "(none)".into();
    }
    vaults
        .iter()
        .map(|v| format!("{} ({})", v.name, v.role))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
struct SessionReply {
    token: SecretString,
}

pub async fn run(command: AccountCommand, context: &Context) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    match command {
        AccountCommand::Whoami => {
            let me: Me = client.get("/v1/auth/me").await?;
            println!("Email:    {}", me.email);
            println!("Role:     {}", me.role);
            println!("Vaults:   {}", grants_line(&me.vaults));
            println!("Server:   {}", client.base());
            println!("Created:  {}", me.created_at);
            if let Some(expires) = me.session_expires_at {
                println!("Session:  expires {expires}");
            }
            Ok(())
        }
        AccountCommand::ChangePassword { password_stdin } => {
            let (current, new) = if password_stdin {
                let current = prompt::stdin_secret_line("current password")?;
                let new = prompt::stdin_secret_line("new password")?;
                crate::api::validate_password(new.expose()).map_err(anyhow::Error::msg)?;
                (current, new)
            } else if prompt::stdin_is_tty() {
                (
                    prompt::hidden("Current password: ")?,
                    prompt::new_password("New password")?,
                )
            } else {
                bail!(
                    "no terminal to ask for passwords; pass --password-stdin with the current and new password on two lines"
                );
            };
            let reply: SessionReply = client
                .post(
                    "/v1/auth/change-password",
                    &json!({ "current_password": current.expose(), "new_password": new.expose() }),
                )
                .await
                .context("password not changed")?;
            let paths = context.paths()?;
            let saved = session::load_for(&paths, Some(client.base()))?
                .context("the local login disappeared")?;
            session::save(
                &paths,
                &SavedSession {
                    token: reply.token,
                    ..saved
                },
            )?;
            output::success("Password changed. Every other session was logged out.");
            Ok(())
        }
        AccountCommand::Delete { yes } => {
            let me: Me = client.get("/v1/auth/me").await?;
            if !yes {
                if !prompt::stdin_is_tty() {
                    bail!("refusing to delete the account without confirmation; pass --yes");
                }
                let typed = prompt::line(&format!(
                    "This permanently deletes the account {}. Type the email to confirm: ",
                    me.email
                ))?;
                if typed.to_lowercase() != me.email {
                    bail!("aborted: the email did not match; nothing was deleted");
                }
            }
            let _: serde_json::Value = client.delete("/v1/auth/account").await?;
            session::remove(&context.paths()?, client.base())?;
            output::success(format!("Account {} deleted.", me.email));
            Ok(())
        }
    }
}
