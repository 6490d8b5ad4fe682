//! A vault's Credentials tab: the keys (with the services that use them), a form to set a
//! value, delete, and reveal one value on request. The rules are
//! [`crate::ops::credentials`]'.
//!
//! Stance: a value is rendered only in the answer to an explicit reveal (a POST, so it is
//! never in a URL or the history), by someone with the member role, on a `no-store` page. The
//! set form's value field is a password input; nothing submitted is written back.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{action_button, csrf, table};
use super::session::Web;
use super::vaults::{Tab, vault_page};
use crate::crypto::SecretString;
use crate::ops::{credentials, services};
use crate::store::VaultRole;

/// `GET /vaults/{vault}/credentials`.
pub async fn list(web: Web, Path(vault): Path<String>) -> Response {
    let caller = signed_in!(web);
    let (access, all) = match services::list(&web.state, &caller, &vault).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, None, Tab::Credentials, Err(e)),
    };
    let (keys, _) = match credentials::list(&web.state, &caller, &vault, false).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, Some(&access), Tab::Credentials, Err(e)),
    };
    let member = access.require(VaultRole::Member).is_ok();
    let mut used_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for service in &all {
        for key in service.credential_keys() {
            used_by
                .entry(key.to_owned())
                .or_default()
                .push(service.matcher());
        }
    }
    let missing: Vec<&String> = used_by.keys().filter(|k| !keys.contains(k)).collect();
    let base = format!("/vaults/{vault}/credentials");
    let body = html! {
        p.muted { "Values are stored encrypted. Agents never see them: the broker attaches them to requests." }
        @if !missing.is_empty() {
            p.notice.warn { "Services use keys that are not set yet: " @for k in &missing { code { (k) } " " } }
        }
        @if keys.is_empty() {
            p { "No credentials yet." }
        } @else {
            (table("Credentials", &["Key", "Used by", ""], html! {
                @for key in &keys {
                    tr {
                        td { code { (key) } }
                        td {
                            @match used_by.get(key) {
                                Some(list) => { @for m in list { code { (m) } " " } }
                                None => span.muted { "no service" },
                            }
                        }
                        td {
                            @if member {
                                div.actions {
                                    (action_button(&web, &format!("{base}/reveal"), "Reveal", &[("key", key)], None, false))
                                    (action_button(&web, &format!("{base}/delete"), "Delete", &[("key", key)],
                                        Some(&format!("Delete credential {key}? Services that use it stop working.")), true))
                                }
                            }
                        }
                    }
                }
            }))
        }
        @if member {
            section.panel aria-labelledby="set" {
                h2 #set { "Set a credential" }
                form.stack method="post" action=(base) {
                    (csrf(&web))
                    label for="key" { "Key " span.hint { "UPPER_SNAKE_CASE, as the services name it. Setting an existing key replaces its value." } }
                    input #key type="text" name="key" required pattern="[A-Z][A-Z0-9_]*" autocomplete="off" spellcheck="false"
                        list="wanted-keys";
                    datalist #wanted-keys { @for k in &missing { option value=(k) {} } }
                    label for="value" { "Value" }
                    input #value type="password" name="value" required autocomplete="off";
                    div.actions { button type="submit" { "Save credential" } }
                }
            }
        } @else {
            p.muted { "Setting, revealing and deleting credentials needs the member role on this vault." }
        }
    };
    vault_page(web, &vault, Some(&access), Tab::Credentials, Ok(body))
}

#[derive(Deserialize)]
pub struct SetForm {
    key: String,
    value: SecretString,
}

/// `POST /vaults/{vault}/credentials`.
pub async fn set(web: Web, Path(vault): Path<String>, Form(form): Form<SetForm>) -> Response {
    let caller = signed_in!(web);
    let key = form.key.trim().to_owned();
    let outcome = credentials::set(
        &web.state,
        &caller,
        &vault,
        BTreeMap::from([(key.clone(), form.value)]),
    )
    .await
    .map(|_| format!("Credential {key} saved."));
    web.finish(&format!("/vaults/{vault}/credentials"), outcome)
}

#[derive(Deserialize)]
pub struct KeyForm {
    key: String,
}

/// `POST /vaults/{vault}/credentials/delete`.
pub async fn delete(web: Web, Path(vault): Path<String>, Form(form): Form<KeyForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = credentials::delete(&web.state, &caller, &vault, vec![form.key.clone()])
        .await
        .map(|_| format!("Credential {} deleted.", form.key));
    web.finish(&format!("/vaults/{vault}/credentials"), outcome)
}

/// `POST /vaults/{vault}/credentials/reveal`: one value, on its own page.
pub async fn reveal(web: Web, Path(vault): Path<String>, Form(form): Form<KeyForm>) -> Response {
    let caller = signed_in!(web);
    match credentials::reveal(&web.state, &caller, &vault, &form.key).await {
        Ok(value) => {
            let body = html! {
                h2 { "Value of " code { (form.key) } }
                p.notice.warn { "Shown once, on this page only: it is not stored in your browser's cache. Close the page when done." }
                div.secret {
                    pre #revealed-value { (value.expose()) }
                    button.secondary type="button" data-copy="revealed-value" hidden { "Copy" }
                }
                p { a href={ "/vaults/" (vault) "/credentials" } { "Back to the credentials" } }
            };
            let mut response = vault_page(web, &vault, None, Tab::Credentials, Ok(body));
            *response.status_mut() = StatusCode::OK;
            response
        }
        Err(e) => web.finish(&format!("/vaults/{vault}/credentials"), Err(e)),
    }
}
