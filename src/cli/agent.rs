//! `agent-vault agent …`: instance-level agents and agent invites.

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use super::client::segment;
use super::user::vault_assignments;
use super::{Context, output};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create an agent invite and print the onboarding prompt. The agent redeems the invite
    /// via HTTP and receives an instance-level agent token. `agent invite list` and
    /// `agent invite revoke` manage pending invites
    Invite(AgentInviteArgs),
    /// List all agents across the instance
    List,
    /// Show agent details including vaults, status, and active session count
    Info {
        /// Agent name
        name: String,
    },
    /// Delete an agent and all its sessions across all vaults
    Delete {
        /// Agent name
        name: String,
    },
    /// Create a rotation invite to re-issue an agent's session. The old sessions are
    /// invalidated when the agent redeems the new invite
    Rotate {
        /// Agent name
        name: String,
    },
    /// Rename an agent. Keeps the same vault access
    Rename {
        /// Agent name
        name: String,
        /// New agent name
        new_name: String,
    },
    /// Change an agent's instance-level role. The last owner (across both users and agents)
    /// cannot be demoted
    SetRole {
        /// Agent name
        name: String,
        /// Instance role: owner or member (required)
        #[arg(long, required = true)]
        role: String,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentInviteArgs {
    /// Name of the agent to invite
    #[arg(required = true)]
    name: Option<String>,
    /// Instance-level role: owner or member
    #[arg(long, default_value = "member")]
    role: String,
    /// Vault pre-assignment in name:role format (repeatable). Role defaults to proxy
    #[arg(long, value_name = "NAME:ROLE")]
    vault: Vec<String>,
    /// Invite link expiration time (Go duration format, e.g. 15m, 1h30m, 1.5h)
    #[arg(long, default_value = "15m")]
    invite_ttl: String,
    /// Output only the raw invite token (for programmatic use)
    #[arg(long)]
    token_only: bool,

    #[command(subcommand)]
    command: Option<AgentInviteCommand>,
}

#[derive(Subcommand)]
pub enum AgentInviteCommand {
    /// List agent invites
    List {
        /// Filter by status (e.g. pending)
        #[arg(long)]
        status: Option<String>,
    },
    /// Revoke a pending invite by the last 8 or more characters of the token
    Revoke {
        /// The last 8 or more characters of the invite token
        token_suffix: String,
    },
}

#[derive(Deserialize)]
struct InviteReply {
    agent_name: String,
    role: String,
    #[serde(default)]
    rotation: bool,
    status: String,
    token_suffix: String,
    vaults: Vec<VaultRole>,
    expires_at: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    redeem_url: Option<String>,
}

#[derive(Deserialize)]
struct VaultRole {
    vault: String,
    role: String,
}

fn vaults_line(vaults: &[VaultRole]) -> String {
    if vaults.is_empty() {
        return "(none)".into();
    }
    vaults
        .iter()
        .map(|v| format!("{} ({})", v.vault, v.role))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text a person pastes to their agent (the web UI shows the same text).
fn onboarding_prompt(invite: &InviteReply, url: &str) -> String {
    let vaults: Vec<(String, String)> = invite
        .vaults
        .iter()
        .map(|v| (v.vault.clone(), v.role.clone()))
        .collect();
    crate::ops::invites::onboarding_prompt(
        &invite.agent_name,
        invite.rotation,
        &invite.expires_at,
        &vaults,
        url,
    )
}

/// Best effort: put `text` on the clipboard if a clipboard tool is available.
fn copy_to_clipboard(text: &str) -> bool {
    use std::io::Write;
    let graphical =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let tools: [(&str, &[&str]); 4] = [
        ("pbcopy", &[]),
        ("wl-copy", &[]),
        ("xclip", &["-selection", "clipboard"]),
        ("xsel", &["--clipboard", "--input"]),
    ];
    for (tool, args) in tools {
        if tool != "pbcopy" && !graphical {
            continue;
        }
        let Ok(mut child) = std::process::Command::new(tool)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            continue;
        };
        let written = child
            .stdin
            .take()
            .is_some_and(|mut stdin| stdin.write_all(text.as_bytes()).is_ok());
        if written && child.wait().is_ok_and(|s| s.success()) {
            return true;
        }
    }
    false
}

fn print_invite(invite: &InviteReply, token_only: bool) {
    let token = invite.token.as_deref().unwrap_or_default();
    if token_only {
        output::raw_value(token);
        return;
    }
    let url = invite.redeem_url.clone().unwrap_or_default();
    let kind = if invite.rotation {
        "Rotation invite"
    } else {
        "Invite"
    };
    output::success(format!(
        "{kind} for agent \"{}\" created (role {}, vaults: {}); single use, expires {}.",
        invite.agent_name,
        invite.role,
        vaults_line(&invite.vaults),
        invite.expires_at
    ));
    let prompt = onboarding_prompt(invite, &url);
    println!("\nGive this to your agent:\n-----\n{prompt}-----");
    if copy_to_clipboard(&prompt) {
        println!("(copied to the clipboard)");
    }
}

#[derive(Deserialize)]
struct AgentInfo {
    name: String,
    role: String,
    status: String,
    active_sessions: i64,
    vaults: Vec<VaultRole>,
    created_by: Option<String>,
    created_at: String,
}

pub async fn run(command: AgentCommand, context: &Context) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    match command {
        AgentCommand::Invite(args) => match args.command {
            Some(AgentInviteCommand::List { status }) => {
                let path = match &status {
                    Some(s) => format!("/v1/agents/invites?status={}", segment(s)),
                    None => "/v1/agents/invites".into(),
                };
                let reply: serde_json::Value = client.get(&path).await?;
                let invites: Vec<InviteReply> = serde_json::from_value(reply["invites"].clone())?;
                if invites.is_empty() {
                    println!("No agent invites.");
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = invites
                    .iter()
                    .map(|i| {
                        vec![
                            i.agent_name.clone(),
                            if i.rotation {
                                "rotation".into()
                            } else {
                                i.role.clone()
                            },
                            i.status.clone(),
                            vaults_line(&i.vaults),
                            format!("…{}", i.token_suffix),
                            i.expires_at.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &["AGENT", "ROLE", "STATUS", "VAULTS", "TOKEN", "EXPIRES"],
                    &rows,
                );
            }
            Some(AgentInviteCommand::Revoke { token_suffix }) => {
                let reply: serde_json::Value = client
                    .delete(&format!(
                        "/v1/agents/invites/{}",
                        segment(token_suffix.trim_start_matches('…'))
                    ))
                    .await?;
                output::success(format!(
                    "Revoked the invite for agent \"{}\".",
                    reply["agent_name"].as_str().unwrap_or("?")
                ));
            }
            None => {
                let body = json!({
                    "name": args.name.unwrap_or_default(),
                    "role": args.role,
                    "vaults": vault_assignments(&args.vault, "proxy")?,
                    "ttl_seconds": crate::cli::duration::parse_seconds(&args.invite_ttl)?,
                });
                let invite: InviteReply = client.post("/v1/agents/invites", &body).await?;
                print_invite(&invite, args.token_only);
            }
        },
        AgentCommand::List => {
            let reply: serde_json::Value = client.get("/v1/agents").await?;
            let agents: Vec<AgentInfo> = serde_json::from_value(reply["agents"].clone())?;
            if agents.is_empty() {
                println!(
                    "No agents. Invite one with `agent-vault agent invite <name> --vault default:proxy`."
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.role.clone(),
                        a.status.clone(),
                        vaults_line(&a.vaults),
                        a.created_at.clone(),
                    ]
                })
                .collect();
            output::table(&["NAME", "ROLE", "STATUS", "VAULTS", "CREATED"], &rows);
        }
        AgentCommand::Info { name } => {
            let a: AgentInfo = client
                .get(&format!("/v1/agents/{}", segment(&name)))
                .await?;
            println!("Agent:     {}", a.name);
            println!("Role:      {}", a.role);
            println!("Status:    {}", a.status);
            println!("Sessions:  {} active", a.active_sessions);
            println!("Vaults:    {}", vaults_line(&a.vaults));
            println!("Invited by: {}", a.created_by.as_deref().unwrap_or("-"));
            println!("Created:   {}", a.created_at);
        }
        AgentCommand::Delete { name } => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/agents/{}", segment(&name)))
                .await?;
            output::success(format!("Deleted agent \"{name}\" and all its sessions."));
        }
        AgentCommand::Rotate { name } => {
            let invite: InviteReply = client
                .post(&format!("/v1/agents/{}/rotate", segment(&name)), &json!({}))
                .await?;
            print_invite(&invite, false);
            println!("The agent's current token keeps working until this invite is redeemed.");
        }
        AgentCommand::Rename { name, new_name } => {
            let _: serde_json::Value = client
                .post(
                    &format!("/v1/agents/{}/rename", segment(&name)),
                    &json!({ "name": new_name }),
                )
                .await?;
            output::success(format!("Renamed agent \"{name}\" to \"{new_name}\"."));
        }
        AgentCommand::SetRole { name, role } => {
            let _: serde_json::Value = client
                .post(
                    &format!("/v1/agents/{}/role", segment(&name)),
                    &json!({ "role": role }),
                )
                .await?;
            output::success(format!("Agent \"{name}\" is now {role}."));
        }
    }
    Ok(())
}
