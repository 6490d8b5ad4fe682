//! `agent-vault vault …`: vault lifecycle and everything that happens inside a vault.

mod ca_bundle;
pub mod context;
mod credential;
mod discover;
mod lease;
mod lifecycle;
mod members;
mod proposal;
mod run;
mod service;
mod settings;

use clap::{Args, Subcommand};

use super::{Client, Context};

#[derive(Args)]
pub struct VaultArgs {
    /// Target vault (default: AGENT_VAULT_VAULT, then agent-vault.json, then the active vault, then "default")
    #[arg(long, global = true, value_name = "NAME")]
    vault: Option<String>,

    #[command(subcommand)]
    command: VaultCommand,
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Create a new vault. Name must be in slug format (lowercase alphanumeric and hyphens)
    Create {
        /// Vault name
        name: String,
    },
    /// List vaults the current user has access to
    List,
    /// Delete a vault and all its credentials, services, and proposals. Requires vault admin
    /// or instance owner role. The default vault cannot be deleted
    Delete {
        /// Vault name
        name: String,
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
    /// Rename a vault. Requires vault admin or instance owner role. The default vault cannot
    /// be renamed
    Rename {
        /// Current vault name
        old_name: String,
        /// New vault name
        new_name: String,
    },
    /// Set the active vault for subsequent commands
    Use {
        /// Vault name
        name: String,
    },
    /// Show the active vault
    Current,
    /// Bind the current directory to a vault by writing an agent-vault.json file (meant to be
    /// committed). Uses an interactive picker if several vaults are available; --vault skips it
    Init,
    /// Show available services and credentials for the current vault. Requires a vault-scoped
    /// session (via `vault run` or AGENT_VAULT_SESSION_TOKEN + AGENT_VAULT_ADDR)
    Discover {
        /// Output response as JSON
        #[arg(long)]
        json: bool,
    },
    /// Wrap a process with Agent Vault environment variables, routing its HTTPS through the
    /// broker
    Run(run::RunArgs),
    /// Mint a vault-scoped session token and print it to stdout
    Token(run::TokenArgs),
    /// Vault members (users)
    #[command(subcommand)]
    User(members::VaultUserCommand),
    /// Services: which hosts get which credential, and how
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Credentials stored in the vault (alias: creds)
    #[command(subcommand, visible_alias = "creds")]
    Credential(credential::CredentialCommand),
    /// Proposals: agents' requests for new services and credentials
    #[command(subcommand)]
    Proposal(proposal::ProposalCommand),
    /// Agents with access to the vault
    #[command(subcommand)]
    Agent(members::VaultAgentCommand),
    /// Vault settings: what the broker does with hosts no service matches
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Recent requests the broker handled for this vault (metadata only)
    Logs {
        /// How many requests to show (newest first), 1 to 1000
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Output as JSON
        #[arg(long)]
        json: bool,
    },
}

/// The resolved target vault and a client, for commands acting inside a vault.
pub struct Target {
    pub client: Client,
    pub vault: String,
}

impl Target {
    /// With `AGENT_VAULT_SESSION_TOKEN` set (inside `vault run`, say) the command acts as that
    /// token, never as the login saved in `~/.agent-vault`: an agent that runs `agent-vault`
    /// gets its run's rights, not its user's.
    fn resolve(flag: Option<&str>, context: &Context) -> anyhow::Result<Self> {
        let paths = context.paths()?;
        let (vault, _) = context::resolve(flag, &paths)?;
        let client = match context.agent_client()? {
            Some(agent) => agent,
            None => context.logged_in_client()?,
        };
        Ok(Self { client, vault })
    }

    /// `/v1/vaults/<vault><rest>` with the name escaped.
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/vaults/{}{rest}", super::client::segment(&self.vault))
    }
}

pub async fn run(args: VaultArgs, context: &Context) -> anyhow::Result<()> {
    let flag = args.vault.as_deref();
    match args.command {
        VaultCommand::Create { name } => lifecycle::create(context, &name).await,
        VaultCommand::List => lifecycle::list(context).await,
        VaultCommand::Delete { name, yes } => lifecycle::delete(context, &name, yes).await,
        VaultCommand::Rename { old_name, new_name } => {
            lifecycle::rename(context, &old_name, &new_name).await
        }
        VaultCommand::Use { name } => lifecycle::use_vault(context, &name).await,
        VaultCommand::Current => lifecycle::current(context, flag),
        VaultCommand::Init => lifecycle::init(context, flag).await,
        VaultCommand::Token(token) => run::token(Target::resolve(flag, context)?, token).await,
        VaultCommand::Credential(command) => {
            credential::run(Target::resolve(flag, context)?, command).await
        }
        VaultCommand::User(command) => {
            members::run_users(Target::resolve(flag, context)?, command).await
        }
        VaultCommand::Discover { json } => discover::discover(context, flag, json).await,
        VaultCommand::Run(args) => run::run(context, flag, args).await,
        VaultCommand::Service(command) => {
            service::run(Target::resolve(flag, context)?, command).await
        }
        VaultCommand::Proposal(command) => proposal::dispatch(flag, context, command).await,
        VaultCommand::Agent(command) => {
            members::run_agents(Target::resolve(flag, context)?, command).await
        }
        VaultCommand::Settings(command) => {
            settings::run(Target::resolve(flag, context)?, command).await
        }
        VaultCommand::Logs { limit, json } => {
            settings::logs(Target::resolve(flag, context)?, limit, json).await
        }
    }
}
