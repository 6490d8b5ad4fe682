//! `vault proposal`: list, show, create, approve, reject, review.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::service::ServiceFlags;

#[derive(Subcommand)]
pub enum ProposalCommand {
    /// List proposals for a vault
    List {
        /// Filter by status (e.g. pending)
        #[arg(long)]
        status: Option<String>,
    },
    /// Show details of a proposal
    Show {
        /// Proposal number
        number: u64,
    },
    /// Create a proposal to request services or credentials: flag-driven (one service) or a
    /// JSON file (several services and credentials)
    Create(ProposalCreateArgs),
    /// Approve and apply a proposal. Pass credential values as KEY=VALUE arguments or the
    /// command will prompt for any missing credentials
    Approve {
        /// Proposal number
        number: u64,
        /// Credential values as KEY=VALUE
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
    /// Reject a pending proposal
    Reject {
        /// Proposal number
        number: u64,
        /// Rejection reason
        #[arg(long)]
        reason: Option<String>,
    },
    /// Interactively walk through all pending proposals: approve, reject, skip, or quit
    Review,
}

#[derive(Args)]
pub struct ProposalCreateArgs {
    /// Path to JSON proposal file (use - for stdin)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceFlags,
    /// Credential to request: KEY or KEY=description (repeatable)
    #[arg(long, value_name = "KEY[=DESCRIPTION]")]
    pub credential: Vec<String>,
    /// Proposal message/reason
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Human-facing explanation for the browser approval page
    #[arg(long)]
    pub user_message: Option<String>,
    /// Output response as JSON
    #[arg(long)]
    pub json: bool,
}

impl ProposalCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::List { .. } => "vault proposal list",
            Self::Show { .. } => "vault proposal show",
            Self::Create(_) => "vault proposal create",
            Self::Approve { .. } => "vault proposal approve",
            Self::Reject { .. } => "vault proposal reject",
            Self::Review => "vault proposal review",
        }
    }
}
