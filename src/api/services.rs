//! Services of a vault as JSON. The rules are in [`crate::ops::services`].

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::ops::services;

#[derive(Deserialize)]
pub struct ServicesBody {
    services: Vec<Value>,
}

/// `GET /v1/vaults/{name}/services`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (access, services) = services::list(&state, &caller, &name).await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "services": services }),
    ))
}

/// `PUT /v1/vaults/{name}/services`: replace the whole list.
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ServicesBody>,
) -> Result<impl IntoResponse, ApiError> {
    let written = services::replace(&state, &caller, &name, body.services).await?;
    Ok(axum::Json(json!({
        "vault": written.vault,
        "services_count": written.count,
        "missing_credentials": written.missing_credentials,
    })))
}

/// `POST /v1/vaults/{name}/services`: add or update services by (host, port, path).
pub async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ServicesBody>,
) -> Result<impl IntoResponse, ApiError> {
    let written = services::upsert(&state, &caller, &name, body.services).await?;
    Ok(axum::Json(json!({
        "vault": written.vault,
        "upserted": written.upserted,
        "services_count": written.count,
        "missing_credentials": written.missing_credentials,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    enabled: bool,
}

/// `PATCH /v1/vaults/{name}/services/{reference}`: enable or disable (idempotent).
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, reference)): Path<(String, String)>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (vault, matcher) =
        services::set_enabled(&state, &caller, &name, &reference, body.enabled).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "service": matcher, "enabled": body.enabled }),
    ))
}

/// `DELETE /v1/vaults/{name}/services/{reference}`.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, reference)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (vault, matcher, left) = services::remove(&state, &caller, &name, &reference).await?;
    Ok(axum::Json(json!({
        "vault": vault,
        "removed": matcher,
        "services_count": left,
    })))
}

/// `DELETE /v1/vaults/{name}/services`: remove every service.
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (vault, removed) = services::clear(&state, &caller, &name).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "removed_count": removed }),
    ))
}

/// `GET /v1/service-catalog` (public): the built-in templates.
pub async fn catalog() -> impl IntoResponse {
    axum::Json(json!({ "services": crate::services::templates() }))
}
