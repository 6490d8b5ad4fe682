//! `vault credential` (alias `creds`): list, get, set, delete.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum CredentialCommand {
    /// List credential keys in a vault
    List {
        /// Show decrypted credential values (requires member+ role)
        #[arg(long)]
        reveal: bool,
    },
    /// Print the decrypted value of a single credential to stdout. Pipe-friendly. Requires
    /// member+ role
    Get {
        /// Credential key
        key: String,
    },
    /// Store one or more credentials using KEY=VALUE format (all or none)
    Set {
        /// KEY=VALUE pairs
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Delete one or more credentials
    Delete {
        /// Credential keys
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

impl CredentialCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::List { .. } => "vault credential list",
            Self::Get { .. } => "vault credential get",
            Self::Set { .. } => "vault credential set",
            Self::Delete { .. } => "vault credential delete",
        }
    }
}
