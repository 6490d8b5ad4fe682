//! The viewer's own account: who they are, their vaults, changing the password (which ends
//! every other session and signs this browser in anew), deleting the account. The rules are
//! [`crate::ops::accounts`]'.

use axum::Form;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{badge, csrf, page, when};
use super::session::Web;
use crate::crypto::SecretString;
use crate::ops::OpError;
use crate::ops::accounts::{self, SessionUse};
use crate::store::InstanceRole;

/// `GET /account`.
pub async fn show(web: Web) -> Response {
    let caller = signed_in!(web);
    let (user, grants) = match accounts::me(&web.state, &caller).await {
        Ok(found) => found,
        Err(e) => return super::auth::failure(web, e),
    };
    let body = html! {
        dl.facts {
            dt { "Email" } dd { (user.email) }
            dt { "Instance role" } dd { (badge(user.role.as_str())) }
            dt { "Member since" } dd { (when(user.created_at)) }
            dt { "This browser's session ends" } dd { (caller.session.expires_at.map(when).unwrap_or_default()) }
            dt { "Vaults" }
            dd { @if grants.is_empty() { "none" } @for (v, r) in &grants { a href={ "/vaults/" (v.name) } { (v.name) } " (" (r.as_str()) ") " } }
        }
        section.panel aria-labelledby="password" {
            h2 #password { "Change password" }
            @if user.password_hash.is_none() {
                p.muted { "This account signs in with Google and has no password." }
            } @else {
                p.muted { "Every other session of yours ends, including CLI logins; this browser stays signed in." }
                form.stack method="post" action="/account/password" {
                    (csrf(&web))
                    label for="current" { "Current password" }
                    input #current type="password" name="current" required autocomplete="current-password";
                    label for="new" { "New password" span.hint { "At least 8 characters." } }
                    input #new type="password" name="new" required minlength="8" autocomplete="new-password";
                    label for="confirm" { "New password again" }
                    input #confirm type="password" name="confirm" required minlength="8" autocomplete="new-password";
                    div.actions { button type="submit" { "Change password" } }
                }
            }
        }
        section.panel aria-labelledby="delete" {
            h2 #delete { "Delete account" }
            @if user.role == InstanceRole::Owner {
                p { "Owners cannot delete their own account: make another user owner under Manage instance, then have them demote you." }
            } @else {
                p { "Removes your account, your sessions and your vault memberships. This cannot be undone." }
                form.inline method="post" action="/account/delete" data-confirm="Delete your account for good?" {
                    (csrf(&web))
                    button.danger type="submit" { "Delete my account" }
                }
            }
        }
    };
    let markup = page(&web, "Account", body);
    web.render(StatusCode::OK, markup)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: SecretString,
    new: SecretString,
    confirm: SecretString,
}

/// `POST /account/password`.
pub async fn change_password(mut web: Web, Form(form): Form<PasswordForm>) -> Response {
    let caller = signed_in!(web);
    if form.new.expose() != form.confirm.expose() {
        return web.finish(
            "/account",
            Err(OpError::invalid("the two new passwords differ")),
        );
    }
    let state = web.state.clone();
    match accounts::change_password(&state, &caller, form.current, form.new, SessionUse::Browser)
        .await
    {
        Ok(login) => {
            web.sign_in(login.token.expose());
            web.finish(
                "/account",
                Ok("Password changed; your other sessions ended.".to_owned()),
            )
        }
        Err(e) => web.finish("/account", Err(e)),
    }
}

/// `POST /account/delete`.
pub async fn delete(mut web: Web) -> Response {
    let caller = signed_in!(web);
    let state = web.state.clone();
    match accounts::delete_account(&state, &caller).await {
        Ok(email) => {
            web.sign_out();
            web.finish("/login", Ok(format!("Account {email} deleted.")))
        }
        Err(e) => web.finish("/account", Err(e)),
    }
}
