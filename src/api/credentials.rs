//! Credentials of a vault: list keys (any member), reveal and write (member and above).
//! Writes are atomic: every key of a request is stored, or none is.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::access::vault_access;
use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::crypto::SecretString;
use crate::services::validate_credential_key;
use crate::store::{VaultRole, credentials};

/// Largest credential value accepted.
const MAX_VALUE_LEN: usize = 64 * 1024;

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
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(if query.reveal {
        VaultRole::Member
    } else {
        VaultRole::Proxy
    })?;
    let vault_id = access.vault.id.clone();
    let reveal = query.reveal;
    let (keys, values) = state
        .db(move |store, dek| {
            store.read(|conn| {
                let keys = credentials::keys(conn, &vault_id)?;
                let mut values = Vec::new();
                if reveal {
                    for key in &keys {
                        if let Some(value) = credentials::get(conn, dek, &vault_id, key)? {
                            values.push((key.clone(), value));
                        }
                    }
                }
                Ok((keys, values))
            })
        })
        .await?;
    let mut body = json!({ "vault": name, "keys": keys });
    if reveal {
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
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Member)?;
    let (vault_id, lookup) = (access.vault.id.clone(), key.clone());
    let value = state
        .db(move |store, dek| store.read(|conn| credentials::get(conn, dek, &vault_id, &lookup)))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "credential {key} is not set in vault \"{name}\"; see the keys with `agent-vault vault credential list`"
            ))
        })?;
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
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Member)?;
    if body.credentials.is_empty() {
        return Err(ApiError::invalid(
            "no credentials given; send {\"credentials\": {\"KEY\": \"value\"}}",
        ));
    }
    for (key, value) in &body.credentials {
        validate_credential_key(key).map_err(ApiError::invalid)?;
        if value.is_empty() {
            return Err(ApiError::invalid(format!("the value of {key} is empty")));
        }
        if value.expose().len() > MAX_VALUE_LEN {
            return Err(ApiError::invalid(format!(
                "the value of {key} is larger than 64 KiB"
            )));
        }
    }
    let vault_id = access.vault.id.clone();
    let keys: Vec<String> = body.credentials.keys().cloned().collect();
    state
        .db(move |store, dek| {
            store.write(|tx| {
                for (key, value) in &body.credentials {
                    credentials::upsert(tx, dek, &vault_id, key, value)?;
                }
                Ok(())
            })
        })
        .await?;
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
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Member)?;
    if body.keys.is_empty() {
        return Err(ApiError::invalid(
            "no keys given; send {\"keys\": [\"KEY\"]}",
        ));
    }
    let vault_id = access.vault.id.clone();
    let keys = body.keys.clone();
    let missing = state
        .db(move |store, _| {
            store.write(|tx| {
                let existing = credentials::keys(tx, &vault_id)?;
                let missing: Vec<String> = keys
                    .iter()
                    .filter(|k| !existing.contains(k))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    for key in &keys {
                        credentials::delete(tx, &vault_id, key)?;
                    }
                }
                Ok(missing)
            })
        })
        .await?;
    if !missing.is_empty() {
        return Err(ApiError::not_found(format!(
            "not set in vault \"{name}\": {}; nothing was deleted",
            missing.join(", ")
        )));
    }
    Ok(axum::Json(json!({ "vault": name, "deleted": body.keys })))
}
