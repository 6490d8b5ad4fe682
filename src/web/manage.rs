//! Manage instance (owners): users and their instance roles, invites with vault
//! pre-assignment, who may sign up (invite-only, allowed domains), and request-log retention
//! — read-only with a note when `AGENT_VAULT_LOGS_RETENTION_LOCK` pins it. The rules are
//! [`crate::ops::admin`]'s and [`crate::ops::invites`]'.
//!
//! Email: the SMTP settings in use, delivery counters and the last failure, and a button
//! that sends a test email now ([`crate::ops::email`]).
//!
//! Rate limits: the numbers in force with their sources, and the profile, which an owner
//! picks here (knobs: `owner config set --rate-limit` or the API); read-only when
//! `AGENT_VAULT_RATELIMIT_LOCK` pins them.

use axum::Form;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    VAULT_FIELD, action_button, badge, csrf, field, page, table, vault_choices, when,
};
use super::session::Web;
use crate::broker::retention::{self, Source, StoredRetention};
use crate::limits::StoredRateLimit;
use crate::ops::admin::{self, SettingsChange};
use crate::ops::invites::{self, UserInviteRequest};
use crate::ops::{OpError, email, vaults};
use crate::store::invites::InviteKind;

fn source_text(source: Source) -> &'static str {
    match source {
        Source::Env => "set by the server's environment",
        Source::Setting => "set here",
        Source::Default => "default",
    }
}

/// `GET /manage`.
pub async fn show(web: Web) -> Response {
    let caller = signed_in!(web);
    let state = web.state.clone();
    let loaded = async {
        admin::require_owner(&caller)?;
        let users = admin::list_users(&state, &caller).await?;
        let mut codes = Vec::new();
        for (user, _) in users.iter().filter(|(u, _)| !u.active) {
            let details = admin::user_details(&state, &caller, &user.email).await?;
            if let Some((code, expires, _)) = details.code {
                codes.push((user.email.clone(), code, expires));
            }
        }
        Ok::<_, OpError>((
            users,
            codes,
            invites::list(&state, &caller, InviteKind::User, Some("pending")).await?,
            admin::settings(&state, &caller).await?,
            vaults::list(&state, &caller).await?,
        ))
    }
    .await;
    let mail = match email::status(&state, &caller) {
        Ok(found) => found,
        Err(e) => return super::auth::failure(web, e),
    };
    let (users, codes, pending, settings, vault_rows) = match loaded {
        Ok(found) => found,
        Err(e) => return super::auth::failure(web, e),
    };
    let env = state.config.retention;
    let (effective, [age_source, rows_source]) = env.resolve(settings.stored_retention);
    let body = html! {
        section.panel aria-labelledby="users" {
            h2 #users { "Users" }
            (table("Users", &["Email", "Status", "Role", "Vaults", ""], html! {
                @for (user, grants) in &users {
                    tr {
                        td { (user.email) }
                        td {
                            (badge(if user.active { "active" } else { "pending" }))
                            @if let Some((_, code, expires)) = codes.iter().find(|(e, _, _)| *e == user.email) {
                                br; span.hint { "Verification code " code { (code.expose()) } " until " (when(*expires)) }
                            }
                        }
                        td {
                            form.row method="post" action="/manage/users/role" {
                                (csrf(&web))
                                input type="hidden" name="email" value=(user.email);
                                label.visually-hidden for={ "role-" (user.id) } { "Instance role of " (user.email) }
                                select id={ "role-" (user.id) } name="role" {
                                    @for role in ["member", "owner"] {
                                        option value=(role) selected[user.role.as_str() == role] { (role) }
                                    }
                                }
                                button.secondary.small type="submit" { "Set" }
                            }
                        }
                        td { @for (v, r) in grants { (v.name) " (" (r.as_str()) ") " } }
                        td {
                            (action_button(&web, "/manage/users/remove", "Remove", &[("email", &user.email)],
                                Some(&format!("Remove {} from this instance?", user.email)), true))
                        }
                    }
                }
            }))
        }
        section.panel aria-labelledby="invites" {
            h2 #invites { "Invite someone" }
            form.stack method="post" action="/manage/invites" {
                (csrf(&web))
                label for="invite-email" { "Email" }
                input #invite-email type="email" name="email" required autocomplete="off";
                label for="invite-role" { "Instance role" }
                select #invite-role name="role" {
                    option value="member" selected { "member" }
                    option value="owner" { "owner" }
                }
                @if !vault_rows.is_empty() {
                    fieldset {
                        legend { "Vault access on arrival" }
                        @for (i, row) in vault_rows.iter().enumerate() {
                            label for={ "invite-vault-" (i) } { (row.vault.name)
                                select id={ "invite-vault-" (i) } name={ (VAULT_FIELD) (row.vault.name) } {
                                    option value="" selected { "no access" }
                                    option value="member" { "member" }
                                    option value="admin" { "admin" }
                                }
                            }
                        }
                    }
                }
                div.actions { button type="submit" { "Create invite link" } }
            }
            @if !pending.is_empty() {
                h3 { "Pending invites" }
                (table("Pending invites", &["Email", "Role", "Vaults", "Expires", "Token ends", ""], html! {
                    @for (invite, _) in &pending {
                        tr {
                            td { (invite.subject) }
                            td { (badge(invite.role.as_str())) }
                            td { @for (_, name, role) in &invite.vaults { (name) " (" (role.as_str()) ") " } }
                            td { (when(invite.expires_at)) }
                            td.mono { "…" (invite.token_suffix) }
                            td { (action_button(&web, "/manage/invites/revoke", "Revoke", &[("suffix", &invite.token_suffix)], None, true)) }
                        }
                    }
                }))
            }
        }
        section.panel aria-labelledby="signups" {
            h2 #signups { "Who may sign up" }
            form.stack method="post" action="/manage/access" {
                (csrf(&web))
                label.check { input type="checkbox" name="invite_only" checked[settings.invite_only]; "Invite-only: nobody signs up without an invite" }
                label for="domains" { "Allowed email domains" span.hint { "One per line or comma-separated; empty allows any. Applies to sign-ups, Google sign-in and invites." } }
                textarea #domains name="domains" spellcheck="false" { (settings.allowed_domains.join("\n")) }
                div.actions { button type="submit" { "Save" } }
            }
        }
        section.panel aria-labelledby="retention" {
            h2 #retention { "Request-log retention" }
            p { "Rows older than " strong { (effective.max_age_hours) " hours" } " (" (source_text(age_source)) ") are deleted, and each vault keeps at most "
                strong { (effective.max_rows_per_vault) " rows" } " (" (source_text(rows_source)) "). 0 means no limit." }
            @if env.locked {
                p.notice.warn role="note" { "Read-only: " code { (retention::LOCK_ENV) } " is set on the server, so only its environment decides. Change it there." }
            } @else {
                (retention_form(&web, &settings.stored_retention))
            }
        }
        (rate_limit_section(&web, &settings.stored_rate_limit))
        section.panel aria-labelledby="email" {
            h2 #email { "Email" }
            @match &mail {
                None => {
                    p { "Email is off: verification codes are shown to you above, and invite links only here." }
                    p.muted { "To send email, set " code { "AGENT_VAULT_SMTP_HOST" } " and " code { "AGENT_VAULT_SMTP_FROM" } " on the server and restart it." }
                }
                Some((config, status)) => {
                    p { "Sending through " strong { (config.host) ":" (config.port) } " as " (config.from.to_string())
                        " (TLS " (config.tls_mode.as_str()) @if config.tls_skip_verify { ", certificate not checked" } ")." }
                    p { (status.sent) " sent, " (status.failed) " failed, " (status.pending) " waiting since the server started"
                        @if let Some(at) = status.last_sent_at { "; last sent " (when(at)) } "." }
                    @if let Some(error) = &status.last_error {
                        p.notice.warn role="note" { "Last failure " (when(error.at)) " (" (error.kind.as_str()) ", to " (error.recipient) "): " (error.message) }
                    }
                    form.row method="post" action="/manage/email-test" {
                        (csrf(&web))
                        label for="test-to" { "Send a test email to"
                            input #test-to type="email" name="to" value=(web.viewer_email().unwrap_or_default()) required;
                        }
                        button type="submit" { "Send test email" }
                    }
                }
            }
        }
    };
    let markup = page(&web, "Manage instance", body);
    web.render(StatusCode::OK, markup)
}

fn rate_limit_section(web: &Web, stored: &StoredRateLimit) -> Markup {
    use crate::limits::config::{Source as LimitSource, Tier};
    let effective = web.state.proxy.limits.effective();
    let source = |s: LimitSource| match s {
        LimitSource::Env => "environment",
        LimitSource::Override => "set here",
        LimitSource::Profile => "profile",
    };
    let current = stored.profile.map_or("", |p| p.as_str());
    html! {
        section.panel aria-labelledby="ratelimits" {
            h2 #ratelimits { "Rate limits" }
            p { "Profile " strong { (effective.profile.as_str()) } " (" (source(effective.profile_source)) "). "
                "Per-knob overrides: " code { "agent-vault owner config set --rate-limit TIER.KNOB=VALUE" } "." }
            (table("Rate limits in force", &["Tier", "Limits"], html! {
                @for tier in Tier::ALL {
                    tr {
                        td { (tier.as_str()) }
                        td {
                            @match &effective.tiers[tier as usize] {
                                None => { "off" }
                                Some((limits, sources)) => {
                                    @for (i, knob) in tier.knobs().iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (knob.as_str().to_ascii_lowercase()) " " (limits.get(*knob).to_json().to_string().trim_matches('"'))
                                        " (" (source(sources[*knob as usize])) ")"
                                    }
                                }
                            }
                        }
                    }
                }
            }))
            @if effective.locked {
                p.notice.warn role="note" { "Read-only: " code { (crate::limits::config::LOCK_ENV) } " is set on the server, so only its environment decides. Change it there." }
            } @else {
                form.row method="post" action="/manage/rate-limit" {
                    (csrf(web))
                    label for="rl-profile" { "Profile"
                        select #rl-profile name="profile" {
                            option value="" selected[current.is_empty()] { "server default" }
                            @for p in ["default", "strict", "loose", "off"] {
                                option value=(p) selected[current == p] { (p) }
                            }
                        }
                    }
                    button type="submit" { "Save profile" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RateLimitForm {
    #[serde(default)]
    profile: String,
}

/// `POST /manage/rate-limit`: the profile; the stored knob overrides stay.
pub async fn rate_limit(web: Web, Form(form): Form<RateLimitForm>) -> Response {
    let caller = signed_in!(web);
    let state = web.state.clone();
    let outcome = async {
        let mut stored = admin::settings(&state, &caller).await?.stored_rate_limit;
        stored.profile =
            match form.profile.trim() {
                "" => None,
                name => Some(crate::limits::Profile::parse(name).ok_or_else(|| {
                    OpError::invalid("the profile is default, strict, loose or off")
                })?),
            };
        let change = SettingsChange {
            rate_limit: Some(stored),
            ..SettingsChange::default()
        };
        admin::change_settings(&state, &caller, change).await?;
        Ok("Rate-limit profile saved; it applies now.".to_owned())
    }
    .await;
    web.finish("/manage", outcome)
}

fn retention_form(web: &Web, stored: &StoredRetention) -> Markup {
    let value = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        form.row method="post" action="/manage/retention" {
            (csrf(web))
            label for="max-age" { "Maximum age (hours)" span.hint { "Empty: inherit." }
                input #max-age type="number" name="max_age_hours" min="0" max=(retention::LIMIT_MAX_AGE_HOURS) value=(value(stored.max_age_hours));
            }
            label for="max-rows" { "Rows per vault" span.hint { "Empty: inherit." }
                input #max-rows type="number" name="max_rows_per_vault" min="0" max=(retention::LIMIT_MAX_ROWS) value=(value(stored.max_rows_per_vault));
            }
            button type="submit" { "Save retention" }
        }
    }
}

#[derive(Deserialize)]
pub struct AccessForm {
    #[serde(default)]
    invite_only: Option<String>,
    #[serde(default)]
    domains: String,
}

/// `POST /manage/access`.
pub async fn access(web: Web, Form(form): Form<AccessForm>) -> Response {
    let caller = signed_in!(web);
    let domains = form
        .domains
        .split([',', '\n', ' '])
        .map(str::to_owned)
        .collect();
    let change = SettingsChange {
        invite_only: Some(form.invite_only.is_some()),
        allowed_email_domains: Some(domains),
        ..SettingsChange::default()
    };
    let outcome = admin::change_settings(&web.state, &caller, change)
        .await
        .map(|s| {
            format!(
                "Saved: {}; allowed domains: {}.",
                if s.invite_only {
                    "invite-only"
                } else {
                    "open sign-up"
                },
                if s.allowed_domains.is_empty() {
                    "any".to_owned()
                } else {
                    s.allowed_domains.join(", ")
                }
            )
        });
    web.finish("/manage", outcome)
}

#[derive(Deserialize)]
pub struct RetentionForm {
    #[serde(default)]
    max_age_hours: String,
    #[serde(default)]
    max_rows_per_vault: String,
}

fn number(field: &str, text: &str) -> Result<Option<i64>, OpError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| OpError::invalid(format!("{field} must be a whole number")))
}

/// `POST /manage/retention`.
pub async fn retention(web: Web, Form(form): Form<RetentionForm>) -> Response {
    let caller = signed_in!(web);
    let change = (|| {
        Ok::<_, OpError>(StoredRetention {
            max_age_hours: number("the maximum age", &form.max_age_hours)?,
            max_rows_per_vault: number("the rows per vault", &form.max_rows_per_vault)?,
        })
    })();
    let outcome = match change {
        Ok(stored) => admin::change_settings(
            &web.state,
            &caller,
            SettingsChange {
                logs_retention: Some(stored),
                ..SettingsChange::default()
            },
        )
        .await
        .map(|_| "Retention saved; the log was trimmed to it.".to_owned()),
        Err(e) => Err(e),
    };
    web.finish("/manage", outcome)
}

/// `POST /manage/invites`: shows the new link once.
pub async fn invite(web: Web, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let caller = signed_in!(web);
    let field = |name: &str| field(&fields, name);
    let vaults = vault_choices(&fields);
    let request = UserInviteRequest {
        email: field("email").unwrap_or_default(),
        role: field("role"),
        vaults,
    };
    match invites::invite_user(&web.state, &caller, request).await {
        Ok(created) => {
            let link = created.link(&web.state.config.base_url);
            let invite = &created.invite;
            let body = html! {
                p.notice.ok role="status" { "Invite for " strong { (invite.subject) } " created; it works once, until " (when(invite.expires_at)) "." }
                p { "Send this link to them (it is shown only here):" }
                div.secret {
                    pre #invite-link { (link) }
                    button.secondary type="button" data-copy="invite-link" hidden { "Copy" }
                }
                p { a href="/manage" { "Back to Manage instance" } }
            };
            let markup = page(&web, "Invite created", body);
            web.render(StatusCode::CREATED, markup)
        }
        Err(e) => web.finish("/manage", Err(e)),
    }
}

#[derive(Deserialize)]
pub struct SuffixForm {
    suffix: String,
}

/// `POST /manage/invites/revoke`.
pub async fn revoke_invite(web: Web, Form(form): Form<SuffixForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = invites::revoke(&web.state, &caller, InviteKind::User, &form.suffix)
        .await
        .map(|email| format!("Invite for {email} revoked."));
    web.finish("/manage", outcome)
}

#[derive(Deserialize)]
pub struct UserForm {
    email: String,
    #[serde(default)]
    role: String,
}

/// `POST /manage/users/role`.
pub async fn user_role(web: Web, Form(form): Form<UserForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = admin::set_user_role(&web.state, &caller, &form.email, &form.role)
        .await
        .map(|(email, role)| format!("{email} is now {role}."));
    web.finish("/manage", outcome)
}

/// `POST /manage/users/remove`.
pub async fn remove_user(web: Web, Form(form): Form<UserForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = admin::remove_user(&web.state, &caller, &form.email)
        .await
        .map(|email| format!("{email} removed."));
    web.finish("/manage", outcome)
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    to: Option<String>,
}

/// `POST /manage/email-test`: sends now and reports the SMTP server's answer.
pub async fn email_test(web: Web, Form(form): Form<TestForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = email::test(&web.state, &caller, form.to)
        .await
        .map(|(to, reply)| format!("Test email sent to {to}; the SMTP server answered: {reply}"));
    web.finish("/manage", outcome)
}
