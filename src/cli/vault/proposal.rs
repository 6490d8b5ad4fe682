//! `vault proposal`: list, show, create, approve, reject, review.
//!
//! Agents file proposals (`create`, usually from inside `vault run`, where
//! `AGENT_VAULT_SESSION_TOKEN` and `AGENT_VAULT_ADDR` name their identity); people review them
//! with their login. Stance: the server enforces who may review; this file only asks. Text
//! written by an agent (messages, descriptions) is printed with control characters replaced,
//! so a proposal cannot rewrite the reviewer's terminal, and credential values are read from a
//! hidden prompt or stdin when not given as arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Target;
use super::context::{self, Source};
use super::credential::parse_pairs;
use super::service::ServiceFlags;
use crate::cli::client::segment;
use crate::cli::{Client, Context, output, prompt};
use crate::crypto::SecretString;
use crate::services::{self, Service, validate_credential_key};

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

/// Entry point: `create`, `list` and `show` run as the agent when `AGENT_VAULT_SESSION_TOKEN`
/// is set; everything else (and everything without it) uses the saved login.
pub async fn dispatch(
    flag: Option<&str>,
    context: &Context,
    command: ProposalCommand,
) -> anyhow::Result<()> {
    let agent_mode = matches!(
        command,
        ProposalCommand::Create(_) | ProposalCommand::List { .. } | ProposalCommand::Show { .. }
    );
    let client = if agent_mode {
        context.agent_client()?
    } else {
        None
    };
    let Some(client) = client else {
        return run(Target::resolve(flag, context)?, command).await;
    };
    let (vault, source) = context::resolve(flag, &context.paths()?)?;
    match command {
        ProposalCommand::Create(args) => {
            // A scoped token knows its vault: name one only when the agent asked for it.
            let named = matches!(source, Source::Flag | Source::Env | Source::ProjectFile(_));
            create(&client, named.then_some(vault.as_str()), &args).await
        }
        command => run(Target { client, vault }, command).await,
    }
}

pub async fn run(target: Target, command: ProposalCommand) -> anyhow::Result<()> {
    match command {
        ProposalCommand::List { status } => list(&target, status.as_deref()).await,
        ProposalCommand::Show { number } => {
            let detail = fetch(&target, number).await?;
            print!("{}", detail.render());
            Ok(())
        }
        ProposalCommand::Create(args) => create(&target.client, Some(&target.vault), &args).await,
        ProposalCommand::Approve { number, pairs, yes } => {
            approve(&target, number, &pairs, yes).await
        }
        ProposalCommand::Reject { number, reason } => {
            reject(&target, number, reason).await?;
            output::success(format!("Proposal #{number} rejected."));
            Ok(())
        }
        ProposalCommand::Review => review(&target).await,
    }
}

/// One line of text: line breaks become spaces, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = output::terminal_safe(text)
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

fn indent(text: &str) -> String {
    output::terminal_safe(text)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

#[derive(Deserialize)]
struct Actor {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    #[serde(default)]
    minted_by: Option<Box<Actor>>,
}

impl Actor {
    fn describe(&self) -> String {
        let name = |a: &Actor| {
            a.name.as_deref().map_or_else(
                || format!("a removed {}", a.kind),
                |n| {
                    if a.kind == "agent" {
                        format!("agent {}", output::terminal_safe(n))
                    } else {
                        output::terminal_safe(n)
                    }
                },
            )
        };
        match (self.kind.as_str(), &self.minted_by) {
            ("scoped", Some(minter)) => format!("token of {}", name(minter)),
            ("scoped", None) => "vault token".to_owned(),
            _ => name(self),
        }
    }
}

#[derive(Deserialize)]
struct Requested {
    key: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    exists: bool,
}

#[derive(Deserialize)]
struct Detail {
    number: u64,
    status: String,
    vault: String,
    #[serde(default)]
    services: Vec<Service>,
    /// Current services that approving would replace.
    #[serde(default)]
    replaces: Vec<Service>,
    #[serde(default)]
    credentials: Vec<Requested>,
    message: Option<String>,
    user_message: Option<String>,
    created_by: Actor,
    created_at: String,
    reviewed_by: Option<Actor>,
    reviewed_at: Option<String>,
    review_note: Option<String>,
}

/// `2024-05-01T12:30:00Z` → `2024-05-01 12:30`.
fn short_time(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).chars().take(16).collect()
}

impl Detail {
    /// Requested keys the vault does not hold yet: these need a value to approve.
    fn missing(&self) -> Vec<&str> {
        self.credentials
            .iter()
            .filter(|c| !c.exists)
            .map(|c| c.key.as_str())
            .collect()
    }

    fn render(&self) -> String {
        let mut out = format!(
            "Proposal #{} in vault \"{}\": {}\n",
            self.number, self.vault, self.status
        );
        out.push_str(&format!("Filed by:  {}\n", self.created_by.describe()));
        out.push_str(&format!("Created:   {}\n", short_time(&self.created_at)));
        if let Some(at) = &self.reviewed_at {
            let by = self
                .reviewed_by
                .as_ref()
                .map(|a| format!(" by {}", a.describe()))
                .unwrap_or_default();
            out.push_str(&format!(
                "Reviewed:  {}{by} ({})\n",
                short_time(at),
                self.status
            ));
        }
        if let Some(note) = &self.review_note {
            out.push_str(&format!("Reason:    {}\n", one_line(note, 500)));
        }
        if let Some(message) = &self.message {
            out.push_str(&format!("\nMessage:\n{}", indent(message)));
        }
        if let Some(message) = &self.user_message {
            out.push_str(&format!("\nFor the reviewer:\n{}", indent(message)));
        }
        if !self.services.is_empty() {
            let yaml = services::to_yaml(&self.vault, &self.services)
                .unwrap_or_else(|e| format!("(cannot show the services: {e})\n"));
            out.push_str(&format!("\nServices to add or update:\n{}", indent(&yaml)));
        }
        if !self.replaces.is_empty() {
            let yaml = services::to_yaml(&self.vault, &self.replaces)
                .unwrap_or_else(|e| format!("(cannot show the services: {e})\n"));
            out.push_str(&format!(
                "\nApproving replaces these current services (same host, port and path):\n{}",
                indent(&yaml)
            ));
        }
        if !self.credentials.is_empty() {
            out.push_str("\nCredentials:\n");
            for c in &self.credentials {
                let (mark, state) = if c.exists {
                    ("✓", "already set; kept unless you give a value")
                } else {
                    ("•", "needs a value")
                };
                let description = c
                    .description
                    .as_deref()
                    .map(|d| format!(" — {}", one_line(d, 200)))
                    .unwrap_or_default();
                out.push_str(&format!("  {mark} {}{description} ({state})\n", c.key));
            }
        }
        out
    }
}

fn proposal_path(target: &Target, number: u64, rest: &str) -> String {
    target.path(&format!("/proposals/{number}{rest}"))
}

async fn fetch(target: &Target, number: u64) -> anyhow::Result<Detail> {
    target.client.get(&proposal_path(target, number, "")).await
}

#[derive(Deserialize)]
struct Listing {
    proposals: Vec<Detail>,
}

async fn pending(target: &Target) -> anyhow::Result<Vec<Detail>> {
    let listing: Listing = target
        .client
        .get(&target.path("/proposals?status=pending"))
        .await?;
    Ok(listing.proposals)
}

async fn list(target: &Target, status: Option<&str>) -> anyhow::Result<()> {
    // `--status ""` (like `all`) lists every status.
    let status = status.filter(|s| !s.is_empty());
    let path = match status {
        Some(status) => target.path(&format!("/proposals?status={}", segment(status))),
        None => target.path("/proposals"),
    };
    let listing: Listing = target.client.get(&path).await?;
    if listing.proposals.is_empty() {
        let which = status.map(|s| format!("{s} ")).unwrap_or_default();
        println!("No {which}proposals in vault \"{}\".", target.vault);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listing
        .proposals
        .iter()
        .map(|p| {
            vec![
                p.number.to_string(),
                p.status.clone(),
                short_time(&p.created_at),
                p.created_by.describe(),
                p.message
                    .as_deref()
                    .map(|m| one_line(m, 60))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["#", "STATUS", "CREATED", "BY", "MESSAGE"], &rows);
    Ok(())
}

/// The `-f` document: the body of `POST /v1/proposals` without the vault.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ProposalFile {
    #[serde(default)]
    services: Vec<Value>,
    #[serde(default)]
    credentials: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_message: Option<String>,
}

/// Reads a proposal file (`-` is stdin). Errors name the file and the place, never a value.
fn read_file(path: &Path) -> anyhow::Result<ProposalFile> {
    let (text, shown) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the proposal from stdin")?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    let file: ProposalFile = serde_json::from_str(&text).map_err(|e| {
        use serde_json::error::Category;
        let at = format!("line {} column {}", e.line(), e.column());
        let text = e.to_string();
        let message = match e.classify() {
            Category::Data if text.starts_with("unknown field") || text.starts_with("duplicate field") => {
                text.split(" at line").next().unwrap_or(&text).to_owned()
            }
            Category::Data => "a field has the wrong type (expected {\"services\": [...], \"credentials\": [...], \"message\": \"...\", \"user_message\": \"...\"})".to_owned(),
            _ => "not valid JSON".to_owned(),
        };
        anyhow::anyhow!("{shown}: {at}: {message}")
    })?;
    // Check services here too, so the error names the file.
    for (i, service) in file.services.iter().enumerate() {
        serde_json::from_value::<Service>(service.clone())
            .map_err(|e| anyhow::anyhow!("{shown}: services[{i}]: {e}"))?;
    }
    Ok(file)
}

/// `--credential KEY` or `--credential KEY=description`.
fn credential_flag(text: &str) -> anyhow::Result<Value> {
    let (key, description) = match text.split_once('=') {
        Some((key, description)) => (key.trim(), Some(description.trim())),
        None => (text.trim(), None),
    };
    validate_credential_key(key).map_err(|e| anyhow::anyhow!("--credential: {e}"))?;
    Ok(match description.filter(|d| !d.is_empty()) {
        Some(description) => json!({ "key": key, "description": description }),
        None => json!({ "key": key }),
    })
}

impl ServiceFlags {
    fn any(&self) -> bool {
        [
            &self.host,
            &self.description,
            &self.auth_type,
            &self.token_key,
            &self.username_key,
            &self.password_key,
            &self.api_key_key,
            &self.api_key_header,
            &self.api_key_prefix,
        ]
        .iter()
        .any(|f| f.is_some())
    }
}

#[derive(Deserialize, Serialize)]
struct Created {
    number: u64,
    vault: String,
    approval_url: String,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

async fn create(
    client: &Client,
    vault: Option<&str>,
    args: &ProposalCreateArgs,
) -> anyhow::Result<()> {
    let mut document = match &args.file {
        Some(path) => {
            if args.service.any() || !args.credential.is_empty() {
                bail!(
                    "give either -f FILE or --host/--auth-type/--credential flags, not both (a file can hold several services and credentials)"
                );
            }
            read_file(path)?
        }
        None => {
            if !args.service.any() && args.credential.is_empty() {
                bail!(
                    "nothing to propose: describe one service with --host and --auth-type (plus its key flag) and request credentials with --credential KEY[=description], or pass a JSON file with -f FILE"
                );
            }
            let services = if args.service.any() {
                vec![serde_json::to_value(args.service.to_service(true)?)?]
            } else {
                Vec::new()
            };
            let credentials = args
                .credential
                .iter()
                .map(|c| credential_flag(c))
                .collect::<anyhow::Result<_>>()?;
            ProposalFile {
                services,
                credentials,
                message: None,
                user_message: None,
            }
        }
    };
    if args.message.is_some() {
        document.message = args.message.clone();
    }
    if args.user_message.is_some() {
        document.user_message = args.user_message.clone();
    }
    let mut body = serde_json::to_value(&document)?;
    if let Some(vault) = vault {
        body["vault"] = json!(vault);
    }
    let created: Created = client.post("/v1/proposals", &body).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        output::success(format!(
            "Proposal #{} created in vault \"{}\".",
            created.number, created.vault
        ));
        println!("Approve at: {}", created.approval_url);
    }
    Ok(())
}

/// Asks `question` on a terminal; without one, `--yes` is required.
fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !prompt::stdin_is_tty() {
        bail!("approving needs confirmation; pass --yes");
    }
    let answer = prompt::line(&format!("{question} [y/N] "))?;
    Ok(matches!(answer.to_lowercase().as_str(), "y" | "yes"))
}

/// Prompts (hidden) for every key in `keys`; an empty answer is asked again.
fn prompt_values(keys: &[&str], values: &mut BTreeMap<String, SecretString>) -> anyhow::Result<()> {
    for key in keys {
        loop {
            let value = prompt::hidden(&format!("Value for {key}: "))?;
            if !value.is_empty() {
                values.insert((*key).to_owned(), value);
                break;
            }
            output::warn(format!("{key} needs a value"));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct Approved {
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    credentials: Vec<String>,
}

async fn send_approval(
    target: &Target,
    number: u64,
    values: &BTreeMap<String, SecretString>,
) -> anyhow::Result<()> {
    let body = json!({
        "credentials": values
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect::<BTreeMap<_, _>>()
    });
    let approved: Approved = target
        .client
        .post(&proposal_path(target, number, "/approve"), &body)
        .await?;
    output::success(format!("Proposal #{number} approved and applied."));
    for service in &approved.services {
        println!("  service {service} saved");
    }
    for key in &approved.credentials {
        println!("  credential {key} set");
    }
    Ok(())
}

async fn approve(target: &Target, number: u64, pairs: &[String], yes: bool) -> anyhow::Result<()> {
    let detail = fetch(target, number).await?;
    if detail.status != "pending" {
        bail!("proposal #{number} is already {}", detail.status);
    }
    let tty = prompt::stdin_is_tty();
    if !tty && !yes {
        bail!("approving needs confirmation and there is no terminal to ask; pass --yes");
    }
    let mut values = parse_pairs(pairs)?;
    let mut requested: BTreeSet<&str> = detail.credentials.iter().map(|c| c.key.as_str()).collect();
    requested.extend(detail.services.iter().flat_map(Service::credential_keys));
    let missing: Vec<&str> = detail
        .missing()
        .into_iter()
        .filter(|k| !values.contains_key(*k))
        .collect();
    if let Some(extra) = values.keys().find(|k| !requested.contains(k.as_str())) {
        if requested.is_empty() {
            bail!("proposal #{number} uses no credentials; drop {extra}");
        }
        bail!(
            "proposal #{number} does not use {extra}; give values only for {}",
            requested.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    if !missing.is_empty() && !tty {
        bail!(
            "proposal #{number} needs a value for {}; pass {} (or a bare KEY to read its value from stdin)",
            missing.join(", "),
            missing
                .iter()
                .map(|k| format!("{k}=VALUE"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    print!("{}", detail.render());
    if !confirm(&format!("Approve proposal #{number}?"), yes)? {
        bail!("aborted: proposal #{number} is still pending");
    }
    prompt_values(&missing, &mut values)?;
    send_approval(target, number, &values).await
}

async fn reject(target: &Target, number: u64, reason: Option<String>) -> anyhow::Result<()> {
    let body = match reason.filter(|r| !r.trim().is_empty()) {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    let _: Value = target
        .client
        .post(&proposal_path(target, number, "/reject"), &body)
        .await?;
    Ok(())
}

/// The interactive walk through pending proposals, oldest first.
async fn review(target: &Target) -> anyhow::Result<()> {
    if !prompt::stdin_is_tty() {
        bail!(
            "`vault proposal review` is interactive and needs a terminal; in scripts use `vault proposal list --status pending`, then `approve <n> KEY=VALUE --yes` or `reject <n>`"
        );
    }
    let proposals = pending(target).await?;
    if proposals.is_empty() {
        println!("No pending proposals in vault \"{}\".", target.vault);
        return Ok(());
    }
    let total = proposals.len();
    let (mut approved, mut rejected, mut skipped, mut failed) = (0, 0, 0, 0);
    for (index, detail) in proposals.iter().enumerate() {
        println!("\n[{}/{total}]", index + 1);
        print!("{}", detail.render());
        let number = detail.number;
        let choice = loop {
            let answer = prompt::line("[a]pprove, [r]eject, [s]kip, [q]uit: ")?;
            match answer.to_lowercase().as_str() {
                "a" | "approve" => break 'a',
                "r" | "reject" => break 'r',
                "s" | "skip" | "" => break 's',
                "q" | "quit" => break 'q',
                _ => output::warn("answer a, r, s or q"),
            }
        };
        let outcome = match choice {
            'a' => {
                let mut values = BTreeMap::new();
                prompt_values(&detail.missing(), &mut values)?;
                send_approval(target, number, &values)
                    .await
                    .map(|()| &mut approved)
            }
            'r' => {
                let reason = prompt::line("Reason (optional): ")?;
                reject(target, number, Some(reason)).await.map(|()| {
                    output::success(format!("Proposal #{number} rejected."));
                    &mut rejected
                })
            }
            's' => Ok(&mut skipped),
            _ => {
                skipped += total - index;
                break;
            }
        };
        match outcome {
            Ok(counter) => *counter += 1,
            Err(e) => {
                output::error(&e);
                failed += 1;
            }
        }
    }
    println!(
        "\nReviewed {total} pending proposal(s): {approved} approved, {rejected} rejected, {skipped} skipped{}.",
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_cannot_drive_the_terminal() {
        assert_eq!(one_line("one\ntwo", 60), "one two");
        assert_eq!(one_line(&"x".repeat(70), 60).chars().count(), 60);
        assert!(one_line(&"x".repeat(70), 60).ends_with('…'));
    }

    #[test]
    fn credential_flags_take_an_optional_description() {
        assert_eq!(
            credential_flag("API_KEY").unwrap(),
            json!({ "key": "API_KEY" })
        );
        assert_eq!(
            credential_flag("API_KEY=The key = main").unwrap(),
            json!({ "key": "API_KEY", "description": "The key = main" })
        );
        assert!(credential_flag("api-key").is_err());
    }
}
