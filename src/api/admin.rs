//! Owner-only administration as JSON: remove users, change instance roles, instance settings.
//! The rules are in [`crate::ops::admin`].

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::broker::retention::RetentionEnv;
use crate::ops::admin::{self, Settings, SettingsChange};

/// `DELETE /v1/admin/users/{email}`.
pub async fn remove_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let removed = admin::remove_user(&state, &caller, &email).await?;
    Ok(axum::Json(json!({ "email": removed, "removed": true })))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

/// `POST /v1/admin/users/{email}/role`.
pub async fn set_user_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (email, role) = admin::set_user_role(&state, &caller, &email, &body.role).await?;
    Ok(axum::Json(json!({ "email": email, "role": role })))
}

fn settings_body(
    settings: &Settings,
    env: &RetentionEnv,
    limits: &crate::limits::Limits,
) -> serde_json::Value {
    let (effective, [age_source, rows_source]) = env.resolve(settings.stored_retention);
    json!({
        "rate_limit": rate_limit_body(&limits.effective(), &settings.stored_rate_limit),
        "invite_only": settings.invite_only,
        "allowed_email_domains": settings.allowed_domains,
        "logs_retention": {
            "max_age_hours": effective.max_age_hours,
            "max_rows_per_vault": effective.max_rows_per_vault,
            "source": { "max_age_hours": age_source, "max_rows_per_vault": rows_source },
            "locked": env.locked,
        },
    })
}

/// `GET /v1/admin/settings`.
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let settings = admin::settings(&state, &caller).await?;
    Ok(axum::Json(settings_body(
        &settings,
        &state.config.retention,
        &state.proxy.limits,
    )))
}

/// `PUT /v1/admin/settings`: changes only the fields given.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SettingsChange>,
) -> Result<impl IntoResponse, ApiError> {
    let settings = admin::change_settings(&state, &caller, body).await?;
    Ok(axum::Json(settings_body(
        &settings,
        &state.config.retention,
        &state.proxy.limits,
    )))
}

/// The limits in force with where each value came from, and the owner's override as stored.
fn rate_limit_body(
    effective: &crate::limits::Effective,
    stored: &crate::limits::StoredRateLimit,
) -> serde_json::Value {
    let mut body = effective.to_json();
    body["override"] = json!(stored);
    body
}

/// `POST /v1/admin/settings/rate-limit/preview`: what an override would give, unsaved.
pub async fn preview_rate_limit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::limits::StoredRateLimit>,
) -> Result<impl IntoResponse, ApiError> {
    let effective = admin::preview_rate_limit(&state, &caller, &body)?;
    Ok(axum::Json(rate_limit_body(&effective, &body)))
}
