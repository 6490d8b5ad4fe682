//! `vault service`: list, set, add, enable, disable, remove, clear.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Print the current vault services as YAML
    List,
    /// Set the vault services. Without -f, launches an interactive builder (requires a TTY).
    /// With -f, replaces the services from a YAML file
    Set {
        /// Path to a YAML services file
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Add or update a single service (upsert by host). Use -f to upsert services from a YAML
    /// file non-destructively (unlike set -f, which replaces all)
    Add(ServiceAddArgs),
    /// Enable a service so proxy traffic to the host resumes. Idempotent
    Enable {
        /// Service host
        host: String,
    },
    /// Disable a service while preserving its configuration; agents get 403 service_disabled.
    /// Idempotent
    Disable {
        /// Service host
        host: String,
    },
    /// Remove a specific service by host. Prompts for confirmation unless --yes is passed
    Remove {
        /// Service host
        host: String,
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
    /// Remove all vault services. Prompts for confirmation unless --yes is passed
    Clear {
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
}

/// Flags describing one service (shared with `vault proposal create`).
#[derive(Args)]
pub struct ServiceFlags {
    /// Target service host (e.g. api.stripe.com)
    #[arg(long)]
    pub host: Option<String>,
    /// Service description
    #[arg(long)]
    pub description: Option<String>,
    /// Auth type: bearer, basic, api-key, custom, passthrough
    #[arg(long)]
    pub auth_type: Option<String>,
    /// Credential key for bearer auth
    #[arg(long)]
    pub token_key: Option<String>,
    /// Credential key for basic auth username
    #[arg(long)]
    pub username_key: Option<String>,
    /// Credential key for basic auth password
    #[arg(long)]
    pub password_key: Option<String>,
    /// Credential key for api-key auth
    #[arg(long)]
    pub api_key_key: Option<String>,
    /// Header name for api-key (default Authorization)
    #[arg(long)]
    pub api_key_header: Option<String>,
    /// Prefix for api-key value
    #[arg(long)]
    pub api_key_prefix: Option<String>,
}

#[derive(Args)]
pub struct ServiceAddArgs {
    /// Path to a YAML services file (upsert mode)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceFlags,
    /// Create the service in a disabled state (proxy traffic returns 403 until enabled)
    #[arg(long)]
    pub disabled: bool,
}

impl ServiceCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::List => "vault service list",
            Self::Set { .. } => "vault service set",
            Self::Add(_) => "vault service add",
            Self::Enable { .. } => "vault service enable",
            Self::Disable { .. } => "vault service disable",
            Self::Remove { .. } => "vault service remove",
            Self::Clear { .. } => "vault service clear",
        }
    }
}
