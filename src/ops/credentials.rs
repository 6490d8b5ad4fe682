//! Credentials of a vault: list keys (any role), reveal and write (member and above).
//!
//! Stance: values are decrypted only on an explicit reveal by a member, never for a listing.
//! Writes are atomic: every key of a request is stored, or none is. Messages name keys, never
//! values.

use std::collections::BTreeMap;

use super::access::vault_access;
use super::caller::Caller;
use super::{AppState, OpError};
use crate::crypto::SecretString;
use crate::services::validate_credential_key;
use crate::store::{VaultRole, credentials};

/// Largest credential value accepted.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The keys of a vault and, when `reveal`, their values (member and above).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    reveal: bool,
) -> Result<(Vec<String>, Vec<(String, SecretString)>), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(if reveal {
        VaultRole::Member
    } else {
        VaultRole::Proxy
    })?;
    let vault_id = access.vault.id.clone();
    state
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
        .await
}

/// One decrypted value (member and above).
pub async fn reveal(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    key: &str,
) -> Result<SecretString, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Member)?;
    let (vault_id, lookup) = (access.vault.id.clone(), key.to_owned());
    state
        .db(move |store, dek| store.read(|conn| credentials::get(conn, dek, &vault_id, &lookup)))
        .await?
        .ok_or_else(|| {
            OpError::not_found(format!(
                "credential {key} is not set in vault \"{vault}\"; see the keys with `agent-vault vault credential list`"
            ))
        })
}

/// Sets several credentials at once (member and above).
pub async fn set(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    values: BTreeMap<String, SecretString>,
) -> Result<Vec<String>, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Member)?;
    if values.is_empty() {
        return Err(OpError::invalid(
            "no credentials given; send {\"credentials\": {\"KEY\": \"value\"}}",
        ));
    }
    for (key, value) in &values {
        validate_credential_key(key).map_err(OpError::invalid)?;
        if value.is_empty() {
            return Err(OpError::invalid(format!("the value of {key} is empty")));
        }
        if value.expose().len() > MAX_VALUE_LEN {
            return Err(OpError::invalid(format!(
                "the value of {key} is larger than 64 KiB"
            )));
        }
    }
    let vault_id = access.vault.id.clone();
    let keys: Vec<String> = values.keys().cloned().collect();
    state
        .vault_write(
            caller,
            &access.vault.id,
            VaultRole::Member,
            move |tx, dek| {
                for (key, value) in &values {
                    credentials::upsert(tx, dek, &vault_id, key, value)?;
                }
                Ok(())
            },
        )
        .await?;
    Ok(keys)
}

/// Deletes several credentials; all must exist, or nothing is deleted.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    keys: Vec<String>,
) -> Result<Vec<String>, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Member)?;
    if keys.is_empty() {
        return Err(OpError::invalid(
            "no keys given; send {\"keys\": [\"KEY\"]}",
        ));
    }
    let vault_id = access.vault.id.clone();
    let wanted = keys.clone();
    let missing = state
        .vault_write(caller, &access.vault.id, VaultRole::Member, move |tx, _| {
            let existing = credentials::keys(tx, &vault_id)?;
            let missing: Vec<String> = wanted
                .iter()
                .filter(|k| !existing.contains(k))
                .cloned()
                .collect();
            if missing.is_empty() {
                for key in &wanted {
                    credentials::delete(tx, &vault_id, key)?;
                }
            }
            Ok(missing)
        })
        .await?;
    if !missing.is_empty() {
        return Err(OpError::not_found(format!(
            "not set in vault \"{vault}\": {}; nothing was deleted",
            missing.join(", ")
        )));
    }
    Ok(keys)
}
