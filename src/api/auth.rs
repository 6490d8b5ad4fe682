//! Who is calling the JSON API: the `Authorization: Bearer` token, resolved by
//! [`crate::ops::caller`]. The API never reads cookies, so a browser session cannot be used
//! against it from another site.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::limits::http::{Audience, too_many_requests};
pub use crate::ops::{Caller, Principal};

/// The raw bearer token of a request, if any.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    /// Resolves the token, then charges the call to its principal (AUTHED tier).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "missing `Authorization: Bearer <token>`; log in with `agent-vault auth login`",
            )
            .into_response()
        })?;
        let caller = crate::ops::caller::resolve(state, token)
            .await
            .map_err(IntoResponse::into_response)?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the session is invalid or has expired; log in again with `agent-vault auth login`",
                )
                .into_response()
            })?;
        if let Err(refusal) = state.proxy.limits.authed(&caller.limit_key()) {
            return Err(too_many_requests(&refusal, Audience::Api).map(axum::body::Body::from));
        }
        Ok(caller)
    }
}
