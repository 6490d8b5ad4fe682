//! A vault's Members tab: its users (and pending invites) and agents with their roles; vault
//! admins add, remove and change roles. The rules are [`crate::ops::members`]'.

use axum::Form;
use axum::extract::Path;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{action_button, badge, csrf, table, vault_role_select};
use super::session::Web;
use super::vaults::{Tab, vault_page};
use crate::ops::members;
use crate::store::VaultRole;

/// `GET /vaults/{vault}/members`.
pub async fn page(web: Web, Path(vault): Path<String>) -> Response {
    let caller = signed_in!(web);
    let found = match members::list(&web.state, &caller, &vault).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, None, Tab::Members, Err(e)),
    };
    let admin = found.access.require(VaultRole::Admin).is_ok();
    let base = format!("/vaults/{vault}/members");
    let body = html! {
        h2 { "People" }
        @if found.users.is_empty() && found.invited.is_empty() {
            p.muted { "No users." }
        } @else {
            (table("People in this vault", &["Email", "Role", ""], html! {
                @for (i, (email, role)) in found.users.iter().enumerate() {
                    tr {
                        td { (email) }
                        td {
                            @if admin {
                                form.row method="post" action={ (base) "/users/role" } {
                                    (csrf(&web))
                                    input type="hidden" name="email" value=(email);
                                    label.visually-hidden for={ "user-role-" (i) } { "Role of " (email) }
                                    (vault_role_select("role", &format!("user-role-{i}"), *role, true))
                                    button.secondary.small type="submit" { "Change" }
                                }
                            } @else { (badge(role.as_str())) }
                        }
                        td {
                            @if admin {
                                (action_button(&web, &format!("{base}/users/remove"), "Remove", &[("email", email)],
                                    Some(&format!("Remove {email} from vault {vault}?")), true))
                            }
                        }
                    }
                }
                @for (email, role) in &found.invited {
                    tr { td { (email) } td { (badge(role.as_str())) " " (badge("pending")) } td { span.muted { "invited" } } }
                }
            }))
        }
        @if admin {
            form.row method="post" action={ (base) "/users" } aria-label="Add a person" {
                (csrf(&web))
                label for="add-email" { "Add a person by email"
                    input #add-email type="email" name="email" required autocomplete="off";
                }
                label for="add-role" { "Role" (vault_role_select("role", "add-role", VaultRole::Member, true)) }
                button type="submit" { "Add" }
            }
            p.hint { "They need an account first; invite new people under Manage instance (owners) or with " code { "agent-vault user invite" } "." }
        }
        h2 { "Agents" }
        @if found.agents.is_empty() {
            p.muted { "No agents." }
        } @else {
            (table("Agents in this vault", &["Agent", "Role", ""], html! {
                @for (i, (name, role)) in found.agents.iter().enumerate() {
                    tr {
                        td { (name) }
                        td {
                            @if admin {
                                form.row method="post" action={ (base) "/agents/role" } {
                                    (csrf(&web))
                                    input type="hidden" name="name" value=(name);
                                    label.visually-hidden for={ "agent-role-" (i) } { "Role of agent " (name) }
                                    (vault_role_select("role", &format!("agent-role-{i}"), *role, false))
                                    button.secondary.small type="submit" { "Change" }
                                }
                            } @else { (badge(role.as_str())) }
                        }
                        td {
                            @if admin {
                                (action_button(&web, &format!("{base}/agents/remove"), "Remove", &[("name", name)],
                                    Some(&format!("Remove agent {name} from vault {vault}?")), true))
                            }
                        }
                    }
                }
            }))
        }
        @if admin {
            form.row method="post" action={ (base) "/agents" } aria-label="Add an agent" {
                (csrf(&web))
                label for="add-agent" { "Add an agent by name"
                    input #add-agent type="text" name="name" required autocomplete="off";
                }
                label for="add-agent-role" { "Role" (vault_role_select("role", "add-agent-role", VaultRole::Proxy, false)) }
                button type="submit" { "Add" }
            }
            p.hint { "Agents usually need only proxy: it lets them send requests through the broker and file proposals." }
        }
    };
    vault_page(web, &vault, Some(&found.access), Tab::Members, Ok(body))
}

#[derive(Deserialize)]
pub struct UserForm {
    email: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
pub struct AgentForm {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

fn back(vault: &str) -> String {
    format!("/vaults/{vault}/members")
}

/// `POST /vaults/{vault}/members/users`.
pub async fn add_user(web: Web, Path(vault): Path<String>, Form(form): Form<UserForm>) -> Response {
    let caller = signed_in!(web);
    let role = form.role.as_deref().unwrap_or("member");
    let outcome = members::add_user(&web.state, &caller, &vault, &form.email, role)
        .await
        .map(|added| match added.caution {
            Some(caution) => format!("{} added as {}. Note: {caution}.", added.email, added.role),
            None => format!("{} added as {}.", added.email, added.role),
        });
    web.finish(&back(&vault), outcome)
}

/// `POST /vaults/{vault}/members/users/role`.
pub async fn user_role(
    web: Web,
    Path(vault): Path<String>,
    Form(form): Form<UserForm>,
) -> Response {
    let caller = signed_in!(web);
    let role = form.role.as_deref().unwrap_or("member");
    let outcome = members::change_user(&web.state, &caller, &vault, &form.email, Some(role))
        .await
        .map(|email| format!("{email} is now {role}."));
    web.finish(&back(&vault), outcome)
}

/// `POST /vaults/{vault}/members/users/remove`.
pub async fn remove_user(
    web: Web,
    Path(vault): Path<String>,
    Form(form): Form<UserForm>,
) -> Response {
    let caller = signed_in!(web);
    let outcome = members::change_user(&web.state, &caller, &vault, &form.email, None)
        .await
        .map(|email| format!("{email} removed from the vault."));
    web.finish(&back(&vault), outcome)
}

/// `POST /vaults/{vault}/members/agents`.
pub async fn add_agent(
    web: Web,
    Path(vault): Path<String>,
    Form(form): Form<AgentForm>,
) -> Response {
    let caller = signed_in!(web);
    let outcome = members::add_agent(
        &web.state,
        &caller,
        &vault,
        form.name.trim(),
        form.role.as_deref(),
    )
    .await
    .map(|role| format!("Agent {} added as {role}.", form.name.trim()));
    web.finish(&back(&vault), outcome)
}

/// `POST /vaults/{vault}/members/agents/role`.
pub async fn agent_role(
    web: Web,
    Path(vault): Path<String>,
    Form(form): Form<AgentForm>,
) -> Response {
    let caller = signed_in!(web);
    let outcome = match members::agent_role(form.role.as_deref()) {
        Ok(role) => members::change_agent(&web.state, &caller, &vault, &form.name, Some(role))
            .await
            .map(|()| format!("Agent {} is now {role}.", form.name)),
        Err(e) => Err(e),
    };
    web.finish(&back(&vault), outcome)
}

/// `POST /vaults/{vault}/members/agents/remove`.
pub async fn remove_agent(
    web: Web,
    Path(vault): Path<String>,
    Form(form): Form<AgentForm>,
) -> Response {
    let caller = signed_in!(web);
    let outcome = members::change_agent(&web.state, &caller, &vault, &form.name, None)
        .await
        .map(|()| format!("Agent {} removed from the vault.", form.name));
    web.finish(&back(&vault), outcome)
}
