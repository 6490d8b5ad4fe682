//! Services of a vault: read (any role, proxy included), write (vault admins). Every write
//! validates the complete resulting list, so a vault never holds an invalid set.

use std::collections::BTreeSet;

use serde_json::Value;

use super::access::{VaultAccess, vault_access};
use super::caller::Caller;
use super::{AppState, OpError};
use crate::services::{self, Service};
use crate::store::{self, VaultRole, credentials};

/// Reads each service, naming its position on error. Services hold credential key names,
/// never values, so their messages may quote the input.
pub fn parse_services(raw: Vec<Value>) -> Result<Vec<Service>, OpError> {
    let services = raw
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::from_value::<Service>(value)
                .map_err(|e| OpError::invalid(format!("services[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    services::validate(&services).map_err(|e| OpError::invalid(e.to_string()))?;
    Ok(services)
}

/// Credential keys the services use that the vault does not hold yet.
async fn missing_keys(
    state: &AppState,
    access: &VaultAccess,
    services: &[Service],
) -> Result<Vec<String>, OpError> {
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

async fn load(state: &AppState, access: &VaultAccess) -> Result<Vec<Service>, OpError> {
    let vault_id = access.vault.id.clone();
    state
        .db(move |store, _| store.read(|conn| store::services::list(conn, &vault_id)))
        .await
}

/// Finds the one service `reference` names: its full matcher (`host[:port][/path]`) or, when
/// that is unique, its host.
pub fn find<'a>(
    services: &'a [Service],
    reference: &str,
    vault: &str,
) -> Result<&'a Service, OpError> {
    let wanted = reference.trim().to_lowercase();
    if let Some(exact) = services.iter().find(|s| s.matcher() == wanted) {
        return Ok(exact);
    }
    let by_host: Vec<&Service> = services.iter().filter(|s| s.host == wanted).collect();
    match by_host.as_slice() {
        [one] => Ok(one),
        [] => Err(OpError::not_found(format!(
            "vault \"{vault}\" has no service for \"{reference}\"; see `agent-vault vault service list`"
        ))),
        many => Err(OpError::conflict(format!(
            "\"{reference}\" matches {} services ({}); name one of them exactly",
            many.len(),
            many.iter()
                .map(|s| s.matcher())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The services of a vault, with the caller's access to it.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    vault: &str,
) -> Result<(VaultAccess, Vec<Service>), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Proxy)?;
    let services = load(state, &access).await?;
    Ok((access, services))
}

/// What a write did.
pub struct Written {
    pub vault: String,
    /// Matchers of the services added or replaced.
    pub upserted: Vec<String>,
    pub count: usize,
    /// Credential keys the services use that the vault does not hold yet.
    pub missing_credentials: Vec<String>,
}

/// Replaces the whole list (vault admins).
pub async fn replace(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    raw: Vec<Value>,
) -> Result<Written, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let services = parse_services(raw)?;
    let warnings = missing_keys(state, &access, &services).await?;
    let (vault_id, count) = (access.vault.id.clone(), services.len());
    let upserted = services.iter().map(Service::matcher).collect();
    state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            store::services::replace_all(tx, &vault_id, &services)
        })
        .await?;
    Ok(Written {
        vault: access.vault.name,
        upserted,
        count,
        missing_credentials: warnings,
    })
}

/// Adds or updates services by (host, port, path) (vault admins).
pub async fn upsert(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    raw: Vec<Value>,
) -> Result<Written, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let incoming = parse_services(raw)?;
    if incoming.is_empty() {
        return Err(OpError::invalid("no services given"));
    }
    let mut merged = load(state, &access).await?;
    for service in &incoming {
        match merged.iter_mut().find(|s| s.matcher() == service.matcher()) {
            Some(existing) => *existing = service.clone(),
            None => merged.push(service.clone()),
        }
    }
    services::validate(&merged).map_err(|e| OpError::invalid(e.to_string()))?;
    let warnings = missing_keys(state, &access, &incoming).await?;
    let upserted: Vec<String> = incoming.iter().map(Service::matcher).collect();
    let (vault_id, count) = (access.vault.id.clone(), merged.len());
    state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            store::services::upsert(tx, &vault_id, &incoming)
        })
        .await?;
    Ok(Written {
        vault: access.vault.name,
        upserted,
        count,
        missing_credentials: warnings,
    })
}

/// Replaces the service `reference` names with `service` (which may move it to another
/// host or path), in one write (vault admins).
pub async fn edit(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    reference: &str,
    raw: Value,
) -> Result<Written, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let service = parse_services(vec![raw])?
        .into_iter()
        .next()
        .ok_or_else(|| OpError::invalid("no service given"))?;
    let mut all = load(state, &access).await?;
    let old = find(&all, reference, &access.vault.name)?.matcher();
    let position = all
        .iter()
        .position(|s| s.matcher() == old)
        .unwrap_or(all.len());
    all.retain(|s| s.matcher() != old);
    all.insert(position.min(all.len()), service.clone());
    services::validate(&all).map_err(|e| OpError::invalid(e.to_string()))?;
    let warnings = missing_keys(state, &access, std::slice::from_ref(&service)).await?;
    let (vault_id, count) = (access.vault.id.clone(), all.len());
    let upserted = vec![service.matcher()];
    state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            store::services::replace_all(tx, &vault_id, &all)
        })
        .await?;
    Ok(Written {
        vault: access.vault.name,
        upserted,
        count,
        missing_credentials: warnings,
    })
}

/// Enables or disables a service (idempotent); returns its matcher.
pub async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    reference: &str,
    enabled: bool,
) -> Result<(String, String), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let services = load(state, &access).await?;
    let mut service = find(&services, reference, &access.vault.name)?.clone();
    service.enabled = enabled;
    let matcher = service.matcher();
    let vault_id = access.vault.id.clone();
    state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            store::services::upsert(tx, &vault_id, &[service])
        })
        .await?;
    Ok((access.vault.name, matcher))
}

/// Removes one service; returns (vault, matcher, services left).
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    reference: &str,
) -> Result<(String, String, usize), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let services = load(state, &access).await?;
    let service = find(&services, reference, &access.vault.name)?.clone();
    let matcher = service.matcher();
    let vault_id = access.vault.id.clone();
    state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            store::services::remove(tx, &vault_id, &service)
        })
        .await?;
    Ok((access.vault.name, matcher, services.len() - 1))
}

/// Removes every service; returns (vault, how many).
pub async fn clear(
    state: &AppState,
    caller: &Caller,
    vault: &str,
) -> Result<(String, usize), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let vault_id = access.vault.id.clone();
    let removed = state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            store::services::clear(tx, &vault_id)
        })
        .await?;
    Ok((access.vault.name, removed))
}
