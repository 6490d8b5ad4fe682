//! Vaults: list, create, inspect, rename, delete, join.
//!
//! Stance: any user may create a vault and becomes its admin. Vault admins and instance
//! owners may rename or delete one (never the default vault); owners may join any vault as
//! admin, a visible grant rather than an implicit right.

use super::access::{VaultAccess, validate_vault_name, vault_access};
use super::admin::require_owner;
use super::caller::{Caller, Principal};
use super::{AppState, OpError};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{Connection, DEFAULT_VAULT, VaultRole, proposals};

/// A vault in a listing: the caller's role (none for an owner without a grant) and how many
/// proposals wait for review.
pub struct Listed {
    pub vault: Vault,
    pub role: Option<VaultRole>,
    pub pending_proposals: i64,
}

/// The caller's vaults; owners see every vault.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<Listed>, OpError> {
    let owner = caller.is_owner();
    let principal = caller.principal.clone();
    state
        .db(move |store, _| {
            store.read(|conn| {
                let (actor, id) = match &principal {
                    Principal::User(u) => (ActorType::User, u.id.clone()),
                    Principal::Agent(agent) => (ActorType::Agent, agent.id.clone()),
                    Principal::Scoped { vault_id, role } => {
                        return vaults::by_id(conn, vault_id)?
                            .map(|v| listed(conn, v, Some(*role)))
                            .into_iter()
                            .collect();
                    }
                };
                let grants = vaults::grants_of(conn, actor, &id)?;
                if !owner {
                    return grants
                        .into_iter()
                        .map(|(v, r)| listed(conn, v, Some(r)))
                        .collect();
                }
                vaults::list(conn)?
                    .into_iter()
                    .map(|v| {
                        let role = grants.iter().find(|(g, _)| g.id == v.id).map(|(_, r)| *r);
                        listed(conn, v, role)
                    })
                    .collect()
            })
        })
        .await
}

fn listed(
    conn: &crate::store::Connection,
    vault: Vault,
    role: Option<VaultRole>,
) -> crate::store::Result<Listed> {
    Ok(Listed {
        pending_proposals: proposals::pending_count(conn, &vault.id)?,
        vault,
        role,
    })
}

/// Creates a vault with the calling user as its admin.
pub async fn create(state: &AppState, caller: &Caller, name: &str) -> Result<Vault, OpError> {
    let user = caller.user()?.clone();
    validate_vault_name(name)?;
    let name = name.to_owned();
    state
        .db(move |store, _| {
            store.write(|tx| {
                let vault = vaults::insert(tx, &name)?;
                vaults::grant(tx, &vault.id, ActorType::User, &user.id, VaultRole::Admin)?;
                Ok(vault)
            })
        })
        .await
}

/// A vault the caller holds a role on (or, as an owner, may see).
pub async fn get(state: &AppState, caller: &Caller, name: &str) -> Result<VaultAccess, OpError> {
    let access = vault_access(state, caller, name).await?;
    if access.role.is_none() && !access.owner {
        access.require(VaultRole::Proxy)?;
    }
    Ok(access)
}

/// Renames a vault (vault admins and owners; never the default vault).
pub async fn rename(
    state: &AppState,
    caller: &Caller,
    name: &str,
    new_name: &str,
) -> Result<(), OpError> {
    let access = vault_access(state, caller, name).await?;
    access.require_admin_or_owner()?;
    access.refuse_default("renamed")?;
    validate_vault_name(new_name)?;
    let (id, new_name) = (access.vault.id.clone(), new_name.to_owned());
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_admin_or_owner(tx, &id)? {
                    return Ok(Err(refused));
                }
                vaults::rename(tx, &id, &new_name).map(Ok)
            })
        })
        .await?
}

/// Deletes a vault with everything in it (vault admins and owners; never the default vault).
pub async fn delete(state: &AppState, caller: &Caller, name: &str) -> Result<Vault, OpError> {
    let access = vault_access(state, caller, name).await?;
    access.require_admin_or_owner()?;
    delete_vault(state, caller, access, Caller::still_admin_or_owner).await
}

/// `owner vault delete`: owners only.
pub async fn owner_delete(state: &AppState, caller: &Caller, name: &str) -> Result<Vault, OpError> {
    require_owner(caller)?;
    let access = vault_access(state, caller, name).await?;
    delete_vault(state, caller, access, |caller, tx, _| {
        caller.still_owner(tx)
    })
    .await
}

/// Deletes the vault if `still_allowed` holds inside the write (the right checked on arrival
/// may have been taken away since).
async fn delete_vault(
    state: &AppState,
    caller: &Caller,
    access: VaultAccess,
    still_allowed: fn(&Caller, &Connection, &str) -> crate::store::Result<Result<(), OpError>>,
) -> Result<Vault, OpError> {
    access.refuse_default("deleted")?;
    let id = access.vault.id.clone();
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = still_allowed(&caller, tx, &id)? {
                    return Ok(Err(refused));
                }
                vaults::delete(tx, &id).map(Ok)
            })
        })
        .await??;
    Ok(access.vault)
}

/// An owner takes the admin role on a vault (recovery).
pub async fn join(state: &AppState, caller: &Caller, name: &str) -> Result<(), OpError> {
    require_owner(caller)?;
    let user = caller.user()?.clone();
    let access = vault_access(state, caller, name).await?;
    if let Some(role) = access.role {
        return Err(OpError::conflict(format!(
            "you are already a member of vault \"{name}\" (role {role})"
        )));
    }
    let id = access.vault.id.clone();
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_owner(tx)? {
                    return Ok(Err(refused));
                }
                vaults::grant(tx, &id, ActorType::User, &user.id, VaultRole::Admin)?;
                Ok(Ok(()))
            })
        })
        .await?
}

/// Every vault with its number of user members (owners).
pub async fn owner_list(state: &AppState, caller: &Caller) -> Result<Vec<(Vault, usize)>, OpError> {
    require_owner(caller)?;
    state
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
        .await
}

/// Whether `name` is the vault every instance starts with.
pub fn is_default(name: &str) -> bool {
    name == DEFAULT_VAULT
}
