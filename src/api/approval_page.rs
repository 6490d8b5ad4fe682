//! The browser page behind a proposal's approval link
//! (`/approve/{vault}/{n}?token=av_appr_…`): what the agent asks for, and a form to approve
//! or reject it.
//!
//! Stance: the link's token only lets its holder *see* the proposal, which holds no
//! credential value. Acting on it needs signing in on the form with email and password
//! (checked like a login, on a blocking thread) and passes the API's rules: the member role
//! or above on the vault, and not the proposer. Plain HTML, no scripts, everything
//! interpolated escaped; submitted values and passwords are never written back into a page.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::access::VaultAccess;
use super::accounts::verify_password_async;
use super::pages::{escape, page};
use super::proposals::{Decision, decide, needed_keys, parse_number};
use super::{ApiError, AppState, rfc3339};
use crate::crypto::SecretString;
use crate::services::{Auth, Service, Surface};
use crate::store::proposals::{self, Proposal, ProposalStatus, Proposer};
use crate::store::users::{self, User};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{InstanceRole, VaultRole, agents, credentials, now};

/// Form fields carrying a credential value are named `value_<KEY>`.
const VALUE_FIELD: &str = "value_";

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: Option<String>,
}

/// A proposal reached through a valid link, with what the page shows about it.
struct Loaded {
    vault: Vault,
    proposal: Proposal,
    existing: Vec<String>,
    proposer: String,
}

fn html_error(status: StatusCode, title: &str, message: &str) -> Response {
    (status, page(title, &format!("<p>{}</p>", escape(message)))).into_response()
}

fn invalid_link() -> Response {
    html_error(
        StatusCode::NOT_FOUND,
        "Approval link not valid",
        "This approval link is not valid, or it has expired (links work for 7 days). Review the vault's proposals from a terminal with `agent-vault vault proposal review --vault <name>`.",
    )
}

/// Who filed the proposal, in words.
pub(super) fn proposer_text(
    conn: &rusqlite::Connection,
    p: &Proposal,
) -> crate::store::Result<String> {
    let name = |kind: ActorType, id: &str| -> crate::store::Result<String> {
        Ok(match kind {
            ActorType::User => {
                users::by_id(conn, id)?.map_or_else(|| "a removed user".to_owned(), |u| u.email)
            }
            ActorType::Agent => agents::by_id(conn, id)?.map_or_else(
                || "a removed agent".to_owned(),
                |a| format!("agent \"{}\"", a.name),
            ),
        })
    };
    Ok(match &p.proposer {
        Proposer::User(id) => name(ActorType::User, id)?,
        Proposer::Agent(id) => name(ActorType::Agent, id)?,
        Proposer::Scoped {
            minted_by: Some((kind, id)),
            ..
        } => format!("an agent using a vault token of {}", name(*kind, id)?),
        Proposer::Scoped { .. } => "an agent using a vault token".to_owned(),
    })
}

/// The proposal the link names, if its token is right and unexpired.
async fn load(
    state: &AppState,
    vault: String,
    number: &str,
    token: Option<String>,
) -> Result<Loaded, Response> {
    let (Ok(number), Some(token)) = (parse_number(number), token) else {
        return Err(invalid_link());
    };
    let found = state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(vault) = vaults::by_name(conn, &vault)? else {
                    return Ok(None);
                };
                let Some(proposal) = proposals::get(conn, &vault.id, number)? else {
                    return Ok(None);
                };
                if !proposal.link_accepts(&token, now()) {
                    return Ok(None);
                }
                let existing = credentials::keys(conn, &vault.id)?;
                let proposer = proposer_text(conn, &proposal)?;
                Ok(Some(Loaded {
                    vault,
                    proposal,
                    existing,
                    proposer,
                }))
            })
        })
        .await;
    match found {
        Ok(Some(loaded)) => Ok(loaded),
        Ok(None) => Err(invalid_link()),
        Err(e) => Err(html_error(e.status, "Proposal", &e.message)),
    }
}

fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

fn auth_text(auth: &Auth) -> String {
    match auth {
        Auth::Bearer { token } => format!("sends {} as a bearer token", code(token)),
        Auth::Basic { username, password } => format!(
            "signs in with basic auth: username {}, password {}",
            code(username),
            code(password)
        ),
        Auth::ApiKey {
            key,
            header,
            prefix,
        } => {
            let prefix = prefix
                .as_deref()
                .map(|p| format!(" after the text {}", code(p)))
                .unwrap_or_default();
            format!("sends {} in the {} header{prefix}", code(key), code(header))
        }
        Auth::Custom { headers } => {
            let list: Vec<String> = headers
                .iter()
                .map(|(name, template)| code(&format!("{name}: {template}")))
                .collect();
            format!("sets the headers {}", list.join(", "))
        }
        Auth::Passthrough => {
            "attaches no credential (the host is allowed; the agent's own headers pass through)"
                .to_owned()
        }
    }
}

fn service_item(service: &Service) -> String {
    let mut out = format!("<li><b>{}</b>", escape(&service.matcher()));
    if let Some(domain) = service.host.strip_prefix("*.") {
        out.push_str(&format!(" (every subdomain of {})", escape(domain)));
    }
    if let Some(name) = &service.name {
        out.push_str(&format!(" ({})", escape(name)));
    }
    out.push_str(&format!(": {}", auth_text(&service.auth)));
    for s in &service.substitutions {
        let surfaces: Vec<&str> = s
            .surfaces
            .iter()
            .map(|surface| match surface {
                Surface::Header => "headers",
                Surface::Path => "the path",
                Surface::Query => "the query",
                Surface::Body => "the body",
            })
            .collect();
        out.push_str(&format!(
            "; replaces {} with {} in {}",
            code(&s.placeholder),
            code(&s.key),
            surfaces.join(", ")
        ));
    }
    if !service.enabled {
        out.push_str(" — <i>added disabled</i>");
    }
    if let Some(description) = &service.description {
        out.push_str(&format!(
            "<br><span style=\"white-space:pre-wrap\">{}</span>",
            escape(description)
        ));
    }
    out.push_str("</li>");
    out
}

fn quote(label: &str, text: &Option<String>) -> String {
    text.as_deref()
        .map(|t| {
            format!(
                "<h2>{label}</h2><blockquote style=\"white-space:pre-wrap\">{}</blockquote>",
                escape(t)
            )
        })
        .unwrap_or_default()
}

/// The page for a loaded proposal, with an optional notice (an error from the last attempt).
fn render(loaded: &Loaded, token: &str, notice: Option<&str>) -> String {
    let p = &loaded.proposal;
    let vault = &loaded.vault.name;
    let mut body = format!(
        "<p>Vault <b>{}</b> · status <b>{}</b> · filed by {} on {}</p>",
        escape(vault),
        p.status,
        escape(&loaded.proposer),
        escape(&rfc3339(p.created_at)),
    );
    if let Some(notice) = notice {
        body.push_str(&format!(
            "<p style=\"color:#a00\"><b>{}</b></p>",
            escape(notice)
        ));
    }
    body.push_str(&quote("Why the agent asks", &p.user_message));
    if !p.services.is_empty() {
        let items: String = p.services.iter().map(service_item).collect();
        body.push_str(&format!("<h2>Services</h2><ul>{items}</ul>"));
    }
    let keys = needed_keys(p, &loaded.existing);
    if !keys.is_empty() {
        let items: String = keys
            .iter()
            .map(|(key, description, exists)| {
                let mut item = format!("<li>{}", code(key));
                if let Some(d) = description {
                    item.push_str(&format!(": {}", escape(d)));
                }
                if *exists {
                    item.push_str(" — <i>already set in the vault</i>");
                }
                item + "</li>"
            })
            .collect();
        body.push_str(&format!("<h2>Credentials</h2><ul>{items}</ul>"));
    }
    body.push_str(&quote("Agent's note", &p.message));

    if p.status != ProposalStatus::Pending {
        body.push_str(&format!(
            "<p>This proposal is already <b>{}</b>{}.</p>",
            p.status,
            p.reviewed_at
                .map(|at| format!(" ({})", escape(&rfc3339(at))))
                .unwrap_or_default()
        ));
        return body;
    }

    let mut form = format!(
        // Relative, so the page also works behind a reverse proxy's path prefix.
        "<h2>Review</h2><form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">",
        p.number,
        escape(token)
    );
    for (key, _, exists) in &keys {
        let hint = if *exists {
            " (leave empty to keep the current value)"
        } else {
            ""
        };
        form.push_str(&format!(
            "<label>Value for {}{hint}<input type=\"password\" name=\"{VALUE_FIELD}{}\" autocomplete=\"off\"{}></label>",
            code(key),
            escape(key),
            if *exists { "" } else { " required" }
        ));
    }
    form.push_str(
        "<p>Sign in to act on it: you need the member role on this vault, and you cannot review a proposal you filed.</p>\
         <label>Email<input type=\"email\" name=\"email\" required autocomplete=\"username\"></label>\
         <label>Password<input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label>\
         <label>Reason (only for a rejection, optional)<input type=\"text\" name=\"reason\" maxlength=\"2000\"></label>\
         <button type=\"submit\" name=\"action\" value=\"approve\">Approve and apply</button>\
         <button type=\"submit\" name=\"action\" value=\"reject\" formnovalidate>Reject</button></form>",
    );
    body.push_str(&form);
    body.push_str(&format!(
        "<p>Or from a terminal: {}</p>",
        code(&format!(
            "agent-vault vault proposal approve {} --vault {vault}",
            p.number
        ))
    ));
    body
}

fn title(p: &Proposal) -> String {
    format!("Proposal #{}", p.number)
}

/// `GET /approve/{vault}/{n}?token=…`.
pub async fn show(
    State(state): State<AppState>,
    Path((vault, number)): Path<(String, String)>,
    Query(query): Query<LinkQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    match load(&state, vault, &number, Some(token.clone())).await {
        Ok(loaded) => {
            page(&title(&loaded.proposal), &render(&loaded, &token, None)).into_response()
        }
        Err(response) => response,
    }
}

/// Checks an email and password like a login; the same answer for every failure.
async fn sign_in(state: &AppState, email: &str, password: SecretString) -> Result<User, ApiError> {
    let lookup = users::normalize_email(email);
    let user = state
        .db(move |s, _| s.read(|c| users::by_email(c, &lookup)))
        .await?;
    let hashes = match &user {
        Some(u) if u.active => u.password_hash.clone().into_iter().collect(),
        _ => Vec::new(),
    };
    let verified = verify_password_async(password, hashes).await;
    match user {
        Some(user) if verified => Ok(user),
        _ => Err(ApiError::unauthorized("Invalid email or password.")),
    }
}

/// The signed-in user's right to review (the member role or above on the vault); `Ok(true)`
/// when they may also change services (admin).
async fn may_review(state: &AppState, user: &User, vault: &Vault) -> Result<bool, ApiError> {
    let (vault_id, user_id) = (vault.id.clone(), user.id.clone());
    let role = state
        .db(move |s, _| s.read(|c| vaults::role_of(c, &vault_id, ActorType::User, &user_id)))
        .await?;
    let access = VaultAccess {
        vault: vault.clone(),
        role,
        owner: user.role == InstanceRole::Owner,
    };
    access.require(VaultRole::Member)?;
    Ok(access.require(VaultRole::Admin).is_ok())
}

/// `POST /approve/{vault}/{n}`: the form above.
pub async fn act(
    State(state): State<AppState>,
    Path((vault, number)): Path<(String, String)>,
    form: Result<Form<Vec<(String, SecretString)>>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = form else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Proposal",
            "The form could not be read; open the approval link again and resubmit.",
        );
    };
    let mut values = BTreeMap::new();
    let mut field = BTreeMap::new();
    for (name, value) in fields {
        match name.strip_prefix(VALUE_FIELD) {
            Some(key) if !value.is_empty() => {
                values.insert(key.to_owned(), value);
            }
            Some(_) => {}
            None => {
                field.insert(name, value);
            }
        }
    }
    let text = |name: &str| field.get(name).map(|v| v.expose().to_owned());
    let token = text("token").unwrap_or_default();
    let loaded = match load(&state, vault, &number, Some(token.clone())).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let fail = |err: ApiError| {
        (
            err.status,
            page(
                &title(&loaded.proposal),
                &render(&loaded, &token, Some(&err.message)),
            ),
        )
            .into_response()
    };
    if loaded.proposal.status != ProposalStatus::Pending {
        return fail(ApiError::conflict(format!(
            "Proposal #{} is already {}.",
            loaded.proposal.number, loaded.proposal.status
        )));
    }
    let decision = match text("action").as_deref() {
        Some("approve") => Decision::Approve(values),
        Some("reject") => Decision::Reject(text("reason")),
        _ => {
            return fail(ApiError::invalid("Choose Approve or Reject."));
        }
    };
    let email = text("email").unwrap_or_default();
    let password = field.remove("password").unwrap_or_default();
    let user = match sign_in(&state, &email, password).await {
        Ok(user) => user,
        Err(e) => return fail(e),
    };
    let may_change_services = match may_review(&state, &user, &loaded.vault).await {
        Ok(admin) => admin,
        Err(e) => return fail(e),
    };
    let number = loaded.proposal.number;
    match decide(
        &state,
        &loaded.vault,
        number,
        (ActorType::User, user.id.clone()),
        may_change_services,
        decision,
    )
    .await
    {
        Ok(decided) if decided.status == ProposalStatus::Approved => {
            let mut body = format!(
                "<p>Proposal #{number} in vault <b>{}</b> was approved by {} and applied.</p>",
                escape(&loaded.vault.name),
                escape(&user.email)
            );
            if !decided.services.is_empty() {
                let list: Vec<String> = decided.services.iter().map(|s| code(s)).collect();
                body.push_str(&format!("<p>Services saved: {}</p>", list.join(", ")));
            }
            if !decided.credentials.is_empty() {
                let list: Vec<String> = decided.credentials.iter().map(|k| code(k)).collect();
                body.push_str(&format!("<p>Credentials set: {}</p>", list.join(", ")));
            }
            body.push_str("<p>The agent's next request uses them.</p>");
            page("Proposal approved", &body).into_response()
        }
        Ok(_) => page(
            "Proposal rejected",
            &format!(
                "<p>Proposal #{number} in vault <b>{}</b> was rejected by {}.</p>",
                escape(&loaded.vault.name),
                escape(&user.email)
            ),
        )
        .into_response(),
        Err(e) => fail(e),
    }
}
