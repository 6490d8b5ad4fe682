//! Vault members (users): list, add, remove, change role. Vault admins manage; every member
//! may list. A vault always keeps at least one admin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::access::{VaultAccess, vault_access};
use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::store::vaults::{self, ActorType};
use crate::store::{VaultRole, invites, users};

/// Users hold admin or member on a vault; proxy is for agents and scoped tokens.
fn user_role(role: &str) -> Result<VaultRole, ApiError> {
    match role.parse::<VaultRole>() {
        Ok(VaultRole::Proxy) => Err(ApiError::invalid(
            "users can be admin or member of a vault; the proxy role is for agents",
        )),
        Ok(role) => Ok(role),
        Err(_) => Err(ApiError::invalid(format!(
            "unknown vault role \"{role}\" for a user (expected admin or member)"
        ))),
    }
}

/// `GET /v1/vaults/{name}/users`: members, then pending invites pre-assigning the vault.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    let id = access.vault.id.clone();
    let (members, pending) = state
        .db(move |store, _| {
            store.read(|conn| {
                Ok((
                    vaults::user_members(conn, &id)?,
                    invites::pending_for_vault(conn, &id)?,
                ))
            })
        })
        .await?;
    let mut users: Vec<_> = members
        .iter()
        .map(|(email, role)| json!({ "email": email, "role": role, "status": "active" }))
        .collect();
    users.extend(
        pending
            .iter()
            .map(|(email, role)| json!({ "email": email, "role": role, "status": "pending" })),
    );
    Ok(axum::Json(json!({ "vault": name, "users": users })))
}

#[derive(Deserialize)]
pub struct AddBody {
    email: String,
    #[serde(default = "member")]
    role: String,
}

fn member() -> String {
    "member".into()
}

/// The target user's id, if they hold a grant, plus the vault's admin count.
async fn membership(
    state: &AppState,
    access: &VaultAccess,
    email: &str,
) -> Result<(String, Option<VaultRole>, i64), ApiError> {
    let (vault_id, lookup) = (access.vault.id.clone(), email.to_owned());
    let found = state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(user) = users::by_email(conn, &lookup)? else {
                    return Ok(None);
                };
                let role = vaults::role_of(conn, &vault_id, ActorType::User, &user.id)?;
                Ok(Some((user.id, role, vaults::admin_count(conn, &vault_id)?)))
            })
        })
        .await?;
    found.ok_or_else(|| ApiError::not_found(format!("no user with email \"{email}\"")))
}

/// `POST /v1/vaults/{name}/users`: grant an existing, active user a role.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AddBody>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let role = user_role(&body.role)?;
    let email = users::normalize_email(&body.email);
    let lookup = email.clone();
    let user = state
        .db(move |store, _| store.read(|conn| users::by_email(conn, &lookup)))
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no active user with email \"{email}\"; invite them with `agent-vault user invite {email} --vault {name}:{role}`"
            ))
        })?;
    let vault_id = access.vault.id.clone();
    let added = state
        .db(move |store, _| {
            store.write(|tx| {
                if vaults::role_of(tx, &vault_id, ActorType::User, &user.id)?.is_some() {
                    return Ok(false);
                }
                vaults::grant(tx, &vault_id, ActorType::User, &user.id, role)?;
                Ok(true)
            })
        })
        .await?;
    if !added {
        return Err(ApiError::conflict(format!(
            "{email} is already a member of vault \"{name}\"; change the role with `agent-vault vault user set-role`"
        )));
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "vault": name, "email": email, "role": role })),
    ))
}

/// `DELETE /v1/vaults/{name}/users/{email}`.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, email)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let email = users::normalize_email(&email);
    let (user_id, role, admins) = membership(&state, &access, &email).await?;
    match role {
        None => {
            return Err(ApiError::not_found(format!(
                "{email} is not a member of vault \"{name}\""
            )));
        }
        Some(VaultRole::Admin) if admins <= 1 => {
            return Err(ApiError::conflict(format!(
                "{email} is the last admin of vault \"{name}\"; make another member admin first"
            )));
        }
        Some(_) => {}
    }
    let vault_id = access.vault.id.clone();
    state
        .db(move |store, _| {
            store.write(|tx| vaults::revoke(tx, &vault_id, ActorType::User, &user_id))
        })
        .await?;
    Ok(axum::Json(
        json!({ "vault": name, "email": email, "removed": true }),
    ))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

/// `POST /v1/vaults/{name}/users/{email}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, email)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Admin)?;
    let new_role = user_role(&body.role)?;
    let email = users::normalize_email(&email);
    let (user_id, role, admins) = membership(&state, &access, &email).await?;
    match role {
        None => {
            return Err(ApiError::not_found(format!(
                "{email} is not a member of vault \"{name}\""
            )));
        }
        Some(VaultRole::Admin) if new_role != VaultRole::Admin && admins <= 1 => {
            return Err(ApiError::conflict(format!(
                "{email} is the last admin of vault \"{name}\"; make another member admin first"
            )));
        }
        Some(_) => {}
    }
    let vault_id = access.vault.id.clone();
    state
        .db(move |store, _| {
            store.write(|tx| vaults::grant(tx, &vault_id, ActorType::User, &user_id, new_role))
        })
        .await?;
    Ok(axum::Json(
        json!({ "vault": name, "email": email, "role": new_role }),
    ))
}
