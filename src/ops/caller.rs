//! Who is calling: a raw session token resolved to its session and principal. The JSON API
//! reads the token from `Authorization: Bearer`, the web UI from its session cookie; both
//! resolve it here, with the same expiry rules.

use super::{AppState, OpError};
use crate::crypto::hash_token;
use crate::store::agents::{self, Agent};
use crate::store::sessions::{self, Session, SessionKind};
use crate::store::users::{self, User};
use crate::store::vaults::ActorType;
use crate::store::{InstanceRole, VaultRole, now};

/// The authenticated principal behind a request.
#[derive(Debug, Clone)]
pub enum Principal {
    User(User),
    Agent(Agent),
    /// A vault-scoped token: it carries its vault and role and acts for nobody else.
    Scoped {
        vault_id: String,
        role: VaultRole,
    },
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub session: Session,
    pub principal: Principal,
}

impl Caller {
    /// The AUTHED rate-limit key: the user, the agent, or this very vault-scoped token.
    pub fn limit_key(&self) -> String {
        match &self.principal {
            Principal::User(user) => format!("user:{}", user.id),
            Principal::Agent(agent) => format!("agent:{}", agent.id),
            Principal::Scoped { .. } => format!("token:{}", self.session.public_id),
        }
    }

    /// The calling user, or 403 for agent and scoped tokens.
    pub fn user(&self) -> Result<&User, OpError> {
        match &self.principal {
            Principal::User(user) => Ok(user),
            _ => Err(OpError::forbidden(
                "this action needs a user login; log in with `agent-vault auth login`",
            )),
        }
    }

    /// Instance owners: users, and agents given the owner role.
    pub fn is_owner(&self) -> bool {
        match &self.principal {
            Principal::User(u) => u.role == InstanceRole::Owner,
            Principal::Agent(a) => a.role == InstanceRole::Owner,
            Principal::Scoped { .. } => false,
        }
    }

    /// Refuses, inside the write it guards, a caller who is no longer an owner. Rights are
    /// checked when a request arrives and again here: a request in flight when its sender is
    /// demoted must not land after the demotion (and undo it).
    pub fn still_owner(
        &self,
        tx: &crate::store::Connection,
    ) -> crate::store::Result<Result<(), OpError>> {
        let owner = match &self.principal {
            Principal::User(u) => {
                users::by_id(tx, &u.id)?.is_some_and(|u| u.active && u.role == InstanceRole::Owner)
            }
            Principal::Agent(a) => {
                agents::by_id(tx, &a.id)?.is_some_and(|a| a.role == InstanceRole::Owner)
            }
            Principal::Scoped { .. } => false,
        };
        Ok(match owner {
            true => Ok(()),
            false => Err(OpError::forbidden("you are no longer an instance owner")),
        })
    }

    /// Refuses, inside the write it guards, a caller who no longer holds `needed` on the vault
    /// (see [`Self::still_owner`]). A scoped token whose minter lost the role has been deleted.
    pub fn still_holds(
        &self,
        tx: &crate::store::Connection,
        vault_id: &str,
        needed: VaultRole,
    ) -> crate::store::Result<Result<(), OpError>> {
        use crate::store::vaults::role_of;
        let held = match &self.principal {
            Principal::User(u) => role_of(tx, vault_id, ActorType::User, &u.id)?,
            Principal::Agent(a) => role_of(tx, vault_id, ActorType::Agent, &a.id)?,
            Principal::Scoped {
                vault_id: own,
                role,
            } => {
                let alive = sessions::by_token_hash(tx, &self.session.token_hash)?.is_some();
                (own == vault_id && alive).then_some(*role)
            }
        };
        Ok(match held >= Some(needed) {
            true => Ok(()),
            false => Err(OpError::forbidden(format!(
                "this needs the {needed} role on the vault, which you no longer hold"
            ))),
        })
    }

    /// Refuses, inside the write it guards, a caller who is neither an instance owner any more
    /// nor still an admin of the vault (rename, delete).
    pub fn still_admin_or_owner(
        &self,
        tx: &crate::store::Connection,
        vault_id: &str,
    ) -> crate::store::Result<Result<(), OpError>> {
        if self.still_owner(tx)?.is_ok() {
            return Ok(Ok(()));
        }
        Ok(self
            .still_holds(tx, vault_id, VaultRole::Admin)?
            .map_err(|_| OpError::forbidden("you are no longer an admin of this vault")))
    }

    /// The caller as a grant holder: (actor type, id), or `None` for a scoped token.
    pub fn actor(&self) -> Option<(ActorType, &str)> {
        match &self.principal {
            Principal::User(u) => Some((ActorType::User, &u.id)),
            Principal::Agent(a) => Some((ActorType::Agent, &a.id)),
            Principal::Scoped { .. } => None,
        }
    }
}

/// Resolves a raw token to a live session and its principal, recording its use; `None` when
/// the token is unknown, expired, or its user or agent is gone or inactive.
pub async fn resolve(state: &AppState, token: &str) -> Result<Option<Caller>, OpError> {
    let hash = hash_token(token);
    state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(session) = sessions::by_token_hash(conn, &hash)? else {
                    return Ok(None);
                };
                let now = now();
                if session.is_expired(now) {
                    return Ok(None);
                }
                let principal = match session.kind {
                    SessionKind::User => {
                        let user_id = session.user_id.as_deref().unwrap_or_default();
                        match users::by_id(conn, user_id)? {
                            Some(user) if user.active => Principal::User(user),
                            _ => return Ok(None),
                        }
                    }
                    SessionKind::Agent => {
                        let agent_id = session.agent_id.as_deref().unwrap_or_default();
                        match agents::by_id(conn, agent_id)? {
                            Some(agent) => Principal::Agent(agent),
                            None => return Ok(None),
                        }
                    }
                    SessionKind::Scoped => match (&session.vault_id, session.vault_role) {
                        (Some(vault_id), Some(role)) => Principal::Scoped {
                            vault_id: vault_id.clone(),
                            role,
                        },
                        _ => return Ok(None),
                    },
                };
                sessions::touch(conn, &session, now)?;
                Ok(Some(Caller { session, principal }))
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, vaults};

    /// The in-write checks read the store, not the caller's snapshot taken on arrival.
    #[test]
    fn in_write_checks_see_rights_taken_away_since_arrival() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| {
                let user = users::insert(tx, "a@example.com", InstanceRole::Owner, true, None)?;
                let vault = vaults::insert(tx, "team")?;
                vaults::grant(tx, &vault.id, ActorType::User, &user.id, VaultRole::Admin)?;
                let (_, session) = sessions::create_for_user(tx, &user.id)?;
                let caller = Caller {
                    session,
                    principal: Principal::User(user.clone()),
                };
                let vault_id = vault.id.as_str();
                assert!(caller.still_owner(tx)?.is_ok());
                assert!(caller.still_admin_or_owner(tx, vault_id)?.is_ok());

                users::set_role(tx, &user.id, InstanceRole::Member)?;
                assert!(caller.still_owner(tx)?.is_err(), "demoted from owner");
                assert!(
                    caller.still_admin_or_owner(tx, vault_id)?.is_ok(),
                    "still admin"
                );

                vaults::grant(tx, &vault.id, ActorType::User, &user.id, VaultRole::Member)?;
                assert!(caller.still_holds(tx, vault_id, VaultRole::Member)?.is_ok());
                assert!(
                    caller.still_admin_or_owner(tx, vault_id)?.is_err(),
                    "lowered"
                );

                vaults::revoke(tx, &vault.id, ActorType::User, &user.id)?;
                assert!(caller.still_holds(tx, vault_id, VaultRole::Proxy)?.is_err());
                Ok(())
            })
            .unwrap();
    }
}
