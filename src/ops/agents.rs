//! Agents: list, details, delete, rotate, rename, instance role. (Inviting agents is in
//! [`super::invites`], their vault membership in [`super::members`].)
//!
//! Stance: owners manage every agent, other users the agents they invited. Rotation mints
//! nothing until its invite is redeemed, and then ends every old session of the agent at
//! once. The last owner, user or agent, stays.

use super::access::validate_slug;
use super::caller::Caller;
use super::invites::{self, CreatedInvite, parse_instance_role};
use super::{AppState, OpError};
use crate::store::agents::{self, Agent};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{InstanceRole, VaultRole, users};

/// Loads an agent the caller may manage: owners any, others the agents they created.
pub async fn managed_agent(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Agent, OpError> {
    let me = caller.user()?.id.clone();
    let lookup = name.to_owned();
    let agent = state
        .db(move |store, _| store.read(|conn| agents::by_name(conn, &lookup)))
        .await?
        .ok_or_else(|| {
            OpError::not_found(format!(
                "no agent named \"{name}\"; see `agent-vault agent list`"
            ))
        })?;
    if !caller.is_owner() && agent.created_by.as_deref() != Some(me.as_str()) {
        return Err(OpError::forbidden(format!(
            "only an owner or whoever invited agent \"{name}\" can manage it"
        )));
    }
    Ok(agent)
}

/// Why `user` may not take `agent` over, if they may not. A rotation hands whoever redeems it
/// the agent's token, and with it every vault role the agent holds: so it is a taking over,
/// and once redeemed the agent counts as its rotator's (its roles then follow theirs, as any
/// agent's follow its inviter's). An owner may take over someone else's agent only where they
/// already hold, visibly, each role it holds: otherwise an owner with no part in a vault
/// could read its secrets by rotating a member's agent, unseen by the vault's admins (a red
/// team did), and keep them after being demoted.
pub(super) fn may_take_over(
    conn: &crate::store::Connection,
    user: &users::User,
    agent: &Agent,
) -> crate::store::Result<Result<(), String>> {
    if agent.created_by.as_deref() == Some(user.id.as_str()) {
        return Ok(Ok(()));
    }
    if user.role != InstanceRole::Owner {
        return Ok(Err(format!(
            "only an owner or whoever invited agent \"{}\" can rotate it",
            agent.name
        )));
    }
    let mut beyond = Vec::new();
    for (vault, role) in vaults::grants_of(conn, ActorType::Agent, &agent.id)? {
        let held = vaults::role_of(conn, &vault.id, ActorType::User, &user.id)?;
        if held.is_none_or(|held| held < role) {
            beyond.push(format!("\"{}\" ({})", vault.name, role.as_str()));
        }
    }
    if beyond.is_empty() {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "agent \"{}\" holds roles on vaults where {} does not: {}; rotating it would hand that access over unseen. Join them first (`agent-vault owner vault join <vault>`) or ask whoever invited the agent to rotate it",
        agent.name,
        user.email,
        beyond.join(", ")
    )))
}

/// An agent with what the listing shows about it.
pub struct AgentView {
    pub agent: Agent,
    pub grants: Vec<(Vault, VaultRole)>,
    pub active_sessions: i64,
    pub created_by: Option<String>,
}

fn view(conn: &crate::store::Connection, agent: Agent) -> crate::store::Result<AgentView> {
    let created_by = match &agent.created_by {
        Some(id) => users::by_id(conn, id)?.map(|u| u.email),
        None => None,
    };
    Ok(AgentView {
        grants: vaults::grants_of(conn, ActorType::Agent, &agent.id)?,
        active_sessions: agents::session_count(conn, &agent.id)?,
        created_by,
        agent,
    })
}

/// The agents the caller manages: owners see all, others the ones they invited.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<AgentView>, OpError> {
    let me = caller.user()?.id.clone();
    let owner = caller.is_owner();
    state
        .db(move |store, _| {
            store.read(|conn| {
                agents::list(conn)?
                    .into_iter()
                    .filter(|a| owner || a.created_by.as_deref() == Some(me.as_str()))
                    .map(|a| view(conn, a))
                    .collect()
            })
        })
        .await
}

pub async fn info(state: &AppState, caller: &Caller, name: &str) -> Result<AgentView, OpError> {
    let agent = managed_agent(state, caller, name).await?;
    state
        .db(move |store, _| store.read(|conn| view(conn, agent)))
        .await
}

fn last_owner(name: &str) -> OpError {
    OpError::conflict(format!(
        "agent \"{name}\" is the last owner of this instance; make another user or agent owner first"
    ))
}

/// Deletes the agent, its token, scoped tokens it minted and its grants.
pub async fn delete(state: &AppState, caller: &Caller, name: &str) -> Result<(), OpError> {
    let agent = managed_agent(state, caller, name).await?;
    state
        .db(move |store, _| {
            store.write(|tx| {
                if agent.role == InstanceRole::Owner && users::count_active_owners(tx)? <= 1 {
                    return Ok(Err(last_owner(&agent.name)));
                }
                let shown = format!("agent \"{}\"", agent.name);
                let member = (ActorType::Agent, agent.id.as_str(), shown.as_str());
                if let Err(refused) = super::members::keeps_every_vault_administered(tx, member)? {
                    return Ok(Err(refused));
                }
                agents::delete(tx, &agent.id)?;
                Ok(Ok(()))
            })
        })
        .await?
}

/// A rotation invite: the old sessions end when it is redeemed.
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    name: &str,
    ttl_seconds: Option<i64>,
) -> Result<CreatedInvite, OpError> {
    caller.user()?;
    let agent = managed_agent(state, caller, name).await?;
    invites::rotation_invite(state, caller, agent, ttl_seconds).await
}

pub async fn rename(
    state: &AppState,
    caller: &Caller,
    name: &str,
    new_name: &str,
) -> Result<(), OpError> {
    let agent = managed_agent(state, caller, name).await?;
    validate_slug("agent", new_name)?;
    let new_name = new_name.to_owned();
    state
        .db(move |store, _| store.write(|tx| agents::rename(tx, &agent.id, &new_name)))
        .await
}

/// Changes an agent's instance role (owners).
pub async fn set_role(
    state: &AppState,
    caller: &Caller,
    name: &str,
    role: &str,
) -> Result<InstanceRole, OpError> {
    super::admin::require_owner(caller)?;
    let role = parse_instance_role(Some(role))?;
    let agent = managed_agent(state, caller, name).await?;
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_owner(tx)? {
                    return Ok(Err(refused));
                }
                let demoting = agent.role == InstanceRole::Owner && role != InstanceRole::Owner;
                if demoting && users::count_active_owners(tx)? <= 1 {
                    return Ok(Err(last_owner(&agent.name)));
                }
                agents::set_role(tx, &agent.id, role)?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(role)
}

/// An agent by name, for vault membership (any user may look one up to add it).
pub async fn by_name(state: &AppState, name: &str) -> Result<Agent, OpError> {
    let lookup = name.to_owned();
    state
        .db(move |store, _| store.read(|conn| agents::by_name(conn, &lookup)))
        .await?
        .ok_or_else(|| {
            OpError::not_found(format!(
                "no agent named \"{name}\"; see `agent-vault agent list`"
            ))
        })
}
