//! The command-line interface: the clap command tree (one file per command group), the API
//! client, the saved login, output and prompts.
//!
//! Stance: the CLI is a client of the API and enforces nothing the server must enforce. It
//! never prints a secret it did not ask for, reads secrets from a terminal without echo or
//! from stdin (never argv, where `ps` and shell history would see them), and sends a saved
//! login token only to the server it was issued by.

mod account;
mod agent;
mod auth;
mod ca;
mod catalog;
mod client;
pub mod duration;
mod email;
mod listener;
mod master_password;
mod migrate_db;
pub(crate) mod output;
mod owner;
mod prompt;
mod server;
mod session;
mod user;
mod vault;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::paths::Paths;
pub use client::{Client, Refusal};

/// Where a client command sends its requests when nothing else says.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:14321";
pub use crate::sandbox::env::{ADDR_ENV, SESSION_TOKEN_ENV};

#[derive(Parser)]
#[command(
    name = "agent-vault",
    version,
    about = "Credential broker and sandbox orchestrator for AI agents",
    long_about = "Agents never hold credentials: agent-vault stores them encrypted in vaults and attaches them to the agent's HTTP(S) requests on the way out.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Server URL for client commands: with your login, one you logged in to (default: that
    /// server); without, default AGENT_VAULT_ADDR, then the logged-in server, then
    /// http://127.0.0.1:14321
    #[arg(long, global = true, value_name = "URL")]
    address: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the Agent Vault server (default port 14321); `server stop` stops it
    Server(server::ServerArgs),
    /// The root CA of the transparent MITM proxy
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Register, verify, log in and out
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Your own account
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Vaults, their credentials, services, members, proposals, and `vault run`
    Vault(vault::VaultArgs),
    /// Instance users and invites
    #[command(subcommand)]
    User(user::UserCommand),
    /// Instance-level agents and agent invites
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Owner-only administration: users, vaults, instance settings, email, reset
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
    /// Manage the master password that wraps the data encryption key (server must be stopped)
    #[command(subcommand, name = "master-password")]
    MasterPassword(master_password::MasterPasswordCommand),
    /// Copy this SQLite instance into an empty PostgreSQL database (server stopped) ＋
    #[command(name = "migrate-db")]
    MigrateDb(migrate_db::MigrateDbArgs),
    /// Browse built-in service templates. No authentication required
    Catalog(catalog::CatalogArgs),
    /// Print the version and build information
    Version,
    /// Internal: the container sandbox's background maintainer, started by `vault run`
    #[command(name = "__sandbox-maintain", hide = true)]
    SandboxMaintain {
        /// A finished run whose network and home volume to remove
        #[arg(long, value_name = "RUN")]
        release: Option<String>,
    },
}

/// Settings shared by every command.
pub struct Context {
    address: Option<String>,
}

impl Context {
    pub fn paths(&self) -> anyhow::Result<Paths> {
        Ok(Paths::from_env()?)
    }

    /// The server for commands that need no login: --address, AGENT_VAULT_ADDR, the
    /// logged-in server, then the default.
    pub fn public_address(&self) -> anyhow::Result<String> {
        if let Some(address) = &self.address {
            return Ok(address.clone());
        }
        if let Some(address) = std::env::var("AGENT_VAULT_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
        {
            return Ok(address);
        }
        let saved = session::load(&self.paths()?).ok().flatten();
        Ok(saved.map_or_else(|| DEFAULT_ADDRESS.to_owned(), |s| s.address))
    }

    /// An agent's client from its environment (`AGENT_VAULT_SESSION_TOKEN` and
    /// `AGENT_VAULT_ADDR`, as `vault run` sets them), if the token is set.
    pub fn agent_client(&self) -> anyhow::Result<Option<Client>> {
        let Some(token) = std::env::var(SESSION_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
        else {
            return Ok(None);
        };
        let address = self
            .address
            .clone()
            .or_else(|| std::env::var(ADDR_ENV).ok().filter(|a| !a.is_empty()))
            .with_context(|| {
                format!(
                    "{SESSION_TOKEN_ENV} is set but {ADDR_ENV} is not; set both (`vault run` does)"
                )
            })?;
        Ok(Some(Client::new(
            &address,
            Some(crate::crypto::SecretString::new(token)),
        )?))
    }

    pub fn anonymous_client(&self) -> anyhow::Result<Client> {
        Client::new(&self.public_address()?, None)
    }

    /// A client carrying the saved login of the server `--address` names (or of the last
    /// server logged in to). The token goes only to the server that issued it.
    pub fn logged_in_client(&self) -> anyhow::Result<Client> {
        let saved = session::load_for(&self.paths()?, self.address.as_deref())?;
        match (saved, &self.address) {
            (Some(saved), _) => Client::new(&saved.address, Some(saved.token.clone())),
            (None, Some(address)) => {
                let address = client::server_address(address)?;
                anyhow::bail!(
                    "you are not logged in to {address}; log in there first with `agent-vault auth login --address {address}`"
                )
            }
            (None, None) => anyhow::bail!(
                "you are not logged in; run `agent-vault auth login` (or `agent-vault auth register` on a new server)"
            ),
        }
    }
}

/// A child's exit status to return as ours (used by `vault run`).
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct PassThroughExit(pub u8);

/// The first `AGENT_VAULT_*` variable whose value is not UTF-8. Read as text, such a value
/// would count as unset (a database URL, an SMTP host) or, lossily converted, would collapse
/// distinct bytes into one replacement character (a master password losing its entropy).
fn not_utf8_setting() -> Option<String> {
    std::env::vars_os().find_map(|(name, value)| {
        let name = name.to_str()?;
        (name.starts_with("AGENT_VAULT_") && value.to_str().is_none()).then(|| name.to_owned())
    })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| output::exit_on_usage_error(e));
    let context = Context {
        address: cli.address,
    };
    if let Some(name) = not_utf8_setting() {
        output::error(&anyhow::anyhow!(
            "{name} holds bytes that are not UTF-8 text; set it to text or unset it"
        ));
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Server(args) => server::run(args, &context),
        Command::MasterPassword(command) => master_password::run(command),
        Command::MigrateDb(args) => migrate_db::run(args),
        Command::Version => {
            print_version();
            Ok(())
        }
        other => run_async(other, context),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<PassThroughExit>() {
            Some(PassThroughExit(code)) => ExitCode::from(*code),
            None => {
                output::error(&err);
                ExitCode::FAILURE
            }
        },
    }
}

fn run_async(command: Command, context: Context) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Ca(command) => ca::run(command, &context).await,
            Command::Auth(command) => auth::run(command, &context).await,
            Command::Account(command) => account::run(command, &context).await,
            Command::Vault(args) => vault::run(args, &context).await,
            Command::User(command) => user::run(command, &context).await,
            Command::Agent(command) => agent::run(command, &context).await,
            Command::Owner(command) => owner::run(command, &context).await,
            Command::Catalog(args) => catalog::run(args, &context).await,
            Command::SandboxMaintain { release } => {
                Ok(crate::sandbox::maintain::run(release).await?)
            }
            Command::Server(_)
            | Command::MasterPassword(_)
            | Command::MigrateDb(_)
            | Command::Version => Ok(()),
        }
    })
}

fn print_version() {
    println!("agent-vault {}", crate::VERSION);
    println!("  commit:  {}", env!("AGENT_VAULT_COMMIT"));
    println!("  built:   {}", env!("AGENT_VAULT_BUILD_DATE"));
    println!(
        "  os/arch: {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "  build:   {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}
