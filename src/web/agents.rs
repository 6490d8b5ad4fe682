//! Agents: invite one (showing the prompt to hand the agent, with a copy button), pending
//! invites, and the agents the viewer manages (rotate, rename, instance role, delete). The
//! rules are [`crate::ops::agents`]' and [`crate::ops::invites`]'.
//!
//! Stance: an invite's token appears once, in the answer to the form that made it (a POST on
//! a `no-store` page); afterwards only its last characters are shown.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    VAULT_FIELD, action_button, badge, csrf, field, page, table, vault_choices, when,
};
use super::session::Web;
use crate::ops::invites::{self, AgentInviteRequest, CreatedInvite, onboarding_prompt};
use crate::ops::{OpError, agents, rfc3339, vaults};
use crate::store::invites::{InviteKind, InviteStatus};
use crate::store::{InstanceRole, VaultRole};

const LIFETIMES: [(i64, &str); 4] = [
    (15 * 60, "15 minutes"),
    (3600, "1 hour"),
    (24 * 3600, "1 day"),
    (7 * 24 * 3600, "7 days"),
];

/// `GET /agents`.
pub async fn list(web: Web) -> Response {
    let caller = signed_in!(web);
    let state = web.state.clone();
    let loaded = async {
        Ok::<_, OpError>((
            agents::list(&state, &caller).await?,
            invites::list(&state, &caller, InviteKind::Agent, Some("pending")).await?,
            vaults::list(&state, &caller).await?,
        ))
    }
    .await;
    let (all, pending, vault_rows) = match loaded {
        Ok(found) => found,
        Err(e) => return super::auth::failure(web, e),
    };
    let owner = web.is_owner();
    let grantable: Vec<String> = vault_rows
        .iter()
        .filter(|v| owner || v.role == Some(VaultRole::Admin))
        .map(|v| v.vault.name.clone())
        .collect();
    let body = html! {
        p.lede { "Agents reach credentials only through the broker. Invite one, hand it the prompt, and it redeems the invite for its own token." }
        section.panel aria-labelledby="invite" {
            h2 #invite { "Invite an agent" }
            form.stack method="post" action="/agents/invite" {
                (csrf(&web))
                label for="agent-name" { "Name" span.hint { "Lowercase letters, digits and hyphens, e.g. claude-laptop." } }
                input #agent-name type="text" name="name" required pattern="[a-z0-9]+(-[a-z0-9]+)*" maxlength="64" autocomplete="off";
                @if owner {
                    label for="agent-role" { "Instance role" }
                    select #agent-role name="role" {
                        option value="member" selected { "member" }
                        option value="owner" { "owner (can manage the instance)" }
                    }
                }
                @if !grantable.is_empty() {
                    fieldset {
                        legend { "Vault access" }
                        @for (i, name) in grantable.iter().enumerate() {
                            label for={ "vault-" (i) } { (name)
                                select id={ "vault-" (i) } name={ (VAULT_FIELD) (name) } {
                                    option value="" { "no access" }
                                    option value="proxy" selected[i == 0] { "proxy" }
                                    option value="member" { "member" }
                                    option value="admin" { "admin" }
                                }
                            }
                        }
                    }
                }
                label for="ttl" { "Invite expires after" }
                select #ttl name="ttl_seconds" {
                    @for (secs, label) in LIFETIMES { option value=(secs) { (label) } }
                }
                div.actions { button type="submit" { "Create invite" } }
            }
        }
        @if !pending.is_empty() {
            h2 { "Pending invites" }
            (table("Pending agent invites", &["Agent", "Vaults", "Expires", "Token ends", ""], html! {
                @for (invite, _) in &pending {
                    tr {
                        td { (invite.subject) @if invite.agent_id.is_some() { " " (badge("rotation")) } }
                        td { @for (_, name, role) in &invite.vaults { (name) " (" (role.as_str()) ") " } }
                        td { (when(invite.expires_at)) }
                        td.mono { "…" (invite.token_suffix) }
                        td { (action_button(&web, "/agents/invites/revoke", "Revoke", &[("suffix", &invite.token_suffix)], None, true)) }
                    }
                }
            }))
        }
        h2 { "Agents" }
        @if all.is_empty() {
            p.muted { "No agents yet." }
        } @else {
            (table("Agents", &["Agent", "Role", "Vaults", "Token", "Invited by", "Manage"], html! {
                @for view in &all {
                    @let name = &view.agent.name;
                    tr {
                        td { strong { (name) } br; span.muted { "since " (when(view.agent.created_at)) } }
                        td {
                            @if owner {
                                form.row method="post" action={ "/agents/" (name) "/role" } {
                                    (csrf(&web))
                                    label.visually-hidden for={ "role-" (name) } { "Instance role of " (name) }
                                    select id={ "role-" (name) } name="role" {
                                        option value="member" selected[view.agent.role == InstanceRole::Member] { "member" }
                                        option value="owner" selected[view.agent.role == InstanceRole::Owner] { "owner" }
                                    }
                                    button.secondary.small type="submit" { "Set" }
                                }
                            } @else { (badge(view.agent.role.as_str())) }
                        }
                        td { @for (v, r) in &view.grants { (v.name) " (" (r.as_str()) ") " } }
                        td { (badge(if view.active_sessions > 0 { "active" } else { "no token" })) }
                        td { (view.created_by.as_deref().unwrap_or("")) }
                        td {
                            div.actions {
                                (action_button(&web, &format!("/agents/{name}/rotate"), "Rotate token", &[], None, false))
                                (action_button(&web, &format!("/agents/{name}/delete"), "Delete", &[],
                                    Some(&format!("Delete agent {name}? Its token stops working at once.")), true))
                            }
                            details {
                                summary { "Rename" }
                                form.row method="post" action={ "/agents/" (name) "/rename" } {
                                    (csrf(&web))
                                    label for={ "rename-" (name) } { "New name"
                                        input id={ "rename-" (name) } type="text" name="name" value=(name) required pattern="[a-z0-9]+(-[a-z0-9]+)*";
                                    }
                                    button.secondary type="submit" { "Rename" }
                                }
                            }
                        }
                    }
                }
            }))
        }
    };
    let markup = page(&web, "Agents", body);
    web.render(StatusCode::OK, markup)
}

/// The page showing a new invite's prompt, once.
fn prompt_page(web: Web, created: &CreatedInvite) -> Response {
    let invite = &created.invite;
    let url = created.link(&web.state.config.base_url);
    let vaults: Vec<(String, String)> = invite
        .vaults
        .iter()
        .map(|(_, name, role)| (name.clone(), role.as_str().to_owned()))
        .collect();
    let prompt = onboarding_prompt(
        &invite.subject,
        invite.agent_id.is_some(),
        &rfc3339(invite.expires_at),
        &vaults,
        &url,
    );
    let body: Markup = html! {
        p.notice.ok role="status" {
            @if invite.agent_id.is_some() { "Rotation invite" } @else { "Invite" }
            " for agent " strong { (invite.subject) } " created: single use, expires " (when(invite.expires_at)) "."
        }
        h2 { "Give this to your agent" }
        p.muted { "It contains a single-use invite, shown only on this page. The agent redeems it for its own token." }
        div.secret {
            pre #agent-prompt { (prompt) }
            button.secondary type="button" data-copy="agent-prompt" hidden { "Copy" }
        }
        p { a href="/agents" { "Back to the agents" } }
    };
    let markup = page(&web, "Agent invite", body);
    web.render(StatusCode::CREATED, markup)
}

/// `POST /agents/invite`.
pub async fn invite(web: Web, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let caller = signed_in!(web);
    let field = |name: &str| field(&fields, name);
    let vaults = vault_choices(&fields);
    let request = AgentInviteRequest {
        name: field("name").unwrap_or_default(),
        role: field("role").filter(|r| !r.is_empty()),
        vaults,
        ttl_seconds: field("ttl_seconds").and_then(|t| t.parse().ok()),
    };
    match invites::invite_agent(&web.state, &caller, request).await {
        Ok(created) => prompt_page(web, &created),
        Err(e) => web.finish("/agents", Err(e)),
    }
}

#[derive(Deserialize)]
pub struct SuffixForm {
    suffix: String,
}

/// `POST /agents/invites/revoke`.
pub async fn revoke_invite(web: Web, Form(form): Form<SuffixForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = invites::revoke(&web.state, &caller, InviteKind::Agent, &form.suffix)
        .await
        .map(|name| format!("Invite for agent {name} revoked."));
    web.finish("/agents", outcome)
}

/// `POST /agents/{name}/rotate`: a rotation invite, shown once.
pub async fn rotate(web: Web, Path(name): Path<String>) -> Response {
    let caller = signed_in!(web);
    match agents::rotate(&web.state, &caller, &name, None).await {
        Ok(created) if created.invite.status == InviteStatus::Pending => prompt_page(web, &created),
        Ok(_) => web.finish(
            "/agents",
            Err(OpError::internal("the invite was not created")),
        ),
        Err(e) => web.finish("/agents", Err(e)),
    }
}

#[derive(Deserialize)]
pub struct NameForm {
    name: String,
}

/// `POST /agents/{name}/rename`.
pub async fn rename(web: Web, Path(name): Path<String>, Form(form): Form<NameForm>) -> Response {
    let caller = signed_in!(web);
    let new_name = form.name.trim().to_owned();
    let outcome = agents::rename(&web.state, &caller, &name, &new_name)
        .await
        .map(|()| format!("Agent {name} is now {new_name}."));
    web.finish("/agents", outcome)
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

/// `POST /agents/{name}/role` (owners).
pub async fn set_role(web: Web, Path(name): Path<String>, Form(form): Form<RoleForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = agents::set_role(&web.state, &caller, &name, &form.role)
        .await
        .map(|role| format!("Agent {name} is now {role}."));
    web.finish("/agents", outcome)
}

/// `POST /agents/{name}/delete`.
pub async fn delete(web: Web, Path(name): Path<String>) -> Response {
    let caller = signed_in!(web);
    let outcome = agents::delete(&web.state, &caller, &name)
        .await
        .map(|()| format!("Agent {name} deleted."));
    web.finish("/agents", outcome)
}
