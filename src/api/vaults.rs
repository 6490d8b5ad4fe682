//! Vaults: list, create, inspect, rename, delete, join.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::access::{validate_vault_name, vault_access};
use super::auth::{Caller, Principal};
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::store::VaultRole;
use crate::store::vaults::{self, ActorType};

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

/// `GET /v1/vaults`: the caller's vaults; owners see every vault (role null where they hold
/// no grant).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let owner = caller.is_owner();
    let principal = caller.principal.clone();
    let rows = state
        .db(move |store, _| {
            store.read(|conn| {
                let (actor, id) = match &principal {
                    Principal::User(u) => (ActorType::User, u.id.clone()),
                    Principal::Agent(agent) => (ActorType::Agent, agent.id.clone()),
                    Principal::Scoped { vault_id, role } => {
                        return Ok(vaults::by_id(conn, vault_id)?
                            .map(|v| (v, Some(*role)))
                            .into_iter()
                            .collect::<Vec<_>>());
                    }
                };
                let grants = vaults::grants_of(conn, actor, &id)?;
                if !owner {
                    return Ok(grants.into_iter().map(|(v, r)| (v, Some(r))).collect());
                }
                Ok(vaults::list(conn)?
                    .into_iter()
                    .map(|v| {
                        let role = grants.iter().find(|(g, _)| g.id == v.id).map(|(_, r)| *r);
                        (v, role)
                    })
                    .collect())
            })
        })
        .await?;
    let vaults: Vec<_> = rows
        .iter()
        .map(|(v, role)| json!({ "name": v.name, "role": role, "created_at": rfc3339(v.created_at) }))
        .collect();
    Ok(axum::Json(json!({ "vaults": vaults })))
}

/// `POST /v1/vaults`: any user may create a vault and becomes its admin.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user()?.clone();
    validate_vault_name(&body.name)?;
    let vault = state
        .db(move |store, _| {
            store.write(|tx| {
                let vault = vaults::insert(tx, &body.name)?;
                vaults::grant(tx, &vault.id, ActorType::User, &user.id, VaultRole::Admin)?;
                Ok(vault)
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({ "name": vault.name, "role": "admin", "created_at": rfc3339(vault.created_at) }),
        ),
    ))
}

/// `GET /v1/vaults/{name}`: existence and the caller's role (members and owners).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    if access.role.is_none() && !access.owner {
        access.require(VaultRole::Proxy)?;
    }
    Ok(axum::Json(json!({
        "name": access.vault.name,
        "role": access.role,
        "created_at": rfc3339(access.vault.created_at),
    })))
}

/// `POST /v1/vaults/{name}/rename`: vault admins and owners; never the default vault.
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require_admin_or_owner()?;
    access.refuse_default("renamed")?;
    validate_vault_name(&body.name)?;
    let (id, new_name) = (access.vault.id.clone(), body.name.clone());
    state
        .db(move |store, _| store.write(|tx| vaults::rename(tx, &id, &new_name)))
        .await?;
    Ok(axum::Json(
        json!({ "old_name": name, "new_name": body.name }),
    ))
}

/// `DELETE /v1/vaults/{name}`: vault admins and owners; never the default vault.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require_admin_or_owner()?;
    delete_vault(&state, access).await
}

/// `DELETE /v1/admin/vaults/{name}`: owners only.
pub async fn owner_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    super::admin::require_owner(&caller)?;
    let access = vault_access(&state, &caller, &name).await?;
    delete_vault(&state, access).await
}

async fn delete_vault(
    state: &AppState,
    access: super::access::VaultAccess,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    access.refuse_default("deleted")?;
    let id = access.vault.id.clone();
    state
        .db(move |store, _| store.write(|tx| vaults::delete(tx, &id)))
        .await?;
    Ok(axum::Json(
        json!({ "name": access.vault.name, "deleted": true }),
    ))
}

/// `POST /v1/vaults/{name}/join`: an owner takes the admin role on a vault (recovery).
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    super::admin::require_owner(&caller)?;
    let user = caller.user()?.clone();
    let access = vault_access(&state, &caller, &name).await?;
    if let Some(role) = access.role {
        return Err(ApiError::conflict(format!(
            "you are already a member of vault \"{name}\" (role {role})"
        )));
    }
    let id = access.vault.id.clone();
    state
        .db(move |store, _| {
            store.write(|tx| vaults::grant(tx, &id, ActorType::User, &user.id, VaultRole::Admin))
        })
        .await?;
    Ok(axum::Json(
        json!({ "vault": name, "role": "admin", "joined": true }),
    ))
}

/// `GET /v1/admin/vaults`: every vault with its member count (owners).
pub async fn owner_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    super::admin::require_owner(&caller)?;
    let rows = state
        .db(|store, _| {
            store.read(|conn| {
                vaults::list(conn)?
                    .into_iter()
                    .map(|v| {
                        let members = vaults::user_members(conn, &v.id)?.len();
                        Ok((v, members))
                    })
                    .collect::<crate::store::Result<Vec<_>>>()
            })
        })
        .await?;
    let vaults: Vec<_> = rows
        .iter()
        .map(|(v, members)| {
            json!({
                "name": v.name,
                "is_default": v.name == crate::store::DEFAULT_VAULT,
                "user_members": members,
                "created_at": rfc3339(v.created_at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "vaults": vaults })))
}
