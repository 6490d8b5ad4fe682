//! Proposals as JSON: an agent files one (`POST /v1/proposals`); a member or above reviews it
//! (`…/proposals/{n}/approve`, `…/reject`). The rules are in [`crate::ops::proposals`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, ApiJson, ApiQuery, AppState, rfc3339};
use crate::crypto::SecretString;
use crate::ops::proposals::{
    self, ActorName, Decision, FiledBy, NewRequest, ProposalView, parse_number,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    vault: Option<String>,
    #[serde(default)]
    services: Vec<Value>,
    #[serde(default)]
    credentials: Vec<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    user_message: Option<String>,
}

/// `POST /v1/proposals`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let x_vault = headers
        .get("x-vault")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let filed = proposals::create(
        &state,
        &caller,
        NewRequest {
            vault: body.vault,
            x_vault,
            services: body.services,
            credentials: body.credentials,
            message: body.message,
            user_message: body.user_message,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "number": filed.proposal.number,
            "status": filed.proposal.status,
            "vault": filed.vault,
            "approval_url": filed.approval_url(&state.config.base_url),
        })),
    ))
}

fn actor_json(actor: &ActorName) -> Value {
    json!({ "type": actor.kind.as_str(), "name": actor.name })
}

/// The JSON form of a proposal (list items and `GET …/proposals/{n}` alike).
fn detail(view: &ProposalView) -> Value {
    let p = &view.proposal;
    let created_by = match &view.filed_by {
        FiledBy::Actor(actor) => actor_json(actor),
        FiledBy::Scoped(minter) => {
            let mut by = json!({ "type": "scoped", "name": null });
            if let Some(minter) = minter {
                by["minted_by"] = actor_json(minter);
            }
            by
        }
    };
    let credentials: Vec<Value> = p
        .credentials
        .iter()
        .map(|c| {
            json!({
                "key": c.key,
                "description": c.description,
                "exists": view.existing.contains(&c.key),
            })
        })
        .collect();
    json!({
        "number": p.number,
        "status": p.status,
        "vault": view.vault,
        "services": p.services,
        // The vault's current services that approving would replace (same host, port, path).
        "replaces": view.replaced,
        "credentials": credentials,
        "message": p.message,
        "user_message": p.user_message,
        "created_by": created_by,
        "created_at": rfc3339(p.created_at),
        "reviewed_by": view.reviewed_by.as_ref().map(actor_json),
        "reviewed_at": p.reviewed_at.map(rfc3339),
        "review_note": p.review_note,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /v1/vaults/{v}/proposals[?status=]`: any role; the proxy role sees pending ones only.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (access, items) = proposals::list(&state, &caller, &name, query.status.as_deref()).await?;
    let items: Vec<Value> = items.iter().map(detail).collect();
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "proposals": items }),
    ))
}

/// `GET /v1/vaults/{v}/proposals/{n}`: any role, so an agent can poll for the outcome.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let number = parse_number(&number)?;
    let view = proposals::get(&state, &caller, &name, number).await?;
    Ok(axum::Json(detail(&view)))
}

/// A JSON body that may be left out entirely (read as `{}`).
async fn optional_body<T: DeserializeOwned + Default>(bytes: Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let request = axum::extract::Request::new(axum::body::Body::from(bytes));
    ApiJson::<T>::from_request(request, &())
        .await
        .map(|ApiJson(body)| body)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    credentials: BTreeMap<String, SecretString>,
}

/// `POST /v1/vaults/{v}/proposals/{n}/approve`: member+, not the proposer.
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let number = parse_number(&number)?;
    proposals::check_reviewer(&state, &caller, &name).await?;
    let values = optional_body::<ApproveBody>(body).await?.credentials;
    let (vault, decided) =
        proposals::review(&state, &caller, &name, number, Decision::Approve(values)).await?;
    Ok(axum::Json(json!({
        "number": number,
        "status": decided.status,
        "vault": vault.name,
        "services": decided.services,
        "credentials": decided.credentials,
    })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/vaults/{v}/proposals/{n}/reject`: member+, not the proposer.
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let number = parse_number(&number)?;
    proposals::check_reviewer(&state, &caller, &name).await?;
    let reason = optional_body::<RejectBody>(body).await?.reason;
    let (vault, decided) =
        proposals::review(&state, &caller, &name, number, Decision::Reject(reason)).await?;
    Ok(axum::Json(json!({
        "number": number,
        "status": decided.status,
        "vault": vault.name,
    })))
}
