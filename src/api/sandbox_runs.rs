//! `POST /v1/sandbox/runs`: `vault run` reports that its sandbox started (mode and how long
//! the start took), so `/metrics` can count runs and their start times. The sandbox runs in
//! the CLI, not here; this is its one message to the server about it.
//!
//! Stance: any authenticated caller may report (a run holds only its own leased token); the
//! values are bounded and become a fixed label and a histogram sample, nothing more.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson};

/// The longest start recorded: a first container run may build its images.
pub const MAX_START_MS: u64 = 3_600_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    /// `process` or `container`.
    mode: String,
    /// From `vault run` starting to the sandbox running the command, in milliseconds.
    start_ms: u64,
}

pub async fn report(
    _caller: Caller,
    ApiJson(body): ApiJson<RunReport>,
) -> Result<impl IntoResponse, ApiError> {
    let mode: &'static str = match body.mode.as_str() {
        "process" => "process",
        "container" => "container",
        _ => {
            return Err(ApiError::invalid(
                "mode must be \"process\" or \"container\"",
            ));
        }
    };
    if body.start_ms > MAX_START_MS {
        return Err(ApiError::invalid(format!(
            "start_ms must be at most {MAX_START_MS} (one hour)"
        )));
    }
    crate::metrics::global().sandbox_started(mode, body.start_ms);
    Ok((StatusCode::CREATED, axum::Json(json!({ "recorded": true }))))
}
