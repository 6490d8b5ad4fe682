//! Vaults as JSON: list, create, inspect, rename, delete, join. The rules are in
//! [`crate::ops::vaults`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::ops::vaults;

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

/// `GET /v1/vaults`: the caller's vaults; owners see every vault (role null where they hold
/// no grant).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let rows = vaults::list(&state, &caller).await?;
    let vaults: Vec<_> = rows
        .iter()
        .map(|l| json!({ "name": l.vault.name, "role": l.role, "created_at": rfc3339(l.vault.created_at) }))
        .collect();
    Ok(axum::Json(json!({ "vaults": vaults })))
}

/// `POST /v1/vaults`: any user may create a vault and becomes its admin.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    let vault = vaults::create(&state, &caller, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({ "name": vault.name, "role": "admin", "created_at": rfc3339(vault.created_at) }),
        ),
    ))
}

/// `GET /v1/vaults/{name}`: existence and the caller's role (members and owners).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vaults::get(&state, &caller, &name).await?;
    Ok(axum::Json(json!({
        "name": access.vault.name,
        "role": access.role,
        "created_at": rfc3339(access.vault.created_at),
    })))
}

/// `POST /v1/vaults/{name}/rename`.
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    vaults::rename(&state, &caller, &name, &body.name).await?;
    Ok(axum::Json(
        json!({ "old_name": name, "new_name": body.name }),
    ))
}

/// `DELETE /v1/vaults/{name}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let vault = vaults::delete(&state, &caller, &name).await?;
    Ok(axum::Json(json!({ "name": vault.name, "deleted": true })))
}

/// `DELETE /v1/admin/vaults/{name}`: owners only.
pub async fn owner_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let vault = vaults::owner_delete(&state, &caller, &name).await?;
    Ok(axum::Json(json!({ "name": vault.name, "deleted": true })))
}

/// `POST /v1/vaults/{name}/join`: an owner takes the admin role on a vault (recovery).
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    vaults::join(&state, &caller, &name).await?;
    Ok(axum::Json(
        json!({ "vault": name, "role": "admin", "joined": true }),
    ))
}

/// `GET /v1/admin/vaults`: every vault with its member count (owners).
pub async fn owner_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let rows = vaults::owner_list(&state, &caller).await?;
    let vaults: Vec<_> = rows
        .iter()
        .map(|(v, members)| {
            json!({
                "name": v.name,
                "is_default": vaults::is_default(&v.name),
                "user_members": members,
                "created_at": rfc3339(v.created_at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "vaults": vaults })))
}
