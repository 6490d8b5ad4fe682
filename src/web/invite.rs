//! The page behind a user invite link (`/invite/{token}`): what the invite grants, and a
//! form to accept it: choosing a password for a new account, or proving the password of an
//! existing one. The rules are [`crate::ops::invites`]'s.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::auth::capitalized;
use super::layout::{badge, csrf, page};
use super::session::Web;
use crate::crypto::SecretString;
use crate::ops::accounts::SessionUse;
use crate::ops::invites;
use crate::store::invites::InviteStatus;

fn problem(web: Web, status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.notice.error role="alert" { (message) }
        p { a href="/login" { "Sign in" } }
    };
    let markup = page(&web, "Invite", body);
    web.render(status, markup)
}

/// `GET /invite/{token}`.
pub async fn show(web: Web, Path(token): Path<String>) -> Response {
    let (invite, account) = match invites::user_invite(&web.state, &token).await {
        Ok(found) => found,
        Err(e) => return problem(web, e.status, "This invite link is not valid."),
    };
    if invite.status != InviteStatus::Pending {
        return problem(
            web,
            StatusCode::GONE,
            &format!("This invite is {}; ask for a new one.", invite.status_str()),
        );
    }
    let link = format!("{}/invite/{token}", web.state.config.base_url);
    let body = html! {
        p {
            strong { (invite.subject) } " is invited as " (badge(invite.role.as_str()))
            @if !invite.vaults.is_empty() {
                " with access to "
                @for (i, (_, name, role)) in invite.vaults.iter().enumerate() {
                    @if i > 0 { ", " }
                    strong { (name) } " (" (role.as_str()) ")"
                }
            }
            "."
        }
        form.stack method="post" action="" {
            (csrf(&web))
            @if account {
                label for="password" { "Password of your existing account" }
                input #password type="password" name="password" required autocomplete="current-password";
            } @else {
                label for="password" { "Choose a password" span.hint { "At least 8 characters." } }
                input #password type="password" name="password" required minlength="8" autocomplete="new-password";
            }
            div.actions { button type="submit" { "Accept the invite" } }
        }
        h2 { "Or from a terminal" }
        pre { "agent-vault auth accept-invite " (link) }
    };
    let markup = page(&web, "Join agent-vault", body);
    web.render(StatusCode::OK, markup)
}

#[derive(Deserialize)]
pub struct AcceptForm {
    password: SecretString,
}

/// `POST /invite/{token}`: accepts, signs the browser in, and says how to use the CLI.
pub async fn accept(
    mut web: Web,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> Response {
    let state = web.state.clone();
    match invites::accept_user_invite(&state, &token, form.password, SessionUse::Browser).await {
        Ok(login) => {
            web.sign_in(login.token.expose());
            let base = &state.config.base_url;
            let body = html! {
                p.notice.ok role="status" { "Your account " strong { (login.email) } " is ready, and this browser is signed in." }
                p { a.button href="/vaults" { "Open your vaults" } }
                h2 { "From a terminal" }
                pre { "agent-vault auth login --address " (base) " --email " (login.email) }
            };
            let markup = page(&web, "Invite accepted", body);
            web.render(StatusCode::OK, markup)
        }
        Err(e) => problem(web, e.status, &capitalized(&e.message)),
    }
}
