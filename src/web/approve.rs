//! The page behind a proposal's approval link (`/approve/{vault}/{n}?token=av_appr_…`), the
//! link the CLI and the API hand out: what the agent asks for, and the review form.
//!
//! Stance: the link's token only lets its holder *see* the proposal, which holds no
//! credential value. Acting needs a signed-in user — the browser's session, or an email and
//! password typed into the form, which signs the browser in — and passes the same rules as
//! the API: the member role or above on the vault, not the proposer.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::capitalized;
use super::layout::page;
use super::proposals::{Submitted, details, outcome, review_form};
use super::session::Web;
use crate::crypto::SecretString;
use crate::ops::accounts::{self, SessionUse};
use crate::ops::proposals::{self, ProposalView, parse_number};
use crate::ops::{Caller, OpError};
use crate::store::proposals::ProposalStatus;

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: Option<String>,
}

fn invalid_link(web: Web) -> Response {
    let body = html! {
        p.notice.error role="alert" {
            "This approval link is not valid, or it has expired (links work for 7 days). Review the vault's proposals under Vaults, or from a terminal with "
            code { "agent-vault vault proposal review --vault <name>" } "."
        }
    };
    let markup = page(&web, "Approval link not valid", body);
    web.render(StatusCode::NOT_FOUND, markup)
}

fn title(number: i64) -> String {
    format!("Proposal #{number}")
}

fn body(web: &Web, view: &ProposalView, token: &str, notice: Option<&str>) -> Markup {
    let number = view.proposal.number;
    html! {
        @if let Some(notice) = notice { p.notice.error role="alert" { (notice) } }
        (details(view))
        @if view.proposal.status == ProposalStatus::Pending {
            // Relative, so the page also works behind a reverse proxy's path prefix.
            (review_form(web, view, &number.to_string(), Some(token), web.viewer.is_none()))
            p.muted { "Or from a terminal: " code { "agent-vault vault proposal approve " (number) " --vault " (view.vault) } }
        }
    }
}

async fn load(web: &Web, vault: &str, number: &str, token: &str) -> Option<ProposalView> {
    let number = parse_number(number).ok()?;
    match proposals::by_link(&web.state, vault, number, token).await {
        Ok(Some((_, view))) => Some(view),
        _ => None,
    }
}

/// `GET /approve/{vault}/{n}?token=…`.
pub async fn show(
    web: Web,
    Path((vault, number)): Path<(String, String)>,
    Query(query): Query<LinkQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    let Some(view) = load(&web, &vault, &number, &token).await else {
        return invalid_link(web);
    };
    let markup = page(
        &web,
        &title(view.proposal.number),
        body(&web, &view, &token, None),
    );
    web.render(StatusCode::OK, markup)
}

/// The user acting: the signed-in one, or whoever the form's email and password name (then
/// signed in).
async fn reviewer(web: &mut Web, submitted: &Submitted) -> Result<Caller, OpError> {
    if let Some(caller) = &web.viewer {
        return Ok(caller.clone());
    }
    let email = submitted.text("email").unwrap_or_default();
    let password = SecretString::new(submitted.text("password").unwrap_or_default());
    let state = web.state.clone();
    let login = accounts::login(&state, &email, password, SessionUse::Browser, web.peer).await?;
    web.sign_in(login.token.expose());
    crate::ops::caller::resolve(&state, login.token.expose())
        .await?
        .ok_or_else(|| OpError::unauthorized("the new session could not be used; sign in again"))
}

/// `POST /approve/{vault}/{n}`: the form above.
pub async fn act(
    mut web: Web,
    Path((vault, number)): Path<(String, String)>,
    form: Result<Form<Vec<(String, SecretString)>>, FormRejection>,
) -> Response {
    let mut submitted = match Submitted::parse(form) {
        Ok(s) => s,
        Err(e) => {
            let markup = page(
                &web,
                "Proposal",
                html! { p.notice.error role="alert" { (e.message) } },
            );
            return web.render(e.status, markup);
        }
    };
    let token = submitted.text("token").unwrap_or_default();
    let Some(view) = load(&web, &vault, &number, &token).await else {
        return invalid_link(web);
    };
    let number = view.proposal.number;
    let fail = |web: Web, e: OpError| {
        let markup = page(
            &web,
            &title(number),
            body(&web, &view, &token, Some(&capitalized(&e.message))),
        );
        web.render(e.status, markup)
    };
    if view.proposal.status != ProposalStatus::Pending {
        let e = OpError::conflict(format!(
            "proposal #{number} is already {}",
            view.proposal.status
        ));
        return fail(web, e);
    }
    let decision = match std::mem::replace(&mut submitted.decision, Err(OpError::invalid(""))) {
        Ok(decision) => decision,
        Err(e) => return fail(web, e),
    };
    let caller = match reviewer(&mut web, &submitted).await {
        Ok(caller) => caller,
        Err(e) => return fail(web, e),
    };
    let email = match &caller.principal {
        crate::ops::Principal::User(user) => user.email.clone(),
        _ => String::new(),
    };
    let state = web.state.clone();
    match proposals::review(&state, &caller, &view.vault, number, decision).await {
        Ok((vault, decided)) => {
            let heading = if decided.status == ProposalStatus::Approved {
                "Proposal approved"
            } else {
                "Proposal rejected"
            };
            let markup = page(
                &web,
                heading,
                html! {
                    (outcome(&vault.name, number, &email, &decided))
                    p { a href={ "/vaults/" (vault.name) "/proposals" } { "See the vault's proposals" } }
                },
            );
            web.render(StatusCode::OK, markup)
        }
        Err(e) => fail(web, e),
    }
}
