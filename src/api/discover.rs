//! `GET /v1/discover`: what an agent can use in its vault — services (with the credential
//! key *names* they need and the placeholders they replace) and the credential keys present.
//! Never a value.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, Principal};
use super::{ApiError, ApiQuery, AppState};
use crate::ops::access::vault_access;
use crate::store::vaults::{self, ActorType};
use crate::store::{VaultRole, credentials};

#[derive(Deserialize)]
pub struct DiscoverQuery {
    vault: Option<String>,
}

/// The vault a request means: a scoped token's own; otherwise `?vault=` or `X-Vault`, or an
/// agent's only vault.
async fn target_vault(
    state: &AppState,
    caller: &Caller,
    named: Option<String>,
) -> Result<String, ApiError> {
    if let Principal::Scoped { vault_id, .. } = &caller.principal {
        let id = vault_id.clone();
        let vault = state
            .db(move |store, _| store.read(|conn| vaults::by_id(conn, &id)))
            .await?
            .ok_or_else(|| ApiError::not_found("the token's vault no longer exists"))?;
        return match named {
            Some(name) if name != vault.name => Err(ApiError::forbidden(format!(
                "this token belongs to vault \"{}\", not \"{name}\"",
                vault.name
            ))),
            _ => Ok(vault.name),
        };
    }
    if let Some(name) = named {
        return Ok(name);
    }
    if let Principal::Agent(agent) = &caller.principal {
        let id = agent.id.clone();
        let grants = state
            .db(move |store, _| store.read(|conn| vaults::grants_of(conn, ActorType::Agent, &id)))
            .await?;
        if let [(vault, _)] = grants.as_slice() {
            return Ok(vault.name.clone());
        }
    }
    Err(ApiError::invalid(
        "name the vault: ?vault=<name> or the X-Vault header",
    ))
}

pub async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<DiscoverQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let named = query.vault.or_else(|| {
        headers
            .get("x-vault")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let name = target_vault(&state, &caller, named).await?;
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    let id = access.vault.id.clone();
    let (services, keys) = state
        .db(move |store, _| {
            store.read(|conn| {
                Ok((
                    crate::store::services::list(conn, &id)?,
                    credentials::keys(conn, &id)?,
                ))
            })
        })
        .await?;
    let services: Vec<Value> = services
        .iter()
        .map(|s| {
            json!({
                "matcher": s.matcher(),
                "host": s.host,
                "port": s.port,
                "path": s.path,
                "name": s.name,
                "description": s.description,
                "enabled": s.enabled,
                "auth_type": s.auth.type_name(),
                "credential_keys": s.credential_keys(),
                "placeholders": s.substitutions.iter().map(|p| json!({ "placeholder": p.placeholder, "in": p.surfaces })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let base = &state.config.base_url;
    let proxy = state.config.mitm_port.map(|port| {
        let host = base
            .split("://")
            .nth(1)
            .and_then(|rest| rest.rsplit_once(':').map(|(h, _)| h.to_owned()))
            .unwrap_or_else(|| "127.0.0.1".into());
        json!({
            "https_proxy": format!("http://<token>:{}@{host}:{port}", access.vault.name),
            "ca_url": format!("{base}/v1/mitm/ca.pem"),
        })
    });
    Ok(axum::Json(json!({
        "vault": access.vault.name,
        "role": access.role,
        "services": services,
        "credentials": keys,
        "proxy": proxy,
        "explicit_proxy": format!("{base}/proxy/<host>/<path>"),
        "proposals": format!("{base}/v1/proposals"),
    })))
}
