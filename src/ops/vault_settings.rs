//! Per-vault settings and the request log: `unmatched_host_policy` (what the broker does
//! with hosts no service matches) and the proxied requests, filtered and paged.
//!
//! Stance: the log holds metadata only (never values, bodies or query strings); reading it
//! needs the member role, since it shows what agents do.

use std::collections::BTreeMap;

use super::access::{VaultAccess, vault_access};
use super::caller::Caller;
use super::{AppState, OpError};
use crate::broker::UnmatchedPolicy;
use crate::store::request_log::{self, Query, Row, StatusFilter};
use crate::store::{VaultRole, agents, users, vaults};

/// Most rows one query returns.
pub const MAX_LOG_ROWS: u32 = 1000;

async fn stored_policy(state: &AppState, vault_id: &str) -> Result<UnmatchedPolicy, OpError> {
    let id = vault_id.to_owned();
    let stored = state
        .db(move |store, _| store.read(|conn| vaults::setting(conn, &id, UnmatchedPolicy::SETTING)))
        .await?;
    Ok(stored
        .and_then(|v| UnmatchedPolicy::parse(&v))
        .unwrap_or(UnmatchedPolicy::Forward))
}

/// The vault's policy for hosts no service matches (any role).
pub async fn policy(
    state: &AppState,
    caller: &Caller,
    vault: &str,
) -> Result<(VaultAccess, UnmatchedPolicy), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Proxy)?;
    let policy = stored_policy(state, &access.vault.id).await?;
    Ok((access, policy))
}

/// Changes the policy (vault admins).
pub async fn set_policy(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    policy: &str,
) -> Result<(String, UnmatchedPolicy), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let policy = UnmatchedPolicy::parse(policy).ok_or_else(|| {
        OpError::invalid(format!(
            "unknown unmatched_host_policy \"{policy}\" (expected forward or deny)"
        ))
    })?;
    let id = access.vault.id.clone();
    state
        .vault_write(caller, &access.vault.id, VaultRole::Admin, move |tx, _| {
            vaults::set_setting(tx, &id, UnmatchedPolicy::SETTING, policy.as_str())
        })
        .await?;
    Ok((access.vault.name, policy))
}

/// Reads a status filter: `200`, `4xx`, or `0` (no answer).
pub fn parse_status(text: &str) -> Result<Option<StatusFilter>, OpError> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() || text == "all" {
        return Ok(None);
    }
    if text == "0" {
        return Ok(Some(StatusFilter::NoAnswer));
    }
    if let Some(class) = text.strip_suffix("xx")
        && let Ok(class @ 1..=5) = class.parse::<u16>()
    {
        return Ok(Some(StatusFilter::Class(class)));
    }
    match text.parse::<u16>() {
        Ok(code @ 100..=599) => Ok(Some(StatusFilter::Exact(code))),
        _ => Err(OpError::invalid(format!(
            "\"{text}\" is not a status filter; use a code such as 404, a class such as 5xx, or 0 for requests that got no answer"
        ))),
    }
}

/// A page of the request log with the names of the users and agents in it.
pub struct LogPage {
    pub vault: String,
    pub rows: Vec<Row>,
    /// Actor id → email (users) or name (agents).
    pub actors: BTreeMap<String, String>,
}

/// The proxied requests of a vault matching `query`, newest first (members and admins).
pub async fn logs(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    mut query: Query,
) -> Result<LogPage, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Member)?;
    query.limit = query.limit.clamp(1, MAX_LOG_ROWS);
    let id = access.vault.id.clone();
    let (rows, actors) = state
        .db(move |store, _| {
            store.read(|conn| {
                let rows = request_log::query(conn, &id, &query)?;
                let mut actors = BTreeMap::new();
                for row in &rows {
                    let (Some(kind), Some(actor)) = (&row.actor_type, &row.actor_id) else {
                        continue;
                    };
                    if actors.contains_key(actor) {
                        continue;
                    }
                    let name = match kind.as_str() {
                        "user" => users::by_id(conn, actor)?.map(|u| u.email),
                        "agent" => agents::by_id(conn, actor)?.map(|a| a.name),
                        _ => None,
                    };
                    if let Some(name) = name {
                        actors.insert(actor.clone(), name);
                    }
                }
                Ok((rows, actors))
            })
        })
        .await?;
    Ok(LogPage {
        vault: access.vault.name,
        rows,
        actors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters() {
        assert_eq!(parse_status("").unwrap(), None);
        assert_eq!(parse_status("4xx").unwrap(), Some(StatusFilter::Class(4)));
        assert_eq!(parse_status("404").unwrap(), Some(StatusFilter::Exact(404)));
        assert_eq!(parse_status("0").unwrap(), Some(StatusFilter::NoAnswer));
        for bad in ["9xx", "abc", "42", "1000"] {
            assert!(parse_status(bad).is_err(), "{bad}");
        }
    }
}
