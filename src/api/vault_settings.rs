//! Per-vault settings and the request log as JSON. The rules are in
//! [`crate::ops::vault_settings`].

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::ops::vault_settings;
use crate::store::request_log;

/// `GET /v1/vaults/{name}/settings`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (access, policy) = vault_settings::policy(&state, &caller, &name).await?;
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
    let (vault, policy) =
        vault_settings::set_policy(&state, &caller, &name, &body.unmatched_host_policy).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "unmatched_host_policy": policy.as_str() }),
    ))
}

#[derive(Deserialize)]
pub struct LogQuery {
    limit: Option<u32>,
    /// ＋ Rows whose host contains this text.
    host: Option<String>,
    /// ＋ A code (`404`), a class (`5xx`) or `0` (no answer).
    status: Option<String>,
    /// ＋ Seconds since the epoch.
    since: Option<i64>,
    until: Option<i64>,
    /// ＋ Paging: rows older than this id; the live tail: rows newer than this id.
    before: Option<i64>,
    after: Option<i64>,
}

/// `GET /v1/vaults/{name}/logs[?limit=&host=&status=&since=&until=&before=&after=]`: the
/// newest proxied requests (members and admins).
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let status = match &query.status {
        Some(text) => vault_settings::parse_status(text)?,
        None => None,
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=vault_settings::MAX_LOG_ROWS).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "`limit` is {limit}; give 1 to {} rows (page on with `before`)",
            vault_settings::MAX_LOG_ROWS
        )));
    }
    let page = vault_settings::logs(
        &state,
        &caller,
        &name,
        request_log::Query {
            limit,
            host: query.host.filter(|h| !h.trim().is_empty()),
            status,
            since: query.since,
            until: query.until,
            before_id: query.before,
            after_id: query.after,
        },
    )
    .await?;
    // Each row also names its actor (an email or an agent's name), so the log answers "who".
    let requests: Vec<serde_json::Value> = page
        .rows
        .iter()
        .map(|row| {
            let mut value = json!(row);
            let name = row.actor_id.as_ref().and_then(|id| page.actors.get(id));
            value["actor"] = json!(name);
            value
        })
        .collect();
    Ok(axum::Json(
        json!({ "vault": page.vault, "requests": requests }),
    ))
}
