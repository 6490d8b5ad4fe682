//! Services of a vault: read (any member, proxy included), write (vault admins). Every
//! write validates the complete resulting list, so a vault never holds an invalid set.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{VaultAccess, vault_access};
use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::services::{self, Service};
use crate::store::{VaultRole, credentials};

#[derive(Deserialize)]
pub struct ServicesBody {
    services: Vec<Value>,
}

/// Reads each service, naming its position on error. Services hold credential key names,
/// never values, so their messages may quote the input.
fn parse_services(raw: Vec<Value>) -> Result<Vec<Service>, ApiError> {
    let services = raw
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::from_value::<Service>(value)
                .map_err(|e| ApiError::invalid(format!("services[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    services::validate(&services).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(services)
}

/// Credential keys the services use that the vault does not hold yet.
async fn missing_keys(
    state: &AppState,
    access: &VaultAccess,
    services: &[Service],
) -> Result<Vec<String>, ApiError> {
    let vault_id = access.vault.id.clone();
    let existing = state
        .db(move |store, _| store.read(|conn| credentials::keys(conn, &vault_id)))
        .await?;
    let used: BTreeSet<String> = services
        .iter()
        .flat_map(|s| s.credential_keys().into_iter().map(str::to_owned))
        .collect();
    Ok(used.into_iter().filter(|k| !existing.contains(k)).collect())
}

async fn load(state: &AppState, access: &VaultAccess) -> Result<Vec<Service>, ApiError> {
    let vault_id = access.vault.id.clone();
    state
        .db(move |store, _| store.read(|conn| crate::store::services::list(conn, &vault_id)))
        .await
}

/// Finds the one service `reference` names: its full matcher (`host[:port][/path]`) or, when
/// that is unique, its host.
fn find<'a>(
    services: &'a [Service],
    reference: &str,
    vault: &str,
) -> Result<&'a Service, ApiError> {
    let wanted = reference.trim().to_lowercase();
    if let Some(exact) = services.iter().find(|s| s.matcher() == wanted) {
        return Ok(exact);
    }
    let by_host: Vec<&Service> = services.iter().filter(|s| s.host == wanted).collect();
    match by_host.as_slice() {
        [one] => Ok(one),
        [] => Err(ApiError::not_found(format!(
            "vault \"{vault}\" has no service for \"{reference}\"; see `agent-vault vault service list`"
        ))),
        many => Err(ApiError::conflict(format!(
            "\"{reference}\" matches {} services ({}); name one of them exactly",
            many.len(),
            many.iter()
                .map(|s| s.matcher())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `GET /v1/vaults/{name}/services`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    let services = load(&state, &access).await?;
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
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let services = parse_services(body.services)?;
    let warnings = missing_keys(&state, &access, &services).await?;
    let (vault_id, count) = (access.vault.id.clone(), services.len());
    state
        .db(move |store, _| {
            store.write(|tx| crate::store::services::replace_all(tx, &vault_id, &services))
        })
        .await?;
    Ok(axum::Json(json!({
        "vault": access.vault.name,
        "services_count": count,
        "missing_credentials": warnings,
    })))
}

/// `POST /v1/vaults/{name}/services`: add or update services by (host, port, path).
pub async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ServicesBody>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let incoming = parse_services(body.services)?;
    if incoming.is_empty() {
        return Err(ApiError::invalid("no services given"));
    }
    let mut merged = load(&state, &access).await?;
    for service in &incoming {
        match merged.iter_mut().find(|s| s.matcher() == service.matcher()) {
            Some(existing) => *existing = service.clone(),
            None => merged.push(service.clone()),
        }
    }
    services::validate(&merged).map_err(|e| ApiError::invalid(e.to_string()))?;
    let warnings = missing_keys(&state, &access, &incoming).await?;
    let upserted: Vec<String> = incoming.iter().map(Service::matcher).collect();
    let (vault_id, count) = (access.vault.id.clone(), merged.len());
    state
        .db(move |store, _| {
            store.write(|tx| crate::store::services::upsert(tx, &vault_id, &incoming))
        })
        .await?;
    Ok(axum::Json(json!({
        "vault": access.vault.name,
        "upserted": upserted,
        "services_count": count,
        "missing_credentials": warnings,
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
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let services = load(&state, &access).await?;
    let mut service = find(&services, &reference, &access.vault.name)?.clone();
    service.enabled = body.enabled;
    let matcher = service.matcher();
    let vault_id = access.vault.id.clone();
    state
        .db(move |store, _| {
            store.write(|tx| crate::store::services::upsert(tx, &vault_id, &[service]))
        })
        .await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "service": matcher, "enabled": body.enabled }),
    ))
}

/// `DELETE /v1/vaults/{name}/services/{reference}`.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, reference)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let services = load(&state, &access).await?;
    let service = find(&services, &reference, &access.vault.name)?.clone();
    let matcher = service.matcher();
    let vault_id = access.vault.id.clone();
    state
        .db(move |store, _| {
            store.write(|tx| crate::store::services::remove(tx, &vault_id, &service))
        })
        .await?;
    Ok(axum::Json(json!({
        "vault": access.vault.name,
        "removed": matcher,
        "services_count": services.len() - 1,
    })))
}

/// `DELETE /v1/vaults/{name}/services`: remove every service.
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let vault_id = access.vault.id.clone();
    let removed = state
        .db(move |store, _| store.write(|tx| crate::store::services::clear(tx, &vault_id)))
        .await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "removed_count": removed }),
    ))
}

/// `GET /v1/service-catalog` (public): the built-in templates.
pub async fn catalog() -> impl IntoResponse {
    axum::Json(json!({ "services": services::templates() }))
}
