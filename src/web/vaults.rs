//! Vaults: the list (with pending-proposal counts) and creation, the frame of a vault's
//! tabs, and its Settings tab (rename, unmatched-host policy, delete). The rules are
//! [`crate::ops::vaults`]' and [`crate::ops::vault_settings`]'.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::capitalized;
use super::layout::{action_button, badge, csrf, page};
use super::session::Web;
use crate::broker::UnmatchedPolicy;
use crate::ops::access::VaultAccess;
use crate::ops::{OpError, vault_settings, vaults};

/// The tabs of a vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Services,
    Credentials,
    Proposals,
    Logs,
    Members,
    Settings,
}

impl Tab {
    const ALL: [Tab; 6] = [
        Tab::Services,
        Tab::Credentials,
        Tab::Proposals,
        Tab::Logs,
        Tab::Members,
        Tab::Settings,
    ];

    fn label(self) -> &'static str {
        match self {
            Tab::Services => "Services",
            Tab::Credentials => "Credentials",
            Tab::Proposals => "Proposals",
            Tab::Logs => "Logs",
            Tab::Members => "Members",
            Tab::Settings => "Settings",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Tab::Services => "services",
            Tab::Credentials => "credentials",
            Tab::Proposals => "proposals",
            Tab::Logs => "logs",
            Tab::Members => "members",
            Tab::Settings => "settings",
        }
    }
}

/// A vault page: its title, role, tabs, and the tab's body — or the error that stopped it
/// (with a Join button when an owner without a grant is refused).
pub fn vault_page(
    web: Web,
    vault: &str,
    access: Option<&VaultAccess>,
    tab: Tab,
    body: Result<Markup, OpError>,
) -> Response {
    let status = body.as_ref().map_or_else(|e| e.status, |_| StatusCode::OK);
    let owner_outside = access.map_or(web.is_owner(), |a| a.owner && a.role.is_none());
    let content = html! {
        @if let Some(access) = access {
            p.lede {
                "Your role: "
                @match access.role {
                    Some(role) => (badge(role.as_str())),
                    None => (badge("none")),
                }
                @if access.owner { " · you are an instance owner" }
            }
        }
        nav.tabs aria-label="Vault sections" {
            ul {
                @for t in Tab::ALL {
                    li {
                        a href={ "/vaults/" (vault) "/" (t.path()) } aria-current=[(t == tab).then_some("page")] { (t.label()) }
                    }
                }
            }
        }
        @match &body {
            Ok(markup) => (markup),
            Err(e) => {
                p.notice.error role="alert" { (capitalized(&e.message)) }
                @if owner_outside && e.status == StatusCode::FORBIDDEN {
                    (action_button(&web, &format!("/vaults/{vault}/join"), "Join this vault as admin", &[], None, false))
                }
            }
        }
    };
    let markup = page(&web, &format!("Vault {vault}"), content);
    web.render(status, markup)
}

/// `GET /vaults`.
pub async fn list(web: Web) -> Response {
    let caller = signed_in!(web);
    let rows = match vaults::list(&web.state, &caller).await {
        Ok(rows) => rows,
        Err(e) => return super::auth::failure(web, e),
    };
    let body = html! {
        @if rows.is_empty() {
            p.muted { "You are not in any vault yet. Create one below, or ask a vault admin to add you." }
        }
        ul.card-list {
            @for row in &rows {
                li {
                    div {
                        a.title href={ "/vaults/" (row.vault.name) } { (row.vault.name) }
                        " "
                        @match row.role {
                            Some(role) => (badge(role.as_str())),
                            None => span.muted { "not a member" },
                        }
                    }
                    div.actions {
                        @if row.pending_proposals > 0 {
                            a href={ "/vaults/" (row.vault.name) "/proposals" } {
                                span.badge.badge-count { (row.pending_proposals) " pending proposal" @if row.pending_proposals != 1 { "s" } }
                            }
                        }
                        @if row.role.is_none() && web.is_owner() {
                            (action_button(&web, &format!("/vaults/{}/join", row.vault.name), "Join", &[], None, false))
                        }
                    }
                }
            }
        }
        section.panel aria-labelledby="new-vault" {
            h2 #new-vault { "New vault" }
            form.row method="post" action="/vaults" {
                (csrf(&web))
                label for="name" { "Name" span.hint { "Lowercase letters, digits and hyphens." }
                    input #name type="text" name="name" required pattern="[a-z0-9]+(-[a-z0-9]+)*" maxlength="64" autocomplete="off";
                }
                button type="submit" { "Create vault" }
            }
        }
    };
    let markup = page(&web, "Vaults", body);
    web.render(StatusCode::OK, markup)
}

#[derive(Deserialize)]
pub struct NameForm {
    name: String,
}

/// `POST /vaults`.
pub async fn create(web: Web, Form(form): Form<NameForm>) -> Response {
    let caller = signed_in!(web);
    match vaults::create(&web.state, &caller, form.name.trim()).await {
        Ok(vault) => {
            let to = format!("/vaults/{}/services", vault.name);
            web.finish(
                &to,
                Ok(format!("Vault {} created; you are its admin.", vault.name)),
            )
        }
        Err(e) => web.finish("/vaults", Err(e)),
    }
}

/// `GET /vaults/{vault}`: the first tab.
pub async fn open(web: Web, Path(vault): Path<String>) -> Response {
    web.redirect(&format!("/vaults/{vault}/services"))
}

/// `POST /vaults/{vault}/join` (owners).
pub async fn join(web: Web, Path(vault): Path<String>) -> Response {
    let caller = signed_in!(web);
    let outcome = vaults::join(&web.state, &caller, &vault)
        .await
        .map(|()| format!("You joined vault {vault} as admin."));
    web.finish(&format!("/vaults/{vault}/services"), outcome)
}

/// `GET /vaults/{vault}/settings`.
pub async fn settings(web: Web, Path(vault): Path<String>) -> Response {
    let caller = signed_in!(web);
    let (access, policy) = match vault_settings::policy(&web.state, &caller, &vault).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, None, Tab::Settings, Err(e)),
    };
    let default = vaults::is_default(&vault);
    let base = format!("/vaults/{vault}/settings");
    let body = html! {
        section.panel aria-labelledby="policy" {
            h2 #policy { "Hosts no service matches" }
            p.muted { "What the broker does with a request to a host that none of this vault's services covers. Changing it needs the admin role." }
            form.stack method="post" action={ (base) "/policy" } {
                (csrf(&web))
                fieldset {
                    legend { "Unmatched-host policy" }
                    label.check { input type="radio" name="policy" value="forward" checked[policy == UnmatchedPolicy::Forward]; "Forward it without credentials (default)" }
                    label.check { input type="radio" name="policy" value="deny" checked[policy == UnmatchedPolicy::Deny]; "Refuse it (403), so agents reach only listed services" }
                }
                div.actions { button type="submit" { "Save policy" } }
            }
        }
        @if default {
            p.muted { "The default vault cannot be renamed or deleted." }
        } @else {
            section.panel aria-labelledby="rename" {
                h2 #rename { "Rename" }
                form.row method="post" action={ (base) "/rename" } {
                    (csrf(&web))
                    label for="new-name" { "New name"
                        input #new-name type="text" name="name" value=(vault) required pattern="[a-z0-9]+(-[a-z0-9]+)*" maxlength="64";
                    }
                    button type="submit" { "Rename" }
                }
                p.hint { "Agents and tokens name vaults: update them after a rename." }
            }
            section.panel aria-labelledby="delete" {
                h2 #delete { "Delete this vault" }
                p { "Deletes its services, credentials, proposals, log and memberships. This cannot be undone." }
                form.row method="post" action={ (base) "/delete" } data-confirm={ "Delete vault " (vault) " and everything in it?" } {
                    (csrf(&web))
                    label for="confirm" { "Type the vault's name to confirm"
                        input #confirm type="text" name="confirm" required autocomplete="off";
                    }
                    button.danger type="submit" { "Delete vault" }
                }
            }
        }
    };
    vault_page(web, &vault, Some(&access), Tab::Settings, Ok(body))
}

/// `POST /vaults/{vault}/settings/rename`.
pub async fn rename(web: Web, Path(vault): Path<String>, Form(form): Form<NameForm>) -> Response {
    let caller = signed_in!(web);
    let new_name = form.name.trim().to_owned();
    match vaults::rename(&web.state, &caller, &vault, &new_name).await {
        Ok(()) => web.finish(
            &format!("/vaults/{new_name}/settings"),
            Ok(format!("Vault {vault} is now {new_name}.")),
        ),
        Err(e) => web.finish(&format!("/vaults/{vault}/settings"), Err(e)),
    }
}

#[derive(Deserialize)]
pub struct PolicyForm {
    policy: String,
}

/// `POST /vaults/{vault}/settings/policy`.
pub async fn policy(web: Web, Path(vault): Path<String>, Form(form): Form<PolicyForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = vault_settings::set_policy(&web.state, &caller, &vault, &form.policy)
        .await
        .map(|(_, p)| format!("Unmatched hosts: {}.", p.as_str()));
    web.finish(&format!("/vaults/{vault}/settings"), outcome)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: String,
}

/// `POST /vaults/{vault}/settings/delete`.
pub async fn delete(web: Web, Path(vault): Path<String>, Form(form): Form<DeleteForm>) -> Response {
    let caller = signed_in!(web);
    if form.confirm.trim() != vault {
        return web.finish(
            &format!("/vaults/{vault}/settings"),
            Err(OpError::invalid(format!(
                "type \"{vault}\" to confirm the deletion"
            ))),
        );
    }
    match vaults::delete(&web.state, &caller, &vault).await {
        Ok(v) => web.finish("/vaults", Ok(format!("Vault {} deleted.", v.name))),
        Err(e) => web.finish(&format!("/vaults/{vault}/settings"), Err(e)),
    }
}
