//! Vault access: the role a caller holds on a vault, and the checks every vault route makes.
//!
//! Instance owners see every vault and may rename, delete or join any of them, but they are
//! not implicit members: reading credentials or changing services needs a grant, so an
//! owner's access to secrets is always an explicit, visible membership.

use super::caller::{Caller, Principal};
use super::{AppState, OpError};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{DEFAULT_VAULT, VaultRole};

pub struct VaultAccess {
    pub vault: Vault,
    /// The caller's role on the vault, if any.
    pub role: Option<VaultRole>,
    /// Whether the caller is an instance owner (a user session).
    pub owner: bool,
}

impl VaultAccess {
    /// Requires at least `needed` on the vault.
    pub fn require(&self, needed: VaultRole) -> Result<(), OpError> {
        let name = &self.vault.name;
        match self.role {
            Some(role) if role >= needed => Ok(()),
            Some(role) => Err(OpError::forbidden(format!(
                "this needs the {needed} role on vault \"{name}\"; you have {role}"
            ))),
            None if self.owner => Err(OpError::forbidden(format!(
                "you are not a member of vault \"{name}\"; as an owner you can join it with `agent-vault owner vault join {name}`"
            ))),
            None => Err(OpError::forbidden(format!(
                "you are not a member of vault \"{name}\"; ask one of its admins to add you"
            ))),
        }
    }

    /// Vault admins and instance owners may rename or delete a vault.
    pub fn require_admin_or_owner(&self) -> Result<(), OpError> {
        if self.owner {
            return Ok(());
        }
        self.require(VaultRole::Admin)
    }

    pub fn refuse_default(&self, action: &str) -> Result<(), OpError> {
        if self.vault.name == DEFAULT_VAULT {
            return Err(OpError::conflict(format!(
                "the default vault cannot be {action}"
            )));
        }
        Ok(())
    }
}

/// Resolves `name` and the caller's role on it; 404 when the vault does not exist.
pub async fn vault_access(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<VaultAccess, OpError> {
    let lookup = name.to_owned();
    let principal = caller.principal.clone();
    let found = state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(vault) = vaults::by_name(conn, &lookup)? else {
                    return Ok(None);
                };
                let role = match &principal {
                    Principal::User(user) => {
                        vaults::role_of(conn, &vault.id, ActorType::User, &user.id)?
                    }
                    Principal::Agent(agent) => {
                        vaults::role_of(conn, &vault.id, ActorType::Agent, &agent.id)?
                    }
                    Principal::Scoped { vault_id, role } => {
                        (*vault_id == vault.id).then_some(*role)
                    }
                };
                Ok(Some((vault, role)))
            })
        })
        .await?;
    let owner = caller.is_owner();
    // To anyone but an owner (who sees every vault), a vault they have no part in answers as
    // a missing one does, word for word: vault names say things too.
    let (vault, role) = found
        .filter(|(_, role)| owner || role.is_some())
        .ok_or_else(|| unknown_vault(name))?;
    Ok(VaultAccess { vault, role, owner })
}

/// The answer for a vault that does not exist, and for one the caller has no part in.
fn unknown_vault(name: &str) -> OpError {
    OpError::not_found(format!(
        "vault \"{name}\" does not exist, or you are not a member of it; see your vaults with `agent-vault vault list`"
    ))
}

/// Checks a vault name: lowercase letters, digits and single hyphens, 1–64 characters.
pub fn validate_vault_name(name: &str) -> Result<(), OpError> {
    validate_slug("vault", name)
}

/// Checks a name made of lowercase letters, digits and single hyphens, 1–64 characters.
pub fn validate_slug(kind: &str, name: &str) -> Result<(), OpError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(OpError::invalid(format!(
            "\"{name}\" is not a valid {kind} name; use lowercase letters, digits and single hyphens (for example \"payments-prod\"), at most 64 characters"
        )))
    }
}

/// Resolves vault pre-assignments of an invite: every vault must exist, and only its admins
/// (or an owner) may hand out access to it. Returns (vault id, role) pairs.
/// An owner gives anyone access to any vault, except where the one given it is in effect the
/// owner: an agent invite's token goes to whoever made it. There the owner must already hold
/// the role they give ([`owner_gives_itself`]), so that an owner's access to a vault's secrets
/// is always a membership the vault's people can see (a red team read a vault's secrets
/// through an agent it invited there).
pub fn assignable_vaults(
    conn: &crate::store::Connection,
    caller: &Caller,
    wanted: &[(String, VaultRole)],
    to_its_creator: bool,
) -> crate::store::Result<Result<Vec<(String, VaultRole)>, OpError>> {
    let mut out = Vec::new();
    for (name, role) in wanted {
        let Some(vault) = vaults::by_name(conn, name)? else {
            return Ok(Err(unknown_vault(name)));
        };
        let held = match caller.actor() {
            Some((actor, id)) => vaults::role_of(conn, &vault.id, actor, id)?,
            None => None,
        };
        if held.is_none() && !caller.is_owner() {
            // Word for word as a missing vault: an outsider learns no vault names here.
            return Ok(Err(unknown_vault(name)));
        }
        if !(held == Some(VaultRole::Admin) || caller.is_owner()) {
            return Ok(Err(OpError::forbidden(format!(
                "only admins of vault \"{name}\" (or an owner) can give access to it"
            ))));
        }
        if to_its_creator && let Err(refused) = owner_gives_itself(name, held, *role) {
            return Ok(Err(OpError::forbidden(refused)));
        }
        out.push((vault.id, *role));
    }
    Ok(Ok(out))
}

/// Whether one who holds `held` on vault `name` may give `role` there to an agent they will
/// hold the token of: only a role they hold themselves.
pub fn owner_gives_itself(
    name: &str,
    held: Option<VaultRole>,
    role: VaultRole,
) -> Result<(), String> {
    if held.is_some_and(|held| held >= role) {
        return Ok(());
    }
    Err(format!(
        "an agent invite hands its maker the agent's access, and its maker does not hold the {} role on vault \"{name}\"; an owner joins it first (`agent-vault owner vault join {name}`), which its members see",
        role.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_are_slugs() {
        for ok in ["default", "a", "payments-prod", "v2"] {
            assert!(validate_vault_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Prod",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(validate_vault_name(bad).is_err(), "{bad}");
        }
    }
}
