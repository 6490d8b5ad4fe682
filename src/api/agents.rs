//! Agents: invites an agent redeems over plain HTTP for its token, and their management
//! (list, info, delete, rotate, rename, instance role, vault membership).
//!
//! Stance: an agent token is shown exactly once, in the redemption reply; only its hash is
//! stored. Invites are short-lived and single-use. Rotation mints nothing until the new
//! invite is redeemed, and then ends every old session of the agent at once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{assignable_vaults, validate_slug, vault_access};
use super::auth::Caller;
use super::suffix::SuffixQuery;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::crypto::{TokenKind, hash_token, mint_token, random_bytes};
use crate::store::agent_invites::{self, AgentInvite, AgentInviteStatus, NewAgentInvite};
use crate::store::agents::{self, Agent};
use crate::store::sessions::{self, Session, SessionKind};
use crate::store::vaults::{self, ActorType};
use crate::store::{InstanceRole, VaultRole, now, users};

const DEFAULT_INVITE_TTL: i64 = 15 * 60;
const MAX_INVITE_TTL: i64 = 7 * 24 * 3600;
const LIST: &str = "agent-vault agent invite list";

#[derive(Deserialize)]
pub struct Assignment {
    vault: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
pub struct InviteBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    vaults: Vec<Assignment>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

fn ttl(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None | Some(0) => Ok(DEFAULT_INVITE_TTL),
        Some(secs) if (60..=MAX_INVITE_TTL).contains(&secs) => Ok(secs),
        Some(secs) => Err(ApiError::invalid(format!(
            "invite lifetime {secs} s is out of range; use 1 minute to 7 days (e.g. 15m, 2h)"
        ))),
    }
}

fn parse_role(role: Option<&str>) -> Result<InstanceRole, ApiError> {
    role.unwrap_or("member").parse().map_err(ApiError::invalid)
}

/// The JSON of an invite; `token` only right after creation.
fn describe_invite(invite: &AgentInvite, state: &AppState, token: Option<&str>) -> Value {
    let mut body = json!({
        "agent_name": invite.agent_name,
        "role": invite.role,
        "rotation": invite.agent_id.is_some(),
        "status": invite.status.as_str(),
        "token_suffix": invite.token_suffix,
        "vaults": invite.vaults.iter().map(|(_, name, role)| json!({ "vault": name, "role": role })).collect::<Vec<_>>(),
        "created_at": rfc3339(invite.created_at),
        "expires_at": rfc3339(invite.expires_at),
    });
    if let Some(token) = token {
        body["token"] = json!(token);
        body["redeem_url"] = json!(format!(
            "{}/v1/agent-invites/{token}/redeem",
            state.config.base_url
        ));
        body["address"] = json!(state.config.base_url);
    }
    body
}

/// `POST /v1/agents/invites`: any user may invite an agent; only owners may make it an
/// owner, and only a vault's admins (or an owner) may give it access to that vault.
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user()?.clone();
    validate_slug("agent", &body.name)?;
    let role = parse_role(body.role.as_deref())?;
    if role == InstanceRole::Owner && !caller.is_owner() {
        return Err(ApiError::forbidden(
            "only an instance owner can invite an owner agent",
        ));
    }
    let ttl = ttl(body.ttl_seconds)?;
    let wanted = body
        .vaults
        .iter()
        .map(|a| {
            let role: VaultRole = a
                .role
                .as_deref()
                .unwrap_or("proxy")
                .parse()
                .map_err(ApiError::invalid)?;
            Ok((a.vault.clone(), role))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let name = body.name.clone();
    let caller_for_db = caller.clone();
    let (invite, token) = state
        .db(move |store, _| {
            store.write(|tx| {
                if agents::by_name(tx, &name)?.is_some() {
                    return Ok(Err(ApiError::conflict(format!(
                        "an agent named \"{name}\" already exists; rotate its token with `agent-vault agent rotate {name}`"
                    ))));
                }
                if let Some(pending) = agent_invites::pending_for_name(tx, &name)? {
                    return Ok(Err(ApiError::conflict(format!(
                        "an invite for agent \"{name}\" is already pending (…{}); revoke it with `agent-vault agent invite revoke {}`",
                        pending.token_suffix, pending.token_suffix
                    ))));
                }
                let vault_ids = match assignable_vaults(tx, &caller_for_db, &wanted)? {
                    Ok(ids) => ids,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let made = agent_invites::create(
                    tx,
                    &NewAgentInvite {
                        agent_name: &name,
                        agent_id: None,
                        role,
                        vaults: &vault_ids,
                        created_by: &user.id,
                        ttl_secs: ttl,
                    },
                )?;
                Ok(Ok(made))
            })
        })
        .await??;
    Ok((
        StatusCode::CREATED,
        axum::Json(describe_invite(&invite, &state, Some(token.raw.expose()))),
    ))
}

#[derive(Deserialize)]
pub struct StatusQuery {
    status: Option<String>,
}

/// `GET /v1/agents/invites[?status=]`: owners see all, others the ones they created.
pub async fn list_invites(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<StatusQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.user()?.id.clone();
    let owner = caller.is_owner();
    let invites = state.db(|store, _| store.read(agent_invites::list)).await?;
    let rows: Vec<Value> = invites
        .iter()
        .filter(|i| owner || i.created_by.as_deref() == Some(me.as_str()))
        .filter(|i| {
            query
                .status
                .as_deref()
                .is_none_or(|s| s == i.status.as_str())
        })
        .map(|i| describe_invite(i, &state, None))
        .collect();
    Ok(axum::Json(json!({ "invites": rows })))
}

/// `DELETE /v1/agents/invites/{suffix}`.
pub async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(given): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.user()?.id.clone();
    let owner = caller.is_owner();
    let query = SuffixQuery::parse(&given, "av_ainv_", LIST)?;
    let name = state
        .db(move |store, _| {
            store.write(|tx| {
                let candidates: Vec<AgentInvite> = match &query.full_hash {
                    Some(hash) => agent_invites::by_token_hash(tx, hash)?
                        .into_iter()
                        .collect(),
                    None => agent_invites::list(tx)?
                        .into_iter()
                        .filter(|i| query.matches(&i.token_suffix))
                        .collect(),
                };
                let candidates = candidates
                    .into_iter()
                    .filter(|i| i.status == AgentInviteStatus::Pending)
                    .filter(|i| owner || i.created_by.as_deref() == Some(me.as_str()))
                    .collect();
                let one = match query.pick(candidates, |i| i.agent_name.as_str(), LIST) {
                    Ok(one) => one,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                agent_invites::finish(tx, &one.id, false)?;
                Ok(Ok(one.agent_name))
            })
        })
        .await??;
    Ok(axum::Json(json!({ "revoked": true, "agent_name": name })))
}

/// `GET /v1/agent-invites/{token}` (public): what redeeming would give.
pub async fn invite_details(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hash = hash_token(&token);
    let invite = state
        .db(move |store, _| store.read(|conn| agent_invites::by_token_hash(conn, &hash)))
        .await?
        .ok_or_else(|| ApiError::not_found("this agent invite is not valid"))?;
    Ok(axum::Json(describe_invite(&invite, &state, None)))
}

/// `POST /v1/agent-invites/{token}/redeem` (public; the invite token is the credential):
/// creates the agent (or, for a rotation, ends its old sessions) and returns its token once.
pub async fn redeem(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hash = hash_token(&token);
    let redeemed = state
        .db(move |store, _| {
            store.write(|tx| {
                let Some(invite) = agent_invites::by_token_hash(tx, &hash)? else {
                    return Ok(Err(ApiError::not_found("this agent invite is not valid")));
                };
                if invite.status != AgentInviteStatus::Pending
                    || !agent_invites::finish(tx, &invite.id, true)?
                {
                    return Ok(Err(ApiError::new(
                        StatusCode::GONE,
                        "invite_used",
                        format!(
                            "this agent invite is {}; ask for a new one",
                            invite.status.as_str()
                        ),
                    )));
                }
                let agent = match &invite.agent_id {
                    Some(id) => {
                        let Some(agent) = agents::by_id(tx, id)? else {
                            return Ok(Err(ApiError::not_found(
                                "the agent of this rotation invite was deleted",
                            )));
                        };
                        agents::end_sessions(tx, &agent.id)?;
                        agent
                    }
                    None => {
                        if agents::by_name(tx, &invite.agent_name)?.is_some() {
                            return Ok(Err(ApiError::conflict(format!(
                                "an agent named \"{}\" already exists",
                                invite.agent_name
                            ))));
                        }
                        let agent = agents::insert(
                            tx,
                            &invite.agent_name,
                            invite.role,
                            invite.created_by.as_deref(),
                        )?;
                        for (vault_id, _, role) in &invite.vaults {
                            vaults::grant(tx, vault_id, ActorType::Agent, &agent.id, *role)?;
                        }
                        agent
                    }
                };
                let token = mint_token(TokenKind::Agent);
                let now = now();
                sessions::insert(
                    tx,
                    &Session {
                        token_hash: token.hash.clone(),
                        public_id: hex::encode(random_bytes::<10>()),
                        kind: SessionKind::Agent,
                        user_id: None,
                        agent_id: Some(agent.id.clone()),
                        vault_id: None,
                        vault_role: None,
                        created_at: now,
                        expires_at: None,
                        last_used_at: now,
                    },
                )?;
                let grants = vaults::grants_of(tx, ActorType::Agent, &agent.id)?;
                Ok(Ok((agent, token, grants)))
            })
        })
        .await??;
    let (agent, token, grants) = redeemed;
    let vault_list: Vec<Value> = grants
        .iter()
        .map(|(v, r)| json!({ "vault": v.name, "role": r }))
        .collect();
    let proxy = state.config.mitm_port.map(|port| {
        let host = state
            .config
            .base_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or("127.0.0.1")
            .to_owned();
        json!({
            "https_proxy": format!("http://<agent_token>:<vault>@{host}:{port}"),
            "ca_url": format!("{}/v1/mitm/ca.pem", state.config.base_url),
        })
    });
    Ok(axum::Json(json!({
        "agent_name": agent.name,
        "agent_token": token.raw.expose(),
        "role": agent.role,
        "vaults": vault_list,
        "address": state.config.base_url,
        "proxy": proxy,
        "explicit_proxy": format!("{}/proxy/<host>/<path> with Authorization: Bearer <agent_token> and X-Vault: <vault>", state.config.base_url),
        "discover": format!("{}/v1/discover?vault=<vault> with Authorization: Bearer <agent_token>", state.config.base_url),
        "message": "Keep agent_token secret: it is shown only once. Send HTTPS through the proxy as shown, trusting the CA at ca_url.",
    })))
}

/// Loads an agent the caller may manage: owners any, others the agents they created.
async fn managed_agent(state: &AppState, caller: &Caller, name: &str) -> Result<Agent, ApiError> {
    let me = caller.user()?.id.clone();
    let lookup = name.to_owned();
    let agent = state
        .db(move |store, _| store.read(|conn| agents::by_name(conn, &lookup)))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no agent named \"{name}\"; see `agent-vault agent list`"
            ))
        })?;
    if !caller.is_owner() && agent.created_by.as_deref() != Some(me.as_str()) {
        return Err(ApiError::forbidden(format!(
            "only an owner or whoever invited agent \"{name}\" can manage it"
        )));
    }
    Ok(agent)
}

async fn describe_agent(state: &AppState, agent: Agent) -> Result<Value, ApiError> {
    let id = agent.id.clone();
    let created_by = agent.created_by.clone();
    let (grants, sessions, creator) = state
        .db(move |store, _| {
            store.read(|conn| {
                let creator = match &created_by {
                    Some(id) => users::by_id(conn, id)?.map(|u| u.email),
                    None => None,
                };
                Ok((
                    vaults::grants_of(conn, ActorType::Agent, &id)?,
                    agents::session_count(conn, &id)?,
                    creator,
                ))
            })
        })
        .await?;
    Ok(json!({
        "name": agent.name,
        "role": agent.role,
        "status": if sessions > 0 { "active" } else { "no token" },
        "active_sessions": sessions,
        "vaults": grants.iter().map(|(v, r)| json!({ "vault": v.name, "role": r })).collect::<Vec<_>>(),
        "created_by": creator,
        "created_at": rfc3339(agent.created_at),
        "updated_at": rfc3339(agent.updated_at),
    }))
}

/// `GET /v1/agents`: owners see all agents, others the ones they invited.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.user()?.id.clone();
    let owner = caller.is_owner();
    let all = state.db(|store, _| store.read(agents::list)).await?;
    let mut rows = Vec::new();
    for agent in all
        .into_iter()
        .filter(|a| owner || a.created_by.as_deref() == Some(me.as_str()))
    {
        rows.push(describe_agent(&state, agent).await?);
    }
    Ok(axum::Json(json!({ "agents": rows })))
}

/// `GET /v1/agents/{name}`.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let agent = managed_agent(&state, &caller, &name).await?;
    Ok(axum::Json(describe_agent(&state, agent).await?))
}

fn last_owner(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "agent \"{name}\" is the last owner of this instance; make another user or agent owner first"
    ))
}

/// `DELETE /v1/agents/{name}`: the agent, its token, scoped tokens it minted and its grants.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let agent = managed_agent(&state, &caller, &name).await?;
    state
        .db(move |store, _| {
            store.write(|tx| {
                if agent.role == InstanceRole::Owner && users::count_active_owners(tx)? <= 1 {
                    return Ok(Err(last_owner(&agent.name)));
                }
                agents::delete(tx, &agent.id)?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(axum::Json(json!({ "name": name, "deleted": true })))
}

#[derive(Deserialize)]
pub struct RotateBody {
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

/// `POST /v1/agents/{name}/rotate`: a rotation invite; the old sessions end when it is
/// redeemed.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user()?.clone();
    let agent = managed_agent(&state, &caller, &name).await?;
    // The body is optional: an empty POST rotates with the default invite lifetime.
    let body: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody { ttl_seconds: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::invalid("the body must be {\"ttl_seconds\": N} or empty"))?
    };
    let ttl = ttl(body.ttl_seconds)?;
    let (invite, token) = state
        .db(move |store, _| {
            store.write(|tx| {
                agent_invites::create(
                    tx,
                    &NewAgentInvite {
                        agent_name: &agent.name,
                        agent_id: Some(&agent.id),
                        role: agent.role,
                        vaults: &[],
                        created_by: &user.id,
                        ttl_secs: ttl,
                    },
                )
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(describe_invite(&invite, &state, Some(token.raw.expose()))),
    ))
}

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

/// `POST /v1/agents/{name}/rename`.
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    let agent = managed_agent(&state, &caller, &name).await?;
    validate_slug("agent", &body.name)?;
    let new_name = body.name.clone();
    state
        .db(move |store, _| store.write(|tx| agents::rename(tx, &agent.id, &new_name)))
        .await?;
    Ok(axum::Json(
        json!({ "old_name": name, "new_name": body.name }),
    ))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

/// `POST /v1/agents/{name}/role` (owners): the last owner — user or agent — stays.
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    super::admin::require_owner(&caller)?;
    let role = parse_role(Some(&body.role))?;
    let agent = managed_agent(&state, &caller, &name).await?;
    state
        .db(move |store, _| {
            store.write(|tx| {
                let demoting = agent.role == InstanceRole::Owner && role != InstanceRole::Owner;
                if demoting && users::count_active_owners(tx)? <= 1 {
                    return Ok(Err(last_owner(&agent.name)));
                }
                agents::set_role(tx, &agent.id, role)?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(axum::Json(json!({ "name": name, "role": role })))
}

// --- vault membership of agents ---

async fn agent_by_name(state: &AppState, name: &str) -> Result<Agent, ApiError> {
    let lookup = name.to_owned();
    state
        .db(move |store, _| store.read(|conn| agents::by_name(conn, &lookup)))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no agent named \"{name}\"; see `agent-vault agent list`"
            ))
        })
}

/// `GET /v1/vaults/{v}/agents`.
pub async fn vault_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(vault): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &vault).await?;
    access.require(VaultRole::Proxy)?;
    let id = access.vault.id.clone();
    let rows = state
        .db(move |store, _| {
            store.read(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT a.name, g.role FROM vault_grants g JOIN agents a ON a.id = g.actor_id
                     WHERE g.vault_id = ?1 AND g.actor_type = 'agent' ORDER BY a.name",
                )?;
                let rows = stmt
                    .query_map([&id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
        })
        .await?;
    let agents: Vec<Value> = rows
        .iter()
        .map(|(n, r)| json!({ "name": n, "role": r }))
        .collect();
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "agents": agents }),
    ))
}

#[derive(Deserialize)]
pub struct VaultAgentBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /v1/vaults/{v}/agents` (vault admins).
pub async fn vault_add(
    State(state): State<AppState>,
    caller: Caller,
    Path(vault): Path<String>,
    ApiJson(body): ApiJson<VaultAgentBody>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &vault).await?;
    access.require(VaultRole::Admin)?;
    let role: VaultRole = body
        .role
        .as_deref()
        .unwrap_or("proxy")
        .parse()
        .map_err(ApiError::invalid)?;
    let agent = agent_by_name(&state, &body.name).await?;
    let vault_id = access.vault.id.clone();
    let added = state
        .db(move |store, _| {
            store.write(|tx| {
                if vaults::role_of(tx, &vault_id, ActorType::Agent, &agent.id)?.is_some() {
                    return Ok(false);
                }
                vaults::grant(tx, &vault_id, ActorType::Agent, &agent.id, role)?;
                Ok(true)
            })
        })
        .await?;
    if !added {
        return Err(ApiError::conflict(format!(
            "agent \"{}\" is already in vault \"{vault}\"; change its role with `agent-vault vault agent set-role`",
            body.name
        )));
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "vault": vault, "name": body.name, "role": role })),
    ))
}

/// `DELETE /v1/vaults/{v}/agents/{name}` and `POST …/{name}/role`, sharing the membership checks.
async fn change_membership(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    name: &str,
    new_role: Option<VaultRole>,
) -> Result<(), ApiError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Admin)?;
    let agent = agent_by_name(state, name).await?;
    let (vault_id, vault_name, agent_name) =
        (access.vault.id.clone(), vault.to_owned(), name.to_owned());
    state
        .db(move |store, _| {
            store.write(|tx| {
                let Some(current) = vaults::role_of(tx, &vault_id, ActorType::Agent, &agent.id)? else {
                    return Ok(Err(ApiError::not_found(format!(
                        "agent \"{agent_name}\" is not in vault \"{vault_name}\""
                    ))));
                };
                let losing_admin = current == VaultRole::Admin && new_role != Some(VaultRole::Admin);
                if losing_admin && vaults::admin_count(tx, &vault_id)? <= 1 {
                    return Ok(Err(ApiError::conflict(format!(
                        "agent \"{agent_name}\" is the last admin of vault \"{vault_name}\"; make another member admin first"
                    ))));
                }
                match new_role {
                    Some(role) => vaults::grant(tx, &vault_id, ActorType::Agent, &agent.id, role)?,
                    None => {
                        vaults::revoke(tx, &vault_id, ActorType::Agent, &agent.id)?;
                    }
                }
                Ok(Ok(()))
            })
        })
        .await?
}

pub async fn vault_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((vault, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    change_membership(&state, &caller, &vault, &name, None).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "name": name, "removed": true }),
    ))
}

pub async fn vault_set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((vault, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let role: VaultRole = body.role.parse().map_err(ApiError::invalid)?;
    change_membership(&state, &caller, &vault, &name, Some(role)).await?;
    Ok(axum::Json(
        json!({ "vault": vault, "name": name, "role": role }),
    ))
}
