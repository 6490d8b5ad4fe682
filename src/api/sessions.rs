//! Vault-scoped session tokens (`vault token`, `vault run`): a bearer token bound to one
//! vault and one role, with an absolute expiry. Minting needs the member role or above on the
//! vault, and never yields a role above the minter's own — but for a proxy-role token, the
//! narrowest there is, which any user or agent of the vault may take (`vault run
//! --sandbox=container` puts one in the container instead of an agent's own token).
//!
//! A token minted with a lease (`vault run`) expires a few minutes after its run stops
//! renewing it: the renewal key goes to the minting process only, never to the agent, so a
//! run killed with `kill -9` leaves a token that dies within one lease.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Caller, Principal};
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::crypto::{TokenKind, mint_token, random_bytes};
use crate::ops::access::vault_access;
use crate::store::sessions::{self, Session, SessionKind};
use crate::store::{VaultRole, now};

pub const MIN_TTL: i64 = 300;
pub const MAX_TTL: i64 = 7 * 24 * 3600;
pub const DEFAULT_TTL: i64 = 24 * 3600;
/// Bounds of a lease, in seconds.
pub const MIN_LEASE: i64 = 1;
pub const MAX_LEASE: i64 = 3600;

#[derive(Deserialize)]
pub struct MintBody {
    vault: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
    /// Put the token on a lease of this many seconds, renewed with the returned key.
    #[serde(default)]
    lease_seconds: Option<i64>,
}

/// `POST /v1/sessions`.
pub async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MintBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (creator_type, creator_id) = match &caller.principal {
        Principal::User(user) => ("user", user.id.clone()),
        Principal::Agent(agent) => ("agent", agent.id.clone()),
        Principal::Scoped { .. } => {
            return Err(ApiError::forbidden(
                "a vault-scoped token cannot mint other tokens; use a login or an agent token",
            ));
        }
    };
    let role: VaultRole = body
        .role
        .as_deref()
        .unwrap_or("proxy")
        .parse()
        .map_err(ApiError::invalid)?;
    let ttl = match body.ttl_seconds {
        None | Some(0) => DEFAULT_TTL,
        Some(ttl) if (MIN_TTL..=MAX_TTL).contains(&ttl) => ttl,
        Some(ttl) => {
            return Err(ApiError::invalid(format!(
                "ttl {ttl} is out of range; use {MIN_TTL}–{MAX_TTL} seconds (5 minutes to 7 days), or 0 for the default 24 hours"
            )));
        }
    };
    if let Some(lease) = body.lease_seconds {
        check_lease(lease)?;
    }
    let access = vault_access(&state, &caller, &body.vault).await?;
    access.require(match role {
        VaultRole::Proxy => VaultRole::Proxy,
        _ => VaultRole::Member,
    })?;
    if access.role.is_some_and(|mine| role > mine) {
        return Err(ApiError::forbidden(format!(
            "you cannot mint a {role} token: your role on vault \"{}\" is lower",
            body.vault
        )));
    }
    let token = mint_token(TokenKind::Session);
    let now = now();
    let session = Session {
        token_hash: token.hash.clone(),
        public_id: hex::encode(random_bytes::<10>()),
        kind: SessionKind::Scoped,
        user_id: None,
        agent_id: None,
        vault_id: Some(access.vault.id.clone()),
        vault_role: Some(role),
        created_at: now,
        expires_at: Some(now + ttl),
        last_used_at: now,
    };
    let creator = (creator_type, creator_id);
    let lease = body
        .lease_seconds
        .map(|seconds| (mint_token(TokenKind::Lease), seconds.min(ttl)));
    let lease_row = lease
        .as_ref()
        .map(|(key, seconds)| (key.hash.clone(), now + seconds));
    let token_hash = token.hash.clone();
    let (minter, vault_id) = (caller.clone(), access.vault.id.clone());
    state
        .db(move |store, _| {
            store.write(|tx| {
                // The role again, inside the write: a token minted by a request in flight
                // while its minter is lowered or removed would otherwise outlive the change
                // (the change ends the tokens that exist when it is made).
                if let Err(refused) = minter.still_holds(tx, &vault_id, role)? {
                    return Ok(Err(refused));
                }
                sessions::insert_created_by(tx, &session, creator.0, &creator.1)?;
                if let Some((lease_hash, expires_at)) = &lease_row {
                    sessions::set_lease(tx, &token_hash, lease_hash, *expires_at, now + ttl)?;
                }
                Ok(Ok(()))
            })
        })
        .await??;
    let mut answer = json!({
        "token": token.raw.expose(),
        "vault": access.vault.name,
        "role": role,
        "expires_at": rfc3339(now + ttl),
        "address": state.config.base_url,
    });
    if let Some((key, seconds)) = &lease {
        answer["lease_key"] = json!(key.raw.expose());
        answer["lease_seconds"] = json!(seconds);
        answer["lease_expires_at"] = json!(rfc3339(now + seconds));
    }
    if body.lease_seconds.is_some() {
        crate::metrics::global().vault_run_sessions.inc();
    }
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

fn check_lease(seconds: i64) -> Result<(), ApiError> {
    match (MIN_LEASE..=MAX_LEASE).contains(&seconds) {
        true => Ok(()),
        false => Err(ApiError::invalid(format!(
            "lease {seconds} is out of range; use {MIN_LEASE}–{MAX_LEASE} seconds"
        ))),
    }
}

#[derive(Deserialize)]
pub struct RenewBody {
    lease_key: String,
    lease_seconds: i64,
}

/// `POST /v1/sessions/renew` (the lease key is the credential): extends a leased token.
pub async fn renew(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RenewBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_lease(body.lease_seconds)?;
    let lease_hash = crate::crypto::hash_token(&body.lease_key);
    let now = now();
    let renewed = state
        .db(move |store, _| {
            store.write(|tx| sessions::renew_lease(tx, &lease_hash, now, body.lease_seconds))
        })
        .await?;
    match renewed {
        Some((_, expires_at)) => Ok(axum::Json(json!({ "expires_at": rfc3339(expires_at) }))),
        None => Err(ApiError::unauthorized(
            "this lease is unknown or its token reached its hard expiry; start a new run",
        )),
    }
}
