//! Minimal browser pages for links the server sends to people: accepting an invite. Plain
//! HTML forms, no scripts; everything interpolated is HTML-escaped.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::invites::accept_invite;
use super::{ApiError, AppState};
use crate::crypto::{SecretString, hash_token};
use crate::store::invites::{self, InviteStatus};
use crate::store::users;

pub(super) fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

pub(super) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} · agent-vault</title><style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}\
         input,button{{font:inherit;padding:.4rem;margin:.2rem 0;width:100%}}code{{background:#eee;padding:.1rem .3rem;word-break:break-all}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    ))
}

fn error_page(err: ApiError) -> Response {
    (
        err.status,
        page("Invite", &format!("<p>{}</p>", escape(&err.message))),
    )
        .into_response()
}

/// `GET /invite/{token}`: what the invite grants, a form to accept it, and the CLI command.
pub async fn invite(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let hash = hash_token(&token);
    let found = state
        .db(move |store, _| {
            store.read(|conn| {
                let invite = invites::by_token_hash(conn, &hash)?;
                let account = match &invite {
                    Some(i) => users::by_email(conn, &i.email)?.is_some_and(|u| u.active),
                    None => false,
                };
                Ok(invite.map(|i| (i, account)))
            })
        })
        .await;
    let (invite, account) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return error_page(ApiError::not_found("This invite link is not valid.")),
        Err(e) => return error_page(e),
    };
    if invite.status != InviteStatus::Pending {
        return error_page(ApiError::invalid(format!(
            "This invite is {}; ask for a new one.",
            invite.status.as_str()
        )));
    }
    let vaults = if invite.vaults.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = invite
            .vaults
            .iter()
            .map(|(_, name, role)| format!("{} ({role})", escape(name)))
            .collect();
        format!(" with access to {}", list.join(", "))
    };
    let link = format!("{}/invite/{token}", state.config.base_url);
    let password_label = if account {
        "Password of your existing account"
    } else {
        "Choose a password (at least 8 characters)"
    };
    let body = format!(
        "<p><b>{email}</b> is invited as <b>{role}</b>{vaults}.</p>\
         <form method=\"post\"><label>{password_label}<input type=\"password\" name=\"password\" required minlength=\"8\" autocomplete=\"new-password\"></label>\
         <button type=\"submit\">Accept the invite</button></form>\
         <p>Or from a terminal:</p><p><code>agent-vault auth accept-invite {link}</code></p>",
        email = escape(&invite.email),
        role = invite.role,
        link = escape(&link),
    );
    page("Join agent-vault", &body).into_response()
}

#[derive(Deserialize)]
pub struct AcceptForm {
    password: SecretString,
}

/// `POST /invite/{token}`: the form above.
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> Response {
    match accept_invite(&state, &token, form.password).await {
        Ok(accepted) => page(
            "Invite accepted",
            &format!(
                "<p>Your account <b>{}</b> is ready. Log in from a terminal:</p><p><code>agent-vault auth login --address {} --email {}</code></p>",
                escape(&accepted.email),
                escape(&state.config.base_url),
                escape(&accepted.email)
            ),
        )
        .into_response(),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
