//! The management HTTP API (axum): JSON in and out, one error body shape
//! (`{"error": "<stable code>", "message": "<what went wrong and what to do>"}`).
//!
//! Stance: handlers authenticate through the [`auth::Caller`] extractor and enforce roles
//! here, on the server, never in the CLI. Database work runs on blocking threads through
//! [`AppState::db`]; password hashing never holds the database lock.

mod accounts;
pub mod auth;
mod error;
mod json;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde_json::json;

use crate::crypto::Key;
use crate::store::{self, Store};
pub use accounts::{validate_email, validate_password};
pub use error::ApiError;
pub use json::ApiJson;

/// Largest request body the API accepts.
const BODY_LIMIT: usize = 1024 * 1024;

/// Settings the API needs from the server's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Externally reachable base URL, used in links.
    pub base_url: String,
    /// The MITM proxy port when the proxy is listening.
    pub mitm_port: Option<u16>,
    /// Whether email delivery is configured (codes are then never shown to the owner).
    pub smtp_enabled: bool,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub dek: Arc<Key>,
    pub config: Arc<ApiConfig>,
}

impl AppState {
    /// Runs database work on a blocking thread.
    pub async fn db<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Store, &Key) -> store::Result<R> + Send + 'static,
    ) -> Result<R, ApiError> {
        let (store, dek) = (self.store.clone(), self.dek.clone());
        tokio::task::spawn_blocking(move || work(&store, &dek))
            .await
            .map_err(|_| ApiError::internal("database task failed"))?
            .map_err(ApiError::from)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/auth/register", post(accounts::register))
        .route("/v1/auth/verify", post(accounts::verify))
        .route("/v1/auth/login", post(accounts::login))
        .route("/v1/auth/logout", post(accounts::logout))
        .route("/v1/auth/me", get(accounts::me))
        .route("/v1/auth/change-password", post(accounts::change_password))
        .route("/v1/auth/account", delete(accounts::delete_account))
        .route("/v1/admin/users/{email}", get(users::info))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn status(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let users = state.db(|s, _| s.read(store::users::count)).await?;
    Ok(axum::Json(json!({
        "initialized": users > 0,
        "needs_first_user": users == 0,
        "version": crate::VERSION,
        "base_url": state.config.base_url,
        "mitm_port": state.config.mitm_port,
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
