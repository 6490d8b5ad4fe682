//! The page shell and the small components every page is built from. Markup is written with
//! `maud`, which escapes every interpolated value; nothing here builds HTML from strings.
//!
//! Accessibility: a skip link, one `h1` per page, labels on every field, `aria-current` on
//! the current navigation entry, notices in live regions, tables inside scrollable regions at
//! phone width.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::{CSRF_FIELD, Web};
use crate::store::VaultRole;

/// A complete page: head, header with navigation, notice, the page's `h1` and body.
pub fn page(web: &Web, title: &str, body: Markup) -> Markup {
    shell(Some(web), title, body)
}

fn shell(web: Option<&Web>, title: &str, body: Markup) -> Markup {
    let signed_in = web.and_then(Web::viewer_email);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · agent-vault" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "agent-vault" }
                    @if let (Some(web), Some(email)) = (web, signed_in) {
                        nav aria-label="Main" {
                            ul {
                                (nav_item(web, "/vaults", "Vaults"))
                                (nav_item(web, "/agents", "Agents"))
                                @if web.is_owner() {
                                    (nav_item(web, "/manage", "Manage instance"))
                                }
                                (nav_item(web, "/account", "Account"))
                            }
                        }
                        form.signout method="post" action="/logout" {
                            (csrf(web))
                            span.who { (email) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    @if let Some(flash) = web.and_then(|w| w.flash.as_ref()) {
                        @if flash.error {
                            p.notice.error role="alert" { (flash.text) }
                        } @else {
                            p.notice.ok role="status" { (flash.text) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn nav_item(web: &Web, href: &str, label: &str) -> Markup {
    let current = web.path == href || web.path.starts_with(&format!("{href}/"));
    html! {
        li { a href=(href) aria-current=[current.then_some("page")] { (label) } }
    }
}

/// A page outside the session machinery (CSRF refusals, failures before the context exists).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        p.notice.error role="alert" { (message) }
        p { a href="/" { "Back to agent-vault" } }
    };
    (status, shell(None, title, body)).into_response()
}

/// The hidden CSRF field of a form.
pub fn csrf(web: &Web) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(web.csrf); }
}

/// A one-button form posting to `action` (delete, enable, join…), with optional hidden
/// fields and a confirmation question (asked by the script when it runs).
pub fn action_button(
    web: &Web,
    action: &str,
    label: &str,
    fields: &[(&str, &str)],
    confirm: Option<&str>,
    danger: bool,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(web))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button.small.danger[danger] type="submit" { (label) }
        }
    }
}

/// A `<select>` of vault roles with `selected` chosen; users never get `proxy`.
pub fn vault_role_select(name: &str, id: &str, selected: VaultRole, for_user: bool) -> Markup {
    let roles: &[VaultRole] = if for_user {
        &[VaultRole::Member, VaultRole::Admin]
    } else {
        &[VaultRole::Proxy, VaultRole::Member, VaultRole::Admin]
    };
    html! {
        select name=(name) id=(id) {
            @for role in roles {
                option value=(role.as_str()) selected[*role == selected] { (role.as_str()) }
            }
        }
    }
}

/// A table whose rows stack into cards on narrow screens.
pub fn table(caption: &str, head: &[&str], rows: Markup) -> Markup {
    table_markup(caption, head, None, true, rows)
}

/// A wide table (the request log) in a region that scrolls sideways on narrow screens; its
/// body has an id (the live tail adds rows to it).
pub fn table_with_id(caption: &str, head: &[&str], body_id: Option<&str>, rows: Markup) -> Markup {
    table_markup(caption, head, body_id, false, rows)
}

fn table_markup(
    caption: &str,
    head: &[&str],
    body_id: Option<&str>,
    stack: bool,
    rows: Markup,
) -> Markup {
    html! {
        div.scroll role="region" aria-label=(caption) tabindex="0" {
            table.stack[stack] {
                caption.visually-hidden { (caption) }
                thead { tr { @for h in head { th scope="col" { (h) } } } }
                tbody id=[body_id] { (rows) }
            }
        }
    }
}

/// A small label such as a role or a status.
pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge badge-" (text.replace(' ', "-")) } { (text) } }
}

/// Seconds since the epoch as a short UTC time (the log's column says UTC).
pub fn when_short(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Seconds since the epoch as a readable UTC time.
pub fn when(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Vault choices in a form (an invite's vault access) are `<select>`s named `vault:<name>`.
pub const VAULT_FIELD: &str = "vault:";

/// The trimmed value of field `name` in a posted form.
pub fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The vaults chosen in a form: (vault, role) for each `vault:<name>` not left at "no access".
pub fn vault_choices(fields: &[(String, String)]) -> Vec<(String, Option<String>)> {
    fields
        .iter()
        .filter_map(|(n, role)| {
            let vault = n.strip_prefix(VAULT_FIELD)?;
            (!role.is_empty()).then(|| (vault.to_owned(), Some(role.clone())))
        })
        .collect()
}
