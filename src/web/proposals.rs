//! A vault's Proposals tab, and the review form it shares with the approval-link page: what
//! the agent asks for, in words, with fields for the credential values it needs and the
//! approve and reject buttons. The rules are [`crate::ops::proposals`]'s.
//!
//! Stance: a submitted value or password is never written back into a page; approval fields
//! are password inputs with autocomplete off.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::capitalized;
use super::layout::{badge, csrf, page, table, when};
use super::session::Web;
use super::vaults::{Tab, vault_page};
use crate::crypto::SecretString;
use crate::ops::OpError;
use crate::ops::proposals::{self, Decided, Decision, ProposalView, parse_number};
use crate::services::{Auth, Service, Surface};
use crate::store::proposals::ProposalStatus;

/// Form fields carrying a credential value are named `value_<KEY>`.
pub const VALUE_FIELD: &str = "value_";

fn auth_text(auth: &Auth) -> Markup {
    match auth {
        Auth::Bearer { token } => html! { "sends " code { (token) } " as a bearer token" },
        Auth::Basic { username, password } => html! {
            "signs in with basic auth: username " code { (username) } ", password " code { (password) }
        },
        Auth::ApiKey {
            key,
            header,
            prefix,
        } => html! {
            "sends " code { (key) } " in the " code { (header) } " header"
            @if let Some(prefix) = prefix { " after the text " code { (prefix) } }
        },
        Auth::Custom { headers } => html! {
            "sets the headers "
            @for (i, (name, template)) in headers.iter().enumerate() {
                @if i > 0 { ", " }
                code { (name) ": " (template) }
            }
        },
        Auth::Passthrough => html! {
            "attaches no credential (the host is allowed; the agent's own headers pass through)"
        },
    }
}

fn surface_text(surface: &Surface) -> &'static str {
    match surface {
        Surface::Header => "headers",
        Surface::Path => "the path",
        Surface::Query => "the query",
        Surface::Body => "the body",
        Surface::Ws => "WebSocket messages",
    }
}

/// One service in words: where it applies and what it attaches.
pub fn service_text(service: &Service) -> Markup {
    html! {
        strong { (service.matcher()) }
        @if let Some(domain) = service.host.strip_prefix("*.") { " (every subdomain of " (domain) ")" }
        @if let Some(name) = &service.name { " (" (name) ")" }
        ": " (auth_text(&service.auth))
        @for s in &service.substitutions {
            "; replaces " code { (s.placeholder) } " with " code { (s.key) } " in "
            (s.surfaces.iter().map(surface_text).collect::<Vec<_>>().join(", "))
        }
        @if !service.enabled { " — " em { "added disabled" } }
        @if !service.scrub_responses {
            " — " strong { "responses not scrubbed" } ": the upstream can send the credential back to the agent"
        }
        @if let Some(description) = &service.description { br; span.muted { (description) } }
    }
}

/// What a proposal asks for.
pub fn details(view: &ProposalView) -> Markup {
    let p = &view.proposal;
    let keys = view.needed_keys();
    html! {
        p {
            "Vault " strong { (view.vault) } " · status " (badge(p.status.as_str()))
            " · filed by " (view.filed_by_text()) " on " (when(p.created_at))
        }
        @if let Some(text) = &p.user_message {
            h2 { "Why the agent asks" }
            blockquote { (text) }
        }
        @if !p.services.is_empty() {
            h2 { "Services" }
            ul {
                @for s in &p.services {
                    li {
                        (service_text(s))
                        @if let Some(current) = view.replaced.iter().find(|c| c.matcher() == s.matcher()) {
                            br; em { "Replaces the current service: " } (service_text(current))
                        }
                    }
                }
            }
        }
        @if !keys.is_empty() {
            h2 { "Credentials" }
            ul {
                @for (key, description, exists) in &keys {
                    li {
                        code { (key) }
                        @if let Some(d) = description { ": " (d) }
                        @if *exists { " — " em { "already set in the vault" } }
                    }
                }
            }
        }
        @if let Some(text) = &p.message {
            h2 { "Agent's note" }
            blockquote { (text) }
        }
        @if p.status != ProposalStatus::Pending {
            p {
                "This proposal is already " strong { (p.status.as_str()) }
                @if let Some(at) = p.reviewed_at { " (" (when(at)) ")" }
                @if let Some(note) = &p.review_note { ": " (note) }
                "."
            }
        }
    }
}

/// The review form: a value field per needed key, sign-in fields when nobody is signed in,
/// a reason, and the two buttons. `token` is the approval link's token, carried in the form
/// (never in the action URL).
pub fn review_form(
    web: &Web,
    view: &ProposalView,
    action: &str,
    token: Option<&str>,
    with_login: bool,
) -> Markup {
    let keys = view.needed_keys();
    html! {
        h2 { "Review" }
        form.stack method="post" action=(action) {
            (csrf(web))
            @if let Some(token) = token { input type="hidden" name="token" value=(token); }
            @for (key, _, exists) in &keys {
                @let id = format!("{VALUE_FIELD}{key}");
                label for=(id) {
                    "Value for " code { (key) }
                    @if *exists { span.hint { "Leave empty to keep the current value." } }
                }
                input id=(id) type="password" name=(id) autocomplete="off" required[!*exists];
            }
            @if with_login {
                p.muted { "Sign in to act on it: you need the member role on this vault, and you cannot review a proposal you filed." }
                label for="email" { "Email" }
                input #email type="email" name="email" required autocomplete="username";
                label for="password" { "Password" }
                input #password type="password" name="password" required autocomplete="current-password";
            }
            label for="reason" { "Reason " span.hint { "Only for a rejection; optional." } }
            input #reason type="text" name="reason" maxlength="2000";
            div.actions {
                button type="submit" name="action" value="approve" { "Approve and apply" }
                button.danger type="submit" name="action" value="reject" formnovalidate { "Reject" }
            }
        }
    }
}

/// A submitted review form, split into the decision and the other fields.
pub struct Submitted {
    pub decision: Result<Decision, OpError>,
    pub fields: BTreeMap<String, SecretString>,
}

impl Submitted {
    pub fn parse(
        form: Result<Form<Vec<(String, SecretString)>>, FormRejection>,
    ) -> Result<Self, OpError> {
        let Ok(Form(pairs)) = form else {
            return Err(OpError::invalid(
                "The form could not be read; open the page again and resubmit.",
            ));
        };
        let mut values = BTreeMap::new();
        let mut fields = BTreeMap::new();
        for (name, value) in pairs {
            match name.strip_prefix(VALUE_FIELD) {
                Some(key) if !value.is_empty() => {
                    values.insert(key.to_owned(), value);
                }
                Some(_) => {}
                None => {
                    fields.insert(name, value);
                }
            }
        }
        let text = |name: &str| fields.get(name).map(|v| v.expose().to_owned());
        let decision = match text("action").as_deref() {
            Some("approve") => Ok(Decision::Approve(values)),
            Some("reject") => Ok(Decision::Reject(text("reason"))),
            _ => Err(OpError::invalid("Choose Approve or Reject.")),
        };
        Ok(Self { decision, fields })
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.fields.get(name).map(|v| v.expose().to_owned())
    }
}

/// What a decision did, in words.
pub fn outcome(vault: &str, number: i64, email: &str, decided: &Decided) -> Markup {
    html! {
        @if decided.status == ProposalStatus::Approved {
            p.notice.ok role="status" {
                "Proposal #" (number) " in vault " strong { (vault) } " was approved by " (email) " and applied."
            }
            @if !decided.services.is_empty() {
                p { "Services saved: " @for s in &decided.services { code { (s) } " " } }
            }
            @if !decided.credentials.is_empty() {
                p { "Credentials set: " @for k in &decided.credentials { code { (k) } " " } }
            }
            p { "The agent's next request uses them." }
        } @else {
            p.notice.ok role="status" {
                "Proposal #" (number) " in vault " strong { (vault) } " was rejected by " (email) "."
            }
        }
    }
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /vaults/{vault}/proposals[?status=]`.
pub async fn list(
    web: Web,
    Path(vault): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Response {
    let caller = signed_in!(web);
    let status = query.status.clone().unwrap_or_else(|| "pending".to_owned());
    let (access, items) = match proposals::list(&web.state, &caller, &vault, Some(&status)).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, None, Tab::Proposals, Err(e)),
    };
    let base = format!("/vaults/{vault}/proposals");
    let body = html! {
        form.row method="get" action=(base) {
            label for="status" { "Status"
                select #status name="status" {
                    @for s in ["pending", "approved", "rejected", "all"] {
                        option value=(s) selected[s == status] { (s) }
                    }
                }
            }
            button.secondary type="submit" { "Show" }
        }
        @if items.is_empty() {
            p.muted { "No " (if status == "all" { "" } else { &status }) " proposals. Agents file them with " code { "agent-vault vault proposal create" } " or " code { "POST /v1/proposals" } "." }
        } @else {
            (table("Proposals", &["#", "Status", "Asks for", "Filed by", "Filed"], html! {
                @for v in &items {
                    tr {
                        td { a href={ (base) "/" (v.proposal.number) } { "#" (v.proposal.number) } }
                        td { (badge(v.proposal.status.as_str())) }
                        td {
                            @for s in &v.proposal.services { code { (s.matcher()) } " " }
                            @for c in &v.proposal.credentials { code { (c.key) } " " }
                        }
                        td { (v.filed_by_text()) }
                        td { (when(v.proposal.created_at)) }
                    }
                }
            }))
        }
    };
    vault_page(web, &vault, Some(&access), Tab::Proposals, Ok(body))
}

/// `GET /vaults/{vault}/proposals/{number}`: the review page for signed-in members.
pub async fn show(web: Web, Path((vault, number)): Path<(String, String)>) -> Response {
    let caller = signed_in!(web);
    let number = match parse_number(&number) {
        Ok(n) => n,
        Err(e) => return vault_page(web, &vault, None, Tab::Proposals, Err(e)),
    };
    match proposals::get(&web.state, &caller, &vault, number).await {
        Ok(view) => {
            let action = format!("/vaults/{vault}/proposals/{number}");
            let body = html! {
                h2 { "Proposal #" (number) }
                (details(&view))
                @if view.proposal.status == ProposalStatus::Pending {
                    (review_form(&web, &view, &action, None, false))
                }
            };
            vault_page(web, &vault, None, Tab::Proposals, Ok(body))
        }
        Err(e) => vault_page(web, &vault, None, Tab::Proposals, Err(e)),
    }
}

/// `POST /vaults/{vault}/proposals/{number}`.
pub async fn act(
    mut web: Web,
    Path((vault, number)): Path<(String, String)>,
    form: Result<Form<Vec<(String, SecretString)>>, FormRejection>,
) -> Response {
    let caller = signed_in!(web);
    let back = format!("/vaults/{vault}/proposals/{number}");
    let number = match parse_number(&number) {
        Ok(n) => n,
        Err(e) => return web.finish(&back, Err(e)),
    };
    let decision = match Submitted::parse(form).and_then(|s| s.decision) {
        Ok(d) => d,
        Err(e) => return web.finish(&back, Err(e)),
    };
    let state = web.state.clone();
    match proposals::review(&state, &caller, &vault, number, decision).await {
        Ok((vault_row, decided)) => {
            let email = web.viewer_email().unwrap_or_default().to_owned();
            let body = outcome(&vault_row.name, number, &email, &decided);
            let markup = page(
                &web,
                &format!("Proposal #{number}"),
                html! {
                    (body)
                    p { a href={ "/vaults/" (vault_row.name) "/proposals" } { "Back to the proposals" } }
                },
            );
            web.render(StatusCode::OK, markup)
        }
        Err(e) => {
            web.error_notice(capitalized(&e.message));
            web.redirect(&back)
        }
    }
}
