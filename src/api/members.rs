//! Vault membership of users and agents as JSON. The rules are in [`crate::ops::members`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::ops::members;
use crate::store::VaultRole;

/// `GET /v1/vaults/{name}/users`: members, then pending invites pre-assigning the vault.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let found = members::list(&state, &caller, &name).await?;
    let mut users: Vec<_> = found
        .users
        .iter()
        .map(|(email, role)| json!({ "email": email, "role": role, "status": "active" }))
        .collect();
    users.extend(
        found
            .invited
            .iter()
            .map(|(email, role)| json!({ "email": email, "role": role, "status": "pending" })),
    );
    Ok(axum::Json(json!({ "vault": name, "users": users })))
}

#[derive(Deserialize)]
pub struct AddBody {
    email: String,
    #[serde(default = "member")]
    role: String,
}

fn member() -> String {
    "member".into()
}

/// `POST /v1/vaults/{name}/users`: grant an existing, active user a role.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AddBody>,
) -> Result<impl IntoResponse, ApiError> {
    let added = members::add_user(&state, &caller, &name, &body.email, &body.role).await?;
    let mut reply = json!({ "vault": name, "email": added.email, "role": added.role });
    if let Some(caution) = added.caution {
        reply["caution"] = json!(caution);
    }
    Ok((StatusCode::CREATED, axum::Json(reply)))
}

/// `DELETE /v1/vaults/{name}/users/{email}`.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, email)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let email = members::change_user(&state, &caller, &name, &email, None).await?;
    Ok(axum::Json(
        json!({ "vault": name, "email": email, "removed": true }),
    ))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

/// `POST /v1/vaults/{name}/users/{email}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, email)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let email = members::change_user(&state, &caller, &name, &email, Some(&body.role)).await?;
    let role = members::user_role(&body.role)?;
    Ok(axum::Json(
        json!({ "vault": name, "email": email, "role": role }),
    ))
}

/// `GET /v1/vaults/{v}/agents`.
pub async fn agent_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(vault): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let found = members::list(&state, &caller, &vault).await?;
    let agents: Vec<Value> = found
        .agents
        .iter()
        .map(|(n, r)| json!({ "name": n, "role": r }))
        .collect();
    Ok(axum::Json(
        json!({ "vault": found.access.vault.name, "agents": agents }),
    ))
}

#[derive(Deserialize)]
pub struct AgentBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /v1/vaults/{v}/agents` (vault admins).
pub async fn agent_add(
    State(state): State<AppState>,
    caller: Caller,
    Path(vault): Path<String>,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<impl IntoResponse, ApiError> {
    let role =
        members::add_agent(&state, &caller, &vault, &body.name, body.role.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "vault": vault, "name": body.name, "role": role })),
    ))
}

/// `DELETE /v1/vaults/{v}/agents/{name}`.
pub async fn agent_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((vault, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    members::change_agent(&state, &caller, &vault, &name, None).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "name": name, "removed": true }),
    ))
}

/// `POST /v1/vaults/{v}/agents/{name}/role`.
pub async fn agent_set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((vault, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let role: VaultRole = body.role.parse().map_err(ApiError::invalid)?;
    members::change_agent(&state, &caller, &vault, &name, Some(role)).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "name": name, "role": role }),
    ))
}
