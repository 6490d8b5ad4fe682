//! The MITM / forward-proxy listener (`--mitm-port`, default 14322).
//!
//! Until the broker lands this listener only answers, on every request, that proxying is
//! not implemented yet — with the broker's error shape and marker header, so clients see a
//! clear refusal rather than a hang. The port handling (bind, disable with 0, non-fatal bind
//! failure) is already the real one.

use std::future::Future;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;

/// Marks a response as produced by the broker, not by an upstream.
pub const BROKER_ERROR_HEADER: &str = "x-agent-vault-proxy-error";

pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    let router = Router::new().fallback(not_implemented);
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!("MITM proxy listener stopped: {e}");
    }
}

async fn not_implemented() -> Response {
    let body = json!({
        "error": "not_implemented",
        "message": "the credential-injecting proxy is not implemented in this build yet",
    });
    let mut response = (StatusCode::NOT_IMPLEMENTED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(BROKER_ERROR_HEADER, HeaderValue::from_static("true"));
    response
}
