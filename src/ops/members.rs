//! Vault membership of users and agents: list, add, remove, change role. Vault admins
//! manage; anyone holding a role on the vault may list. A vault always keeps one admin.
//! Users hold admin or member; the proxy role is for agents (and scoped tokens).

use super::access::{VaultAccess, vault_access};
use super::caller::Caller;
use super::{AppState, OpError};
use crate::store::vaults::{self, ActorType};
use crate::store::{InstanceRole, VaultRole, invites, users};

/// Users hold admin or member on a vault; proxy is for agents and scoped tokens.
pub fn user_role(role: &str) -> Result<VaultRole, OpError> {
    match role.parse::<VaultRole>() {
        Ok(VaultRole::Proxy) => Err(OpError::invalid(
            "users can be admin or member of a vault; the proxy role is for agents",
        )),
        Ok(role) => Ok(role),
        Err(_) => Err(OpError::invalid(format!(
            "unknown vault role \"{role}\" for a user (expected admin or member)"
        ))),
    }
}

/// A vault role for an agent (`proxy` when absent).
pub fn agent_role(role: Option<&str>) -> Result<VaultRole, OpError> {
    role.unwrap_or("proxy").parse().map_err(OpError::invalid)
}

/// Who is in a vault: users (active members, then pending invites pre-assigning it) and
/// agents.
pub struct Members {
    pub access: VaultAccess,
    pub users: Vec<(String, VaultRole)>,
    pub invited: Vec<(String, VaultRole)>,
    pub agents: Vec<(String, VaultRole)>,
}

pub async fn list(state: &AppState, caller: &Caller, vault: &str) -> Result<Members, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Proxy)?;
    let id = access.vault.id.clone();
    let (users, invited, agents) = state
        .db(move |store, _| {
            store.read(|conn| {
                Ok((
                    vaults::user_members(conn, &id)?,
                    invites::pending_users_for_vault(conn, &id)?,
                    vaults::agent_members(conn, &id)?,
                ))
            })
        })
        .await?;
    Ok(Members {
        access,
        users,
        invited,
        agents,
    })
}

/// A user added to a vault: their email, the role, and a caution when their account's
/// address is unproven (see [`unproven_address`]).
pub struct AddedUser {
    pub email: String,
    pub role: VaultRole,
    pub caution: Option<String>,
}

/// Grants an existing, active user a role on the vault.
pub async fn add_user(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    email: &str,
    role: &str,
) -> Result<AddedUser, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let role = user_role(role)?;
    let email = users::normalize_email(email);
    let lookup = email.clone();
    let user = state
        .db(move |store, _| store.read(|conn| users::by_email(conn, &lookup)))
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| {
            OpError::not_found(format!(
                "no active user with email \"{email}\"; invite them with `agent-vault user invite {email} --vault {vault}:{role}`"
            ))
        })?;
    let vault_id = access.vault.id.clone();
    let adder = caller.actor().map(|(_, id)| id.to_owned());
    let caller = caller.clone();
    let added = state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_holds(tx, &vault_id, VaultRole::Admin)? {
                    return Ok(Err(refused));
                }
                if vaults::role_of(tx, &vault_id, ActorType::User, &user.id)?.is_some() {
                    return Ok(Ok(None));
                }
                vaults::grant(tx, &vault_id, ActorType::User, &user.id, role)?;
                Ok(Ok(Some(unproven_address(tx, &user, adder.as_deref())?)))
            })
        })
        .await??;
    let Some(caution) = added else {
        return Err(OpError::conflict(format!(
            "{email} is already a member of vault \"{vault}\"; change the role with `agent-vault vault user set-role`"
        )));
    };
    Ok(AddedUser {
        email,
        role,
        caution,
    })
}

/// Why `user`'s address may not be theirs, for whoever is about to trust it: an account made
/// from an invite link proves nothing about its address, since anyone signed in may invite
/// any address and is shown the link (the seed's contract), so its creator could have
/// accepted it. Silent when the address was proven (a code, Google) or `adder` made the
/// invite themselves.
fn unproven_address(
    tx: &crate::store::Connection,
    user: &users::User,
    adder: Option<&str>,
) -> crate::store::Result<Option<String>> {
    if users::email_proven(tx, &user.id)? {
        return Ok(None);
    }
    let invite = invites::last_used_for(tx, invites::InviteKind::User, &user.email)?;
    let creator = invite.and_then(|i| i.created_by);
    if creator.is_some() && creator.as_deref() == adder {
        return Ok(None);
    }
    let by = match creator {
        Some(id) => {
            users::by_id(tx, &id)?.map_or_else(|| "a person since removed".to_owned(), |u| u.email)
        }
        None => "someone".to_owned(),
    };
    Ok(Some(format!(
        "{0}'s account was made from an invite link that {by} created and was shown, so it proves nothing about the address: make sure the account is the person you mean (for example, ask them to sign in with Google, which proves it)",
        user.email
    )))
}

/// Removes a user from the vault (`None`) or changes their role; the last admin stays.
/// Returns the normalised email.
pub async fn change_user(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    email: &str,
    new_role: Option<&str>,
) -> Result<String, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let new_role = new_role.map(user_role).transpose()?;
    let email = users::normalize_email(email);
    let (vault_id, lookup, vault_name) = (access.vault.id.clone(), email.clone(), vault.to_owned());
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_holds(tx, &vault_id, VaultRole::Admin)? {
                    return Ok(Err(refused));
                }
                let Some(user) = users::by_email(tx, &lookup)? else {
                    return Ok(Err(OpError::not_found(format!(
                        "no user with email \"{}\"",
                        crate::ceilings::excerpt(&lookup, crate::ceilings::ECHO_CHARS)
                    ))));
                };
                let member = (ActorType::User, user.id.as_str(), lookup.as_str());
                set_grant(tx, (&vault_id, &vault_name), member, new_role)
            })
        })
        .await??;
    Ok(email)
}

/// Adds an agent to the vault with a role (vault admins).
pub async fn add_agent(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    name: &str,
    role: Option<&str>,
) -> Result<VaultRole, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let role = agent_role(role)?;
    let agent = super::agents::by_name(state, name).await?;
    // The vault's admins decide who is in it, and an agent's manager where it goes: another
    // admin adding someone's agent would set its default vault (and see its traffic in that
    // vault's log), or make its single vault ambiguous.
    let manages = caller.is_owner()
        || matches!(caller.actor(), Some((ActorType::User, me)) if agent.created_by.as_deref() == Some(me));
    if !manages {
        return Err(OpError::forbidden(format!(
            "only an owner or whoever invited agent \"{name}\" can add it to a vault; ask them to"
        )));
    }
    let vault_id = access.vault.id.clone();
    let caller = caller.clone();
    let added = state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_holds(tx, &vault_id, VaultRole::Admin)? {
                    return Ok(Err(refused));
                }
                if vaults::role_of(tx, &vault_id, ActorType::Agent, &agent.id)?.is_some() {
                    return Ok(Ok(false));
                }
                vaults::grant(tx, &vault_id, ActorType::Agent, &agent.id, role)?;
                Ok(Ok(true))
            })
        })
        .await??;
    if !added {
        return Err(OpError::conflict(format!(
            "agent \"{name}\" is already in vault \"{vault}\"; change its role with `agent-vault vault agent set-role`"
        )));
    }
    Ok(role)
}

/// Removes an agent from the vault (`None`) or changes its role; the last admin stays.
pub async fn change_agent(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    name: &str,
    new_role: Option<VaultRole>,
) -> Result<(), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let agent = super::agents::by_name(state, name).await?;
    let (vault_id, vault_name, agent_name) =
        (access.vault.id.clone(), vault.to_owned(), name.to_owned());
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_holds(tx, &vault_id, VaultRole::Admin)? {
                    return Ok(Err(refused));
                }
                let shown = format!("agent \"{agent_name}\"");
                let member = (ActorType::Agent, agent.id.as_str(), shown.as_str());
                set_grant(tx, (&vault_id, &vault_name), member, new_role)
            })
        })
        .await?
}

/// Refuses to delete `who` while some vault has no other admin (inside the deleting write
/// transaction, so a concurrent change cannot slip between).
pub fn keeps_every_vault_administered(
    tx: &crate::store::Connection,
    (actor, id, who): (ActorType, &str, &str),
) -> crate::store::Result<Result<(), OpError>> {
    let vaults = vaults::solely_administered_by(tx, actor, id)?;
    if vaults.is_empty() {
        return Ok(Ok(()));
    }
    Ok(Err(OpError::conflict(format!(
        "{who} is the last admin of vault {}; make another member admin there first",
        vaults
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ))))
}

/// Removes a member (`None`) or changes its role, in the caller's write transaction so that
/// the last-admin check and the change see the same vault: two admins demoting each other at
/// once must not leave it without one. `member` is (kind, id, how messages name it).
fn set_grant(
    tx: &crate::store::Connection,
    (vault_id, vault_name): (&str, &str),
    (actor, id, shown): (ActorType, &str, &str),
    new_role: Option<VaultRole>,
) -> crate::store::Result<Result<(), OpError>> {
    let Some(current) = vaults::role_of(tx, vault_id, actor, id)? else {
        return Ok(Err(OpError::not_found(format!(
            "{shown} is not a member of vault \"{vault_name}\""
        ))));
    };
    let losing_admin = current == VaultRole::Admin && new_role != Some(VaultRole::Admin);
    if losing_admin && vaults::admin_count(tx, vault_id)? <= 1 {
        return Ok(Err(OpError::conflict(format!(
            "{shown} is the last admin of vault \"{vault_name}\"; make another member admin first"
        ))));
    }
    let caps = match actor {
        ActorType::User => {
            match agent_caps(tx, id, shown, &UserChange::Vault(vault_id, new_role))? {
                Ok(caps) => caps,
                Err(refused) => return Ok(Err(refused)),
            }
        }
        ActorType::Agent => Vec::new(),
    };
    match new_role {
        Some(role) => vaults::grant(tx, vault_id, actor, id, role)?,
        None => {
            vaults::revoke(tx, vault_id, actor, id)?;
        }
    }
    apply_agent_caps(tx, &caps)?;
    Ok(Ok(()))
}

/// What happens to a user, for the agents they invited.
pub enum UserChange<'a> {
    /// Their role on one vault becomes this (`None`: removed from it).
    Vault(&'a str, Option<VaultRole>),
    /// They are no longer an owner: they keep only their own grants.
    NoLongerOwner,
    /// Their account goes.
    Deleted,
}

/// One agent grant to lower or remove.
pub struct AgentCap {
    agent_id: String,
    vault_id: String,
    role: Option<VaultRole>,
}

/// An agent is its inviter's tool: on a vault it holds at most what its inviter holds there,
/// so taking access from a person (lowered, removed, account deleted, no longer an owner)
/// takes it from the agents they invited, as it does from the tokens they minted; otherwise
/// whoever holds the agent's token keeps the access and can even add themselves back. An
/// owner's agents are not capped while they stay one (an owner may give any vault).
///
/// Returns the grants to change, or a refusal when that would leave a vault without an admin
/// (checked before anything is written, in the caller's transaction); apply them with
/// [`apply_agent_caps`].
pub fn agent_caps(
    tx: &crate::store::Connection,
    user_id: &str,
    who: &str,
    change: &UserChange<'_>,
) -> crate::store::Result<Result<Vec<AgentCap>, OpError>> {
    let owner = users::by_id(tx, user_id)?.is_some_and(|u| u.role == InstanceRole::Owner);
    if owner && matches!(change, UserChange::Vault(..)) {
        return Ok(Ok(Vec::new()));
    }
    let will_hold = |vault_id: &str| -> crate::store::Result<Option<VaultRole>> {
        match change {
            UserChange::Vault(changed, role) if *changed == vault_id => Ok(*role),
            UserChange::Deleted => Ok(None),
            _ => vaults::role_of(tx, vault_id, ActorType::User, user_id),
        }
    };
    let mut caps = Vec::new();
    // Per vault: its name and the agents that would lose admin there.
    let mut losing_admin: Vec<(String, String, Vec<String>)> = Vec::new();
    for agent in agents_invited_by(tx, user_id)? {
        for (vault, role) in vaults::grants_of(tx, ActorType::Agent, &agent.id)? {
            if let UserChange::Vault(changed, _) = change
                && *changed != vault.id
            {
                continue;
            }
            let allowed = will_hold(&vault.id)?;
            if allowed.is_some_and(|allowed| role <= allowed) {
                continue;
            }
            if role == VaultRole::Admin {
                match losing_admin.iter_mut().find(|(id, _, _)| *id == vault.id) {
                    Some((_, _, names)) => names.push(agent.name.clone()),
                    None => losing_admin.push((
                        vault.id.clone(),
                        vault.name.clone(),
                        vec![agent.name.clone()],
                    )),
                }
            }
            caps.push(AgentCap {
                agent_id: agent.id.clone(),
                vault_id: vault.id,
                role: allowed,
            });
        }
    }
    for (vault_id, vault_name, names) in losing_admin {
        let user_too = vaults::role_of(tx, &vault_id, ActorType::User, user_id)?
            == Some(VaultRole::Admin)
            && will_hold(&vault_id)? != Some(VaultRole::Admin);
        let lost = names.len() + usize::from(user_too);
        if vaults::admin_count(tx, &vault_id)? <= lost as i64 {
            return Ok(Err(OpError::conflict(format!(
                "the agents {who} invited ({}) hold admin of vault \"{vault_name}\" through {who} and would lose it too, leaving the vault without an admin; make another member admin there first",
                names.join(", ")
            ))));
        }
    }
    Ok(Ok(caps))
}

/// Lowers or removes the agent grants [`agent_caps`] found (their minted tokens above the
/// new role end with them).
pub fn apply_agent_caps(
    tx: &crate::store::Connection,
    caps: &[AgentCap],
) -> crate::store::Result<()> {
    for cap in caps {
        match cap.role {
            Some(role) => vaults::grant(tx, &cap.vault_id, ActorType::Agent, &cap.agent_id, role)?,
            None => {
                vaults::revoke(tx, &cap.vault_id, ActorType::Agent, &cap.agent_id)?;
            }
        }
    }
    Ok(())
}

/// The agents `user_id` invited.
fn agents_invited_by(
    tx: &crate::store::Connection,
    user_id: &str,
) -> crate::store::Result<Vec<crate::store::agents::Agent>> {
    let mut agents = crate::store::agents::list(tx)?;
    agents.retain(|a| a.created_by.as_deref() == Some(user_id));
    Ok(agents)
}

/// When a person stops being an owner (or goes): the owner agents they invited become
/// members, or their tokens would keep every owner power, down to making the person owner
/// again.
pub fn demote_owner_agents_of(
    tx: &crate::store::Connection,
    user_id: &str,
) -> crate::store::Result<()> {
    for agent in agents_invited_by(tx, user_id)? {
        if agent.role == InstanceRole::Owner {
            crate::store::agents::set_role(tx, &agent.id, InstanceRole::Member)?;
        }
    }
    Ok(())
}

/// Before a user's account is deleted: the agents they invited lose every vault grant, any
/// owner role and their tokens (an owner can still see, rotate or delete them). Refuses,
/// writing nothing, when a vault would be left without an admin.
pub fn release_agents_of_deleted(
    tx: &crate::store::Connection,
    user_id: &str,
    who: &str,
) -> crate::store::Result<Result<(), OpError>> {
    let caps = match agent_caps(tx, user_id, who, &UserChange::Deleted)? {
        Ok(caps) => caps,
        Err(refused) => return Ok(Err(refused)),
    };
    apply_agent_caps(tx, &caps)?;
    demote_owner_agents_of(tx, user_id)?;
    for agent in agents_invited_by(tx, user_id)? {
        crate::store::agents::end_sessions(tx, &agent.id)?;
    }
    Ok(Ok(()))
}
