//! Agent management as JSON: list, info, delete, rotate, rename, instance role. Invites are in
//! [`super::agent_invites`], vault membership in [`super::members`]; the rules are in
//! [`crate::ops::agents`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::agent_invites::describe_created;
use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::ops::agents::{self, AgentView};
use crate::ops::invites;

fn describe(view: &AgentView) -> Value {
    let agent = &view.agent;
    json!({
        "name": agent.name,
        "role": agent.role,
        "status": if view.active_sessions > 0 { "active" } else { "no token" },
        "active_sessions": view.active_sessions,
        "vaults": view.grants.iter().map(|(v, r)| json!({ "vault": v.name, "role": r })).collect::<Vec<_>>(),
        "created_by": view.created_by,
        "created_at": rfc3339(agent.created_at),
        "updated_at": rfc3339(agent.updated_at),
    })
}

/// `GET /v1/agents`: owners see all agents, others the ones they invited.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let rows: Vec<Value> = agents::list(&state, &caller)
        .await?
        .iter()
        .map(describe)
        .collect();
    Ok(axum::Json(json!({ "agents": rows })))
}

/// `GET /v1/agents/{name}`.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(describe(
        &agents::info(&state, &caller, &name).await?,
    )))
}

/// `DELETE /v1/agents/{name}`: the agent, its token, scoped tokens it minted and its grants.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    agents::delete(&state, &caller, &name).await?;
    Ok(axum::Json(json!({ "name": name, "deleted": true })))
}

#[derive(Deserialize)]
pub struct RotateBody {
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

/// `POST /v1/agents/{name}/rotate`: a rotation invite; the old sessions end when it is
/// redeemed.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.user()?;
    let agent = agents::managed_agent(&state, &caller, &name).await?;
    // The body is optional: an empty POST rotates with the default invite lifetime.
    let body: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody { ttl_seconds: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::invalid("the body must be {\"ttl_seconds\": N} or empty"))?
    };
    let created = invites::rotation_invite(&state, &caller, agent, body.ttl_seconds).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(describe_created(&created, &state)),
    ))
}

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

/// `POST /v1/agents/{name}/rename`.
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    agents::rename(&state, &caller, &name, &body.name).await?;
    Ok(axum::Json(
        json!({ "old_name": name, "new_name": body.name }),
    ))
}

#[derive(Deserialize)]
pub struct RoleBody {
    pub role: String,
}

/// `POST /v1/agents/{name}/role` (owners): the last owner — user or agent — stays.
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let role = agents::set_role(&state, &caller, &name, &body.role).await?;
    Ok(axum::Json(json!({ "name": name, "role": role })))
}
