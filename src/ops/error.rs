//! The one error type of the operations, shared by both adapters: the JSON API renders it as
//! `{"error": code, "message": …}`, the web UI as a page or a notice.

use axum::http::StatusCode;

use crate::store::StoreError;

#[derive(Debug)]
pub struct OpError {
    pub status: StatusCode,
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// What went wrong and, where possible, what to do about it. Never holds a secret.
    pub message: String,
    /// Seconds after which a refused caller may try again (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl OpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// A `429`: a ceiling refused this now; the caller may retry after `retry_after` seconds.
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, code, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpError {}

impl From<crate::ceilings::hashing::HashError> for OpError {
    fn from(err: crate::ceilings::hashing::HashError) -> Self {
        use crate::ceilings::hashing::{HashError, RETRY_AFTER_SECS};
        match err {
            HashError::Busy(busy) => Self::too_many(busy.to_string(), RETRY_AFTER_SECS),
            HashError::Failed => Self::internal("password hashing failed"),
        }
    }
}

impl From<StoreError> for OpError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            other => {
                tracing::error!(error = %other, "store failure");
                Self::internal("the server could not complete the request; see the server log")
            }
        }
    }
}
