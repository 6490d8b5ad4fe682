//! Credentials of a vault as JSON. The rules are in [`crate::ops::credentials`].

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::crypto::SecretString;
use crate::ops::credentials;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    reveal: bool,
}

/// `GET /v1/vaults/{name}/credentials[?reveal=true]`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (keys, values) = credentials::list(&state, &caller, &name, query.reveal).await?;
    let mut body = json!({ "vault": name, "keys": keys });
    if query.reveal {
        body["credentials"] = values
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": value.expose() }))
            .collect();
    }
    Ok(axum::Json(body))
}

/// `GET /v1/vaults/{name}/credentials/{key}`: one decrypted value.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, key)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let value = credentials::reveal(&state, &caller, &name, &key).await?;
    Ok(axum::Json(json!({ "key": key, "value": value.expose() })))
}

#[derive(Deserialize)]
pub struct SetBody {
    credentials: BTreeMap<String, SecretString>,
}

/// `POST /v1/vaults/{name}/credentials`: set several credentials at once.
pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SetBody>,
) -> Result<impl IntoResponse, ApiError> {
    let keys = credentials::set(&state, &caller, &name, body.credentials).await?;
    Ok(axum::Json(json!({ "vault": name, "set": keys })))
}

#[derive(Deserialize)]
pub struct DeleteBody {
    keys: Vec<String>,
}

/// `DELETE /v1/vaults/{name}/credentials`: delete several credentials; all must exist.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<impl IntoResponse, ApiError> {
    let deleted = credentials::delete(&state, &caller, &name, body.keys).await?;
    Ok(axum::Json(json!({ "vault": name, "deleted": deleted })))
}
