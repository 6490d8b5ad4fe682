//! `agent-vault auth register | login | verify | logout`.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;

use super::session::{self, SavedSession};
use super::{Client, Context, output, prompt};
use crate::api::{validate_email, validate_password};
use crate::crypto::SecretString;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Self-signup for a new account. The first user to register becomes the instance owner,
    /// is auto-activated, and is granted admin on the default vault. Subsequent users receive
    /// a 6-digit verification code
    Register {
        /// Email address
        #[arg(long)]
        email: Option<String>,
        /// Read password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Authenticate with email and password. Prompts interactively by default. Rejects
    /// inactive (unverified) accounts
    Login {
        /// Email address
        #[arg(long)]
        email: Option<String>,
        /// Read password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Activate a registered account with its 6-digit verification code
    Verify {
        /// Email address
        #[arg(long)]
        email: Option<String>,
        /// The 6-digit code (prompted for when omitted)
        #[arg(long)]
        code: Option<String>,
        /// Read the account's password from stdin (the code proves the address; the account
        /// takes this password)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Accept an invite link: creates your account with the invite's role and vaults (or adds
    /// them to your existing account) and logs you in
    AcceptInvite {
        /// The invite link (or the bare av_uinv_… token with --address)
        link: String,
        /// Read the password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// End this login session and forget it locally
    Logout,
}

#[derive(Deserialize)]
struct RegisterReply {
    email: String,
    message: String,
    #[serde(default)]
    token: Option<SecretString>,
}

#[derive(Deserialize)]
struct SessionReply {
    token: SecretString,
}

pub async fn run(command: AuthCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        AuthCommand::Register {
            email,
            password_stdin,
        } => register(context, email, password_stdin).await,
        AuthCommand::Login {
            email,
            password_stdin,
        } => login(context, email, password_stdin).await,
        AuthCommand::Verify {
            email,
            code,
            password_stdin,
        } => {
            let client = context.anonymous_client()?;
            let email = email_arg(email, password_stdin)?;
            let code = code_arg(code)?;
            let password = password_arg(password_stdin, true)?;
            verify(context, &client, &email, &code, &password).await
        }
        AuthCommand::AcceptInvite {
            link,
            password_stdin,
        } => accept_invite(context, &link, password_stdin).await,
        AuthCommand::Logout => logout(context).await,
    }
}

/// The email from --email, or a prompt on a terminal.
fn email_arg(email: Option<String>, password_stdin: bool) -> anyhow::Result<String> {
    let email = match email {
        Some(email) => email,
        None if password_stdin || !prompt::stdin_is_tty() => {
            bail!("--email is required when stdin is not a terminal")
        }
        None => prompt::line("Email: ")?,
    };
    validate_email(&email).map_err(anyhow::Error::msg)?;
    Ok(email.trim().to_lowercase())
}

fn password_arg(password_stdin: bool, confirm: bool) -> anyhow::Result<SecretString> {
    let password = if password_stdin {
        prompt::stdin_secret_line("password")?
    } else if !prompt::stdin_is_tty() {
        bail!("no terminal to ask for the password; pass --password-stdin and pipe it in");
    } else if confirm {
        return prompt::new_password("Password");
    } else {
        prompt::hidden("Password: ")?
    };
    if confirm {
        validate_password(password.expose()).map_err(anyhow::Error::msg)?;
    }
    Ok(password)
}

/// A password (and the token that comes back) sent to a plain-HTTP server off this machine
/// crosses the network readable by anyone on the path: say so before sending it.
fn warn_if_cleartext(client: &Client) {
    let base = client.base();
    let plain = base
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    if plain && crate::sandbox::env::remote_broker(base).is_some() {
        output::warn(format!(
            "{base} is plain HTTP off this machine: your password and session token cross the network in the clear; use the server's https:// address"
        ));
    }
}

fn save_login(
    context: &Context,
    client: &Client,
    email: &str,
    token: SecretString,
) -> anyhow::Result<()> {
    session::save(
        &context.paths()?,
        &SavedSession {
            token,
            address: client.base().to_owned(),
            email: email.to_owned(),
        },
    )
}

async fn register(
    context: &Context,
    email: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let email = email_arg(email, password_stdin)?;
    let password = password_arg(password_stdin, true)?;
    let client = context.anonymous_client()?;
    warn_if_cleartext(&client);
    let reply: RegisterReply = client
        .post(
            "/v1/auth/register",
            &json!({ "email": email, "password": password.expose() }),
        )
        .await
        .context("registration failed")?;
    if let Some(token) = reply.token {
        save_login(context, &client, &reply.email, token)?;
        output::success(format!(
            "Owner account created for {}. You are logged in to {}.",
            reply.email,
            client.base()
        ));
        println!("Next: store a credential with `agent-vault vault credential set KEY=VALUE`.");
        return Ok(());
    }
    println!("{}", reply.message);
    if !password_stdin && prompt::stdin_is_tty() {
        let code = code_arg(None)?;
        return verify(context, &client, &email, &code, &password).await;
    }
    Ok(())
}

/// The code from --code, or a prompt on a terminal.
fn code_arg(code: Option<String>) -> anyhow::Result<String> {
    match code {
        Some(code) => Ok(code),
        None if prompt::stdin_is_tty() => prompt::line("Verification code: "),
        None => bail!("--code is required when stdin is not a terminal"),
    }
}

async fn verify(
    context: &Context,
    client: &Client,
    email: &str,
    code: &str,
    password: &SecretString,
) -> anyhow::Result<()> {
    let reply: SessionReply = client
        .post(
            "/v1/auth/verify",
            &json!({ "email": email, "code": code.trim(), "password": password.expose() }),
        )
        .await
        .context("verification failed")?;
    save_login(context, client, email, reply.token)?;
    output::success(format!(
        "Account {email} verified. You are logged in to {}.",
        client.base()
    ));
    Ok(())
}

async fn login(
    context: &Context,
    email: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let email = email_arg(email, password_stdin)?;
    let password = password_arg(password_stdin, false)?;
    let client = context.anonymous_client()?;
    warn_if_cleartext(&client);
    let reply: SessionReply = client
        .post(
            "/v1/auth/login",
            &json!({ "email": email, "password": password.expose() }),
        )
        .await
        .context("login failed")?;
    save_login(context, &client, &email, reply.token)?;
    output::success(format!("Logged in as {email} to {}.", client.base()));
    Ok(())
}

async fn logout(context: &Context) -> anyhow::Result<()> {
    let paths = context.paths()?;
    let client = context.logged_in_client()?;
    let ended: anyhow::Result<serde_json::Value> = client.post("/v1/auth/logout", &json!({})).await;
    session::remove(&paths, client.base())?;
    match ended {
        Ok(_) => output::success("Logged out."),
        Err(e) => output::warn(format!(
            "forgot the local login, but the server said: {e:#}"
        )),
    }
    Ok(())
}

#[derive(Deserialize)]
struct InviteDetails {
    email: String,
    role: String,
    status: String,
    account_exists: bool,
    vaults: Vec<serde_json::Value>,
}

async fn accept_invite(context: &Context, link: &str, password_stdin: bool) -> anyhow::Result<()> {
    let (client, token) = match link.trim().rsplit_once("/invite/") {
        Some((base, token)) => (
            Client::new(base, None)?,
            token.trim_end_matches('/').to_owned(),
        ),
        None => (context.anonymous_client()?, link.trim().to_owned()),
    };
    if !token.starts_with("av_uinv_") {
        bail!("\"{link}\" is not an invite link; it looks like http://host:14321/invite/av_uinv_…");
    }
    warn_if_cleartext(&client);
    let invite: InviteDetails = client.get(&format!("/v1/invites/{token}")).await?;
    if invite.status != "pending" {
        bail!("this invite is {}; ask for a new one", invite.status);
    }
    let vaults: Vec<String> = invite
        .vaults
        .iter()
        .map(|v| {
            format!(
                "{} ({})",
                v["vault"].as_str().unwrap_or("?"),
                v["role"].as_str().unwrap_or("?")
            )
        })
        .collect();
    eprintln!(
        "Invite for {} as {}{}.",
        invite.email,
        invite.role,
        if vaults.is_empty() {
            String::new()
        } else {
            format!(", vaults {}", vaults.join(", "))
        }
    );
    let password = if invite.account_exists {
        // The link names the server the password goes to: one you never logged in to may be
        // anyone's, asking for the password of your account elsewhere.
        let known = session::load_for(&context.paths()?, Some(client.base()))?.is_some();
        if !known {
            output::warn(format!(
                "you have never logged in to {}: give it your password only if it is the agent-vault server you use",
                client.base()
            ));
        }
        if !password_stdin && prompt::stdin_is_tty() {
            prompt::hidden(&format!(
                "Password of your existing account on {}: ",
                client.base()
            ))?
        } else {
            password_arg(password_stdin, false)?
        }
    } else {
        password_arg(password_stdin, true)?
    };
    let reply: SessionReply = client
        .post(
            &format!("/v1/invites/{token}/accept"),
            &json!({ "password": password.expose() }),
        )
        .await
        .context("invite not accepted")?;
    save_login(context, &client, &invite.email, reply.token)?;
    output::success(format!(
        "Invite accepted. You are logged in to {} as {}.",
        client.base(),
        invite.email
    ));
    Ok(())
}
