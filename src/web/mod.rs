//! The web UI, served by the server itself at `/` on the API port: server-rendered HTML from
//! templates compiled into the binary (`maud`, escaping every value), one stylesheet and one
//! small script as static files, plain forms that work without the script.
//!
//! Stance: a thin adapter, like [`crate::api`]. Pages call the operations in [`crate::ops`]
//! with the signed-in [`crate::ops::Caller`], so every permission check and store write is the
//! one the JSON API uses. Browser security lives in [`session`]: an `HttpOnly` session cookie,
//! a CSRF token checked on every state-changing request before any handler runs, a strict
//! Content-Security-Policy (no inline script or style), `X-Frame-Options: DENY`, no secret in
//! a URL, and `Cache-Control: no-store` on every page. Credential values are rendered only on
//! an explicit reveal by someone allowed to see them.

/// The signed-in caller of a page handler, or an early return to the login page.
macro_rules! signed_in {
    ($web:expr) => {
        match $web.signed_in() {
            Ok(caller) => caller.clone(),
            Err(to_login) => return *to_login,
        }
    };
}

mod account;
mod agents;
mod approve;
mod auth;
mod credentials;
pub mod google;
mod invite;
mod layout;
mod logs;
mod manage;
mod members;
mod proposals;
mod services;
pub mod session;
mod vaults;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::ops::AppState;

const STYLESHEET: &str = include_str!("assets/app.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// The routes of the web UI; the server merges them with the JSON API's.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(auth::home))
        .route("/static/app.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .route("/setup", get(auth::setup_page).post(auth::setup))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/register", get(auth::register_page).post(auth::register))
        .route("/verify", get(auth::verify_page).post(auth::verify))
        .route("/auth/google", get(google::start))
        .route("/auth/google/callback", get(google::callback))
        .route("/invite/{token}", get(invite::show).post(invite::accept))
        .route(
            "/approve/{vault}/{number}",
            get(approve::show).post(approve::act),
        )
        .route("/vaults", get(vaults::list).post(vaults::create))
        .route("/vaults/{vault}", get(vaults::open))
        .route("/vaults/{vault}/join", post(vaults::join))
        .route(
            "/vaults/{vault}/services",
            get(services::list).post(services::save),
        )
        .route("/vaults/{vault}/services/new", get(services::new_form))
        .route("/vaults/{vault}/services/edit", get(services::edit_form))
        .route("/vaults/{vault}/services/toggle", post(services::toggle))
        .route("/vaults/{vault}/services/delete", post(services::delete))
        .route(
            "/vaults/{vault}/credentials",
            get(credentials::list).post(credentials::set),
        )
        .route(
            "/vaults/{vault}/credentials/reveal",
            post(credentials::reveal),
        )
        .route(
            "/vaults/{vault}/credentials/delete",
            post(credentials::delete),
        )
        .route("/vaults/{vault}/proposals", get(proposals::list))
        .route(
            "/vaults/{vault}/proposals/{number}",
            get(proposals::show).post(proposals::act),
        )
        .route("/vaults/{vault}/logs", get(logs::page))
        .route("/vaults/{vault}/logs/tail", get(logs::tail))
        .route("/vaults/{vault}/members", get(members::page))
        .route("/vaults/{vault}/members/users", post(members::add_user))
        .route(
            "/vaults/{vault}/members/users/role",
            post(members::user_role),
        )
        .route(
            "/vaults/{vault}/members/users/remove",
            post(members::remove_user),
        )
        .route("/vaults/{vault}/members/agents", post(members::add_agent))
        .route(
            "/vaults/{vault}/members/agents/role",
            post(members::agent_role),
        )
        .route(
            "/vaults/{vault}/members/agents/remove",
            post(members::remove_agent),
        )
        .route("/vaults/{vault}/settings", get(vaults::settings))
        .route("/vaults/{vault}/settings/rename", post(vaults::rename))
        .route("/vaults/{vault}/settings/policy", post(vaults::policy))
        .route("/vaults/{vault}/settings/delete", post(vaults::delete))
        .route("/agents", get(agents::list))
        .route("/agents/invite", post(agents::invite))
        .route("/agents/invites/revoke", post(agents::revoke_invite))
        .route("/agents/{name}/rotate", post(agents::rotate))
        .route("/agents/{name}/rename", post(agents::rename))
        .route("/agents/{name}/role", post(agents::set_role))
        .route("/agents/{name}/delete", post(agents::delete))
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/delete", post(account::delete))
        .route("/manage", get(manage::show))
        .route("/manage/access", post(manage::access))
        .route("/manage/retention", post(manage::retention))
        .route("/manage/rate-limit", post(manage::rate_limit))
        .route("/manage/email-test", post(manage::email_test))
        .route("/manage/invites", post(manage::invite))
        .route("/manage/invites/revoke", post(manage::revoke_invite))
        .route("/manage/users/role", post(manage::user_role))
        .route("/manage/users/remove", post(manage::remove_user))
        .layer(axum::middleware::from_fn(session::csrf_guard))
        .layer(axum::middleware::map_response(rejections_as_pages))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::api::invalidate_on_change,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The web UI's Content-Security-Policy: only this origin's stylesheet and script, no
/// inline script or style, forms only to this origin, never framed.
const WEB_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every web response: those of the API port (no framing, no sniffing, no
/// referrer, no caching of pages) with the web's policy.
async fn security_headers(mut response: Response) -> Response {
    crate::api::harden(response.headers_mut(), WEB_CSP);
    response
}

/// axum answers a request its extractors refuse (a form missing a field, a path parameter
/// that is not UTF-8, a method the route lacks) in plain text; the browser gets the UI's
/// error page instead, naming what was wrong. The original headers (`Allow`, cookies) stay.
async fn rejections_as_pages(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|t| t.as_bytes().starts_with(b"text/plain"));
    if !response.status().is_client_error() || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejections are a line of text; anything longer is not one of them.
    let detail = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&detail);
    let detail = detail.trim().trim_end_matches('.');
    let message = if detail.is_empty() {
        format!(
            "This address cannot answer that request ({}).",
            parts.status
        )
    } else {
        format!("{detail}. Go back, reload the page and try again.")
    };
    let title = parts.status.canonical_reason().unwrap_or("Request refused");
    let (page, body) = layout::error_page(parts.status, title, &message).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(page.headers);
    Response::from_parts(parts, body)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Not secret, and versioned with the binary: browsers may keep it a while.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
