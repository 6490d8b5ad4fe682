//! Per-vault settings and the request log: `unmatched_host_policy` (what the broker does
//! with hosts no service matches) and the recent proxied requests.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::access::vault_access;
use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::broker::UnmatchedPolicy;
use crate::store::{VaultRole, request_log, vaults};

async fn policy(state: &AppState, vault_id: &str) -> Result<UnmatchedPolicy, ApiError> {
    let id = vault_id.to_owned();
    let stored = state
        .db(move |store, _| store.read(|conn| vaults::setting(conn, &id, UnmatchedPolicy::SETTING)))
        .await?;
    Ok(stored
        .and_then(|v| UnmatchedPolicy::parse(&v))
        .unwrap_or(UnmatchedPolicy::Forward))
}

/// `GET /v1/vaults/{name}/settings`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    let policy = policy(&state, &access.vault.id).await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "unmatched_host_policy": policy.as_str() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    unmatched_host_policy: String,
}

/// `PUT /v1/vaults/{name}/settings` (vault admins).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let policy = UnmatchedPolicy::parse(&body.unmatched_host_policy).ok_or_else(|| {
        ApiError::invalid(format!(
            "unknown unmatched_host_policy \"{}\" (expected forward or deny)",
            body.unmatched_host_policy
        ))
    })?;
    let id = access.vault.id.clone();
    state
        .db(move |store, _| {
            store
                .write(|tx| vaults::set_setting(tx, &id, UnmatchedPolicy::SETTING, policy.as_str()))
        })
        .await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "unmatched_host_policy": policy.as_str() }),
    ))
}

#[derive(Deserialize)]
pub struct LogQuery {
    limit: Option<u32>,
}

/// `GET /v1/vaults/{name}/logs[?limit=]`: the newest proxied requests (members and admins).
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Member)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let id = access.vault.id.clone();
    let rows = state
        .db(move |store, _| store.read(|conn| request_log::recent(conn, &id, limit)))
        .await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "requests": rows }),
    ))
}
