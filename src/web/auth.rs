//! Signing in and out: the first-run page that creates the owner, password login (and the
//! link to Google sign-in when configured), self sign-up with its verification code, logout.
//! The rules are [`crate::ops::accounts`]'s; a browser login lasts a working day.

use axum::Form;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{csrf, page};
use super::session::{SESSION_COOKIE, Web, cookie, safe_next};
use crate::crypto::SecretString;
use crate::ops::accounts::{self, Registered, SessionUse};
use crate::ops::{AppState, OpError};

/// `/`: the first-run page, the vaults, or the login page.
pub async fn home(web: Web) -> Response {
    match accounts::initialized(&web.state).await {
        Ok(false) => web.redirect("/setup"),
        Ok(true) if web.viewer.is_some() => web.redirect("/vaults"),
        Ok(true) => web.redirect("/login"),
        Err(e) => failure(web, e),
    }
}

/// A page for an unexpected failure (the store, a lost task).
pub fn failure(web: Web, e: OpError) -> Response {
    let body = html! { p.notice.error role="alert" { (e.message) } };
    let status = e.status;
    let markup = page(&web, "Something went wrong", body);
    let mut response = web.render(status, markup);
    if let Some(seconds) = e.retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, seconds.into());
    }
    response
}

fn google_button(state: &AppState) -> Markup {
    html! {
        @if super::google::enabled(state) {
            p.or { "or" }
            p { a.button.google href="/auth/google" { "Sign in with Google" } }
        }
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: SecretString,
    #[serde(default)]
    confirm: Option<SecretString>,
    #[serde(default)]
    next: Option<String>,
}

fn setup_form(web: &Web, email: &str, error: Option<&str>) -> Markup {
    let body = html! {
        p.lede { "No account exists yet. The first account becomes the owner of this instance and the admin of the default vault." }
        @if let Some(error) = error { p.notice.error role="alert" { (error) } }
        form.stack method="post" action="/setup" {
            (csrf(web))
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) required autocomplete="username" autofocus;
            label for="password" { "Password" span.hint { "At least 8 characters; a long passphrase is best." } }
            input #password type="password" name="password" required minlength="8" autocomplete="new-password";
            label for="confirm" { "Password again" }
            input #confirm type="password" name="confirm" required minlength="8" autocomplete="new-password";
            div.actions { button type="submit" { "Create the owner account" } }
        }
        (google_button(&web.state))
    };
    page(web, "Welcome to agent-vault", body)
}

/// `GET /setup`: creates the owner while no account exists.
pub async fn setup_page(web: Web) -> Response {
    match accounts::initialized(&web.state).await {
        Ok(true) => web.redirect("/login"),
        Ok(false) => {
            let markup = setup_form(&web, "", None);
            web.render(StatusCode::OK, markup)
        }
        Err(e) => failure(web, e),
    }
}

/// `POST /setup`.
pub async fn setup(mut web: Web, Form(form): Form<Credentials>) -> Response {
    match accounts::initialized(&web.state).await {
        Ok(true) => {
            web.error_notice("This instance already has an owner; sign in, or ask for an invite.");
            return web.redirect("/login");
        }
        Err(e) => return failure(web, e),
        Ok(false) => {}
    }
    if form.confirm.as_ref().map(SecretString::expose) != Some(form.password.expose()) {
        let markup = setup_form(&web, &form.email, Some("The two passwords differ."));
        return web.render(StatusCode::BAD_REQUEST, markup);
    }
    let state = web.state.clone();
    match accounts::register(&state, &form.email, form.password, SessionUse::Browser).await {
        Ok(Registered::Owner(login)) => {
            web.sign_in(login.token.expose());
            web.notice(format!(
                "Owner account {} created. Next: add a service and its credential to a vault.",
                login.email
            ));
            web.redirect("/vaults")
        }
        Ok(Registered::Pending { .. }) => {
            web.error_notice("This instance already has an owner; sign in, or ask for an invite.");
            web.redirect("/login")
        }
        Err(e) => {
            let markup = setup_form(&web, &form.email, Some(&e.message));
            web.render(e.status, markup)
        }
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

async fn login_form(web: &Web, email: &str, next: &str, error: Option<&str>) -> Markup {
    let invite_only = accounts::signup_policy(&web.state)
        .await
        .map(|(invite_only, _)| invite_only)
        .unwrap_or(true);
    let body = html! {
        @if let Some(error) = error { p.notice.error role="alert" { (error) } }
        form.stack method="post" action="/login" {
            (csrf(web))
            input type="hidden" name="next" value=(next);
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) required autocomplete="username" autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" required autocomplete="current-password";
            div.actions { button type="submit" { "Sign in" } }
        }
        (google_button(&web.state))
        @if !invite_only {
            p { "No account? " a href="/register" { "Sign up" } " — or enter " a href="/verify" { "a verification code" } "." }
        } @else {
            p.muted { "This instance is invite-only: ask an existing user for an invite link." }
        }
    };
    page(web, "Sign in", body)
}

/// `GET /login`.
pub async fn login_page(web: Web, Query(query): Query<NextQuery>) -> Response {
    match accounts::initialized(&web.state).await {
        Ok(false) => return web.redirect("/setup"),
        Err(e) => return failure(web, e),
        Ok(true) => {}
    }
    if web.viewer.is_some() {
        let next = safe_next(query.next.as_deref());
        return web.redirect(&next);
    }
    let next = safe_next(query.next.as_deref());
    let markup = login_form(&web, "", &next, None).await;
    web.render(StatusCode::OK, markup)
}

/// `POST /login`.
pub async fn login(mut web: Web, Form(form): Form<Credentials>) -> Response {
    let next = safe_next(form.next.as_deref());
    let state = web.state.clone();
    let from = web.peer;
    match accounts::login(
        &state,
        &form.email,
        form.password,
        SessionUse::Browser,
        from,
    )
    .await
    {
        Ok(login) => {
            web.sign_in(login.token.expose());
            web.redirect(&next)
        }
        Err(e) => {
            let markup = login_form(&web, &form.email, &next, Some(&capitalized(&e.message))).await;
            web.render(e.status, markup)
        }
    }
}

/// A message as a sentence on a page.
pub fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `POST /logout`: ends the session on the server and forgets the cookie.
pub async fn logout(mut web: Web, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let state = web.state.clone();
        if let Err(e) = accounts::end_session(&state, &token).await {
            return failure(web, e);
        }
    }
    web.sign_out();
    web.notice("Signed out.");
    web.redirect("/login")
}

fn register_form(web: &Web, email: &str, domains: &[String], error: Option<&str>) -> Markup {
    let body = html! {
        p.lede { "Create an account. You get a 6-digit code to verify it: by email when this server sends email, otherwise from the instance owner." }
        @if !domains.is_empty() {
            p.muted { "Sign-ups are open to addresses at " (domains.join(", ")) "." }
        }
        @if let Some(error) = error { p.notice.error role="alert" { (error) } }
        form.stack method="post" action="/register" {
            (csrf(web))
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) required autocomplete="username" autofocus;
            label for="password" { "Password" span.hint { "At least 8 characters." } }
            input #password type="password" name="password" required minlength="8" autocomplete="new-password";
            div.actions { button type="submit" { "Sign up" } }
        }
        (google_button(&web.state))
        p { "Already have a code? " a href="/verify" { "Verify your account" } "." }
    };
    page(web, "Sign up", body)
}

/// `GET /register`.
pub async fn register_page(web: Web) -> Response {
    match accounts::signup_policy(&web.state).await {
        Ok((true, _)) => {
            let body = html! {
                p { "This instance is invite-only: ask an existing user for an invite link." }
                p { a href="/login" { "Sign in" } }
            };
            let markup = page(&web, "Sign up", body);
            web.render(StatusCode::FORBIDDEN, markup)
        }
        Ok((false, domains)) => {
            let markup = register_form(&web, "", &domains, None);
            web.render(StatusCode::OK, markup)
        }
        Err(e) => failure(web, e),
    }
}

/// `POST /register`.
pub async fn register(mut web: Web, Form(form): Form<Credentials>) -> Response {
    let state = web.state.clone();
    match accounts::register(&state, &form.email, form.password, SessionUse::Browser).await {
        Ok(Registered::Owner(login)) => {
            web.sign_in(login.token.expose());
            web.redirect("/vaults")
        }
        Ok(Registered::Pending { email }) => {
            let how = if state.mailer.is_enabled() {
                "A 6-digit code is on its way to this address by email."
            } else {
                "Ask the instance owner for your 6-digit code (they see it under Manage instance)."
            };
            let markup = verify_form(
                &web,
                &email,
                Some(&format!(
                    "If this address can register, a code was created. {how}"
                )),
                None,
            );
            web.render(StatusCode::OK, markup)
        }
        Err(e) => {
            let domains = accounts::signup_policy(&state)
                .await
                .map(|(_, d)| d)
                .unwrap_or_default();
            let markup = register_form(&web, &form.email, &domains, Some(&capitalized(&e.message)));
            web.render(e.status, markup)
        }
    }
}

fn verify_form(web: &Web, email: &str, info: Option<&str>, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(info) = info { p.notice.ok role="status" { (info) } }
        @if let Some(error) = error { p.notice.error role="alert" { (error) } }
        form.stack method="post" action="/verify" {
            (csrf(web))
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) required autocomplete="username";
            label for="code" { "Verification code" span.hint { "6 digits." } }
            input #code type="text" name="code" required inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,8}";
            label for="password" { "Password" span.hint { "The one you registered with, or a new one: the code proves the address, and the account takes this password." } }
            input #password type="password" name="password" required minlength="8" autocomplete="new-password";
            div.actions { button type="submit" { "Verify and sign in" } }
        }
    };
    page(web, "Verify your account", body)
}

/// `GET /verify`.
pub async fn verify_page(web: Web) -> Response {
    let markup = verify_form(&web, "", None, None);
    web.render(StatusCode::OK, markup)
}

#[derive(Deserialize)]
pub struct VerifyForm {
    email: String,
    code: SecretString,
    password: SecretString,
}

/// `POST /verify`.
pub async fn verify(mut web: Web, Form(form): Form<VerifyForm>) -> Response {
    let state = web.state.clone();
    match accounts::verify(
        &state,
        &form.email,
        &form.code,
        form.password,
        SessionUse::Browser,
    )
    .await
    {
        Ok(login) => {
            web.sign_in(login.token.expose());
            web.notice(format!("Account {} verified.", login.email));
            web.redirect("/vaults")
        }
        Err(e) => {
            let markup = verify_form(&web, &form.email, None, Some(&capitalized(&e.message)));
            web.render(e.status, markup)
        }
    }
}
