//! The management HTTP API (axum): JSON in and out, one error body shape
//! (`{"error": "<stable code>", "message": "<what went wrong and what to do>"}`).
//!
//! Stance: a thin adapter. Handlers authenticate through the [`auth::Caller`] extractor
//! (bearer tokens only, never cookies), parse the body, call the operation in [`crate::ops`]
//! that checks the caller's rights and does the work, and render its answer. No handler checks
//! a role or writes the store itself, so the web UI ([`crate::web`]) follows the same rules.

mod accounts;
mod admin;
mod agent_invites;
mod agents;
pub mod auth;
mod credentials;
mod discover;
mod email;
mod error;
pub mod hosts;
mod invites;
mod json;
mod members;
mod proposals;
mod query;
mod sandbox_runs;
mod services;
mod sessions;
mod users;
mod vault_settings;
mod vaults;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post};
use serde_json::json;

use crate::broker::Invalidation;
pub use crate::ops::accounts::{validate_email, validate_password};
pub use crate::ops::{ApiConfig, AppState, rfc3339};
use crate::store;
pub use error::ApiError;
pub use json::ApiJson;
pub use query::ApiQuery;
pub use sandbox_runs::MAX_START_MS as SANDBOX_MAX_START_MS;
pub use sessions::MAX_LEASE as MAX_LEASE_SECONDS;

/// Largest request body the API accepts.
const BODY_LIMIT: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/auth/register", post(accounts::register))
        .route("/v1/auth/verify", post(accounts::verify))
        .route("/v1/auth/login", post(accounts::login))
        .route("/v1/auth/logout", post(accounts::logout))
        .route("/v1/auth/me", get(accounts::me))
        .route("/v1/auth/change-password", post(accounts::change_password))
        .route("/v1/auth/account", delete(accounts::delete_account))
        .route("/v1/admin/users", get(users::owner_list))
        .route(
            "/v1/admin/users/{email}",
            get(users::info).delete(admin::remove_user),
        )
        .route("/v1/admin/users/{email}/role", post(admin::set_user_role))
        .route("/v1/admin/vaults", get(vaults::owner_list))
        .route("/v1/admin/vaults/{name}", delete(vaults::owner_delete))
        .route(
            "/v1/admin/settings",
            get(admin::get_settings).put(admin::put_settings),
        )
        .route(
            "/v1/admin/settings/rate-limit/preview",
            post(admin::preview_rate_limit),
        )
        .route("/v1/admin/email", get(email::status))
        .route("/v1/admin/email/test", post(email::test))
        .route("/v1/users", get(users::list))
        .route(
            "/v1/users/invites",
            get(invites::list).post(invites::create),
        )
        .route("/v1/users/invites/{suffix}", delete(invites::revoke))
        .route("/v1/invites/{token}", get(invites::details))
        .route("/v1/invites/{token}/accept", post(invites::accept))
        .route("/v1/vaults", get(vaults::list).post(vaults::create))
        .route("/v1/vaults/{name}", get(vaults::get).delete(vaults::delete))
        .route("/v1/vaults/{name}/rename", post(vaults::rename))
        .route("/v1/vaults/{name}/join", post(vaults::join))
        .route(
            "/v1/vaults/{name}/credentials",
            get(credentials::list)
                .post(credentials::set)
                .delete(credentials::delete),
        )
        .route("/v1/vaults/{name}/credentials/{key}", get(credentials::get))
        .route(
            "/v1/vaults/{name}/users",
            get(members::list).post(members::add),
        )
        .route("/v1/vaults/{name}/users/{email}", delete(members::remove))
        .route(
            "/v1/vaults/{name}/users/{email}/role",
            post(members::set_role),
        )
        .route(
            "/v1/vaults/{name}/services",
            get(services::list)
                .put(services::replace)
                .post(services::upsert)
                .delete(services::clear),
        )
        .route(
            "/v1/vaults/{name}/services/{reference}",
            axum::routing::patch(services::patch).delete(services::remove),
        )
        .route("/v1/service-catalog", get(services::catalog))
        .route(
            "/v1/vaults/{name}/settings",
            get(vault_settings::get).put(vault_settings::put),
        )
        .route("/v1/vaults/{name}/logs", get(vault_settings::logs))
        .route("/v1/proposals", post(proposals::create))
        .route("/v1/vaults/{name}/proposals", get(proposals::list))
        .route("/v1/vaults/{name}/proposals/{number}", get(proposals::get))
        .route(
            "/v1/vaults/{name}/proposals/{number}/approve",
            post(proposals::approve),
        )
        .route(
            "/v1/vaults/{name}/proposals/{number}/reject",
            post(proposals::reject),
        )
        .route("/v1/sessions", post(sessions::mint))
        .route("/v1/sessions/renew", post(sessions::renew))
        .route("/v1/sandbox/runs", post(sandbox_runs::report))
        .route("/v1/discover", get(discover::discover))
        .route("/v1/agents", get(agents::list))
        .route(
            "/v1/agents/invites",
            get(agent_invites::list).post(agent_invites::invite),
        )
        .route("/v1/agents/invites/{suffix}", delete(agent_invites::revoke))
        .route(
            "/v1/agents/{name}",
            get(agents::info).delete(agents::delete),
        )
        .route("/v1/agents/{name}/rotate", post(agents::rotate))
        .route("/v1/agents/{name}/rename", post(agents::rename))
        .route("/v1/agents/{name}/role", post(agents::set_role))
        .route("/v1/agent-invites/{token}", get(agent_invites::details))
        .route(
            "/v1/agent-invites/{token}/redeem",
            post(agent_invites::redeem),
        )
        .route(
            "/v1/vaults/{name}/agents",
            get(members::agent_list).post(members::agent_add),
        )
        .route(
            "/v1/vaults/{name}/agents/{agent}",
            delete(members::agent_remove),
        )
        .route(
            "/v1/vaults/{name}/agents/{agent}/role",
            post(members::agent_set_role),
        )
        .route("/v1/mitm/ca.pem", get(ca_pem))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            invalidate_on_change,
        ))
        .layer(axum::middleware::map_response(security_headers))
        // Added after the layers: upstream responses pass through unchanged, bodies stream
        // without the API's size limit.
        .route("/proxy/{*rest}", any(explicit_proxy))
        // No host at all: the handler's error says how the path is formed.
        .route("/proxy/", any(explicit_proxy))
        .with_state(state)
}

/// The API's Content-Security-Policy: JSON loads nothing.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers every response on the API port carries (the web UI passes its own policy): no
/// sniffing, no framing, no referrer, no caching unless a route says otherwise.
pub(crate) fn harden(headers: &mut axum::http::HeaderMap, csp: &'static str) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    harden(response.headers_mut(), API_CSP);
    response
}

/// A successful change may affect what the broker serves: it forgets what the change made
/// stale (see [`invalidation_for`]) and keeps everything else warm. (A web form's success
/// is a redirect; its routes are not classified, so they invalidate everything.)
pub(crate) async fn invalidate_on_change(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let caller_token = auth::bearer_token_of(request.headers()).map(crate::crypto::hash_token);
    let response = next.run(request).await;
    if changes && (response.status().is_success() || response.status().is_redirection()) {
        state
            .proxy
            .broker
            .apply_everywhere(invalidation_for(&method, &path, caller_token))
            .await;
    }
    response
}

/// What a successful change at `method path` makes stale in the broker. Routes not listed
/// invalidate everything, so a new route is safe before it is classified here.
pub fn invalidation_for(
    method: &axum::http::Method,
    path: &str,
    caller_token_hash: Option<String>,
) -> Invalidation {
    use axum::http::Method;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        // New sessions and tokens, and proposals: nothing cached changes.
        (&Method::POST, ["v1", "auth", "login" | "register" | "verify"])
        | (&Method::POST, ["v1", "sessions"])
        | (&Method::POST, ["v1", "proposals"])
        | (&Method::POST, ["v1", "sandbox", "runs"])
        | (&Method::POST, ["v1", "vaults", _, "proposals", _, "reject"]) => Invalidation::Nothing,
        (&Method::POST, ["v1", "auth", "logout"]) => {
            caller_token_hash.map_or(Invalidation::Scopes, Invalidation::Token)
        }
        // A renewed lease moves a token's expiry.
        (&Method::POST, ["v1", "sessions", "renew"]) => Invalidation::Scopes,
        // One vault's contents.
        (
            _,
            [
                "v1",
                "vaults",
                name,
                "credentials" | "services" | "settings",
                ..,
            ],
        )
        | (&Method::POST, ["v1", "vaults", name, "proposals", _, "approve"]) => {
            percent_encoding::percent_decode_str(name)
                .decode_utf8()
                .map_or(Invalidation::Everything, |n| {
                    Invalidation::Vault(n.into_owned())
                })
        }
        // Who may use which vault.
        (_, ["v1", "vaults", _, "users" | "agents" | "join", ..]) | (_, ["v1", "agents", ..]) => {
            Invalidation::Scopes
        }
        _ => Invalidation::Everything,
    }
}

async fn explicit_proxy(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    crate::proxy::explicit::handle(state.proxy.clone(), request).await
}

/// `GET /v1/mitm/ca.pem` (public): the root CA clients must trust, the proxy port and, when
/// that listener runs, the proxy's TLS port.
async fn ca_pem(State(state): State<AppState>) -> axum::response::Response {
    match (&state.config.ca_pem, state.config.mitm_port) {
        (Some(pem), Some(port)) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file")),
                    (
                        header::HeaderName::from_static("x-mitm-port"),
                        HeaderValue::from(port),
                    ),
                ],
                pem.clone(),
            )
                .into_response();
            if let Some(tls_port) = state.config.proxy_tls_port {
                response.headers_mut().insert(
                    header::HeaderName::from_static(crate::sandbox::hop::TLS_PORT_HEADER),
                    HeaderValue::from(tls_port),
                );
            }
            response
        }
        _ => ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "mitm_disabled",
            "this server runs without the MITM proxy (started with --mitm-port 0, or the port or CA was unavailable), so there is no CA to fetch",
        )
        .into_response(),
    }
}

/// Liveness plus database reachability: 503 when the database does not answer, so a load
/// balancer takes a replica that lost its database out of rotation.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let engine = if state.store.postgres().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let reachable = state.db(|s, _| s.ping()).await.is_ok();
    let code = if reachable {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({
            "status": if reachable { "ok" } else { "degraded" },
            "database": { "engine": engine, "reachable": reachable },
        })),
    )
}

/// `GET /metrics` (an instance owner's token): Prometheus text format. Pool gauges are read
/// at scrape time.
async fn metrics(
    State(state): State<AppState>,
    caller: auth::Caller,
) -> Result<impl IntoResponse, ApiError> {
    crate::ops::admin::require_owner(&caller)?;
    let metrics = crate::metrics::global();
    if let Some(pg) = state.store.postgres() {
        let (open, idle, waiting) = pg.pool_status();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics.db_connections.set(gauge(open));
        metrics.db_connections_idle.set(gauge(idle));
        metrics.db_waiting.set(gauge(waiting));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        metrics.render(),
    ))
}

async fn status(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (users, instance_id) = state
        .db(|s, _| s.read(|c| Ok((store::users::count(c)?, store::settings::instance_id(c)?))))
        .await?;
    Ok(axum::Json(json!({
        "initialized": users > 0,
        "needs_first_user": users == 0,
        "version": crate::VERSION,
        "base_url": state.config.base_url,
        "mitm_port": state.config.mitm_port,
        "proxy_tls_port": state.config.proxy_tls_port,
        "instance_id": instance_id,
    })))
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such API route; check the agent-vault version of the server and the CLI",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that HTTP method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn changes_invalidate_only_what_they_touch() {
        let table: &[(Method, &str, Invalidation)] = &[
            (Method::POST, "/v1/auth/login", Invalidation::Nothing),
            (Method::POST, "/v1/sessions", Invalidation::Nothing),
            (Method::POST, "/v1/proposals", Invalidation::Nothing),
            (
                Method::POST,
                "/v1/auth/logout",
                Invalidation::Token("h".into()),
            ),
            (Method::POST, "/v1/sessions/renew", Invalidation::Scopes),
            (
                Method::POST,
                "/v1/vaults/pay%2Dments/credentials",
                Invalidation::Vault("pay-ments".into()),
            ),
            (
                Method::DELETE,
                "/v1/vaults/default/credentials",
                Invalidation::Vault("default".into()),
            ),
            (
                Method::PATCH,
                "/v1/vaults/default/services/x",
                Invalidation::Vault("default".into()),
            ),
            (
                Method::PUT,
                "/v1/vaults/default/settings",
                Invalidation::Vault("default".into()),
            ),
            (
                Method::POST,
                "/v1/vaults/default/proposals/3/approve",
                Invalidation::Vault("default".into()),
            ),
            (
                Method::POST,
                "/v1/vaults/default/users",
                Invalidation::Scopes,
            ),
            (Method::DELETE, "/v1/agents/bot", Invalidation::Scopes),
            (
                Method::POST,
                "/v1/vaults/default/rename",
                Invalidation::Everything,
            ),
            (
                Method::DELETE,
                "/v1/vaults/default",
                Invalidation::Everything,
            ),
            (
                Method::DELETE,
                "/v1/admin/users/x@example.com",
                Invalidation::Everything,
            ),
        ];
        for (method, path, expected) in table {
            assert_eq!(
                &invalidation_for(method, path, Some("h".into())),
                expected,
                "{method} {path}"
            );
        }
    }
}
