//! `agent-vault vault …`: vault lifecycle and everything that happens inside a vault.

mod credential;
mod members;
mod proposal;
mod run;
mod service;

use clap::{Args, Subcommand};

use super::{Context, not_yet};

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
}

pub async fn run(args: VaultArgs, _context: &Context) -> anyhow::Result<()> {
    let name = match args.command {
        VaultCommand::Create { .. } => "vault create",
        VaultCommand::List => "vault list",
        VaultCommand::Delete { .. } => "vault delete",
        VaultCommand::Rename { .. } => "vault rename",
        VaultCommand::Use { .. } => "vault use",
        VaultCommand::Current => "vault current",
        VaultCommand::Init => "vault init",
        VaultCommand::Discover { .. } => "vault discover",
        VaultCommand::Run(_) => "vault run",
        VaultCommand::Token(_) => "vault token",
        VaultCommand::User(command) => command.name(),
        VaultCommand::Service(command) => command.name(),
        VaultCommand::Credential(command) => command.name(),
        VaultCommand::Proposal(command) => command.name(),
        VaultCommand::Agent(command) => command.name(),
    };
    Err(not_yet(name))
}
