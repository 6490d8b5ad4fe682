//! Invites, both kinds: a user invite (an email, with vault pre-assignments) accepted in a
//! browser or with `auth accept-invite`, and an agent invite (a name) an agent redeems over
//! plain HTTP for its token. Listing and revoking work the same for both.
//!
//! Stance: any user may invite; only owners may hand out the owner role, and only a vault's
//! admins (or an owner) may give access to that vault. Tokens are shown once, at creation;
//! only their hash is stored. Redemption is single-use inside one write transaction.

use super::access::{assignable_vaults, validate_slug};
use super::accounts::{
    NewLogin, SessionUse, hash_password_async, validate_email, validate_password,
    verify_password_async,
};
use super::caller::Caller;
use super::suffix::SuffixQuery;
use super::{AppState, OpError};
use crate::crypto::{NewToken, SecretString, TokenKind, hash_token, mint_token, random_bytes};
use crate::store::agents::{self, Agent};
use crate::store::invites::{self, INVITE_TTL, Invite, InviteKind, InviteStatus, NewInvite};
use crate::store::sessions::{self, Session, SessionKind};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{InstanceRole, VaultRole, now, settings, users};

const DEFAULT_AGENT_INVITE_TTL: i64 = 15 * 60;
const MAX_AGENT_INVITE_TTL: i64 = 7 * 24 * 3600;

fn list_command(kind: InviteKind) -> &'static str {
    match kind {
        InviteKind::User => "agent-vault user invite list",
        InviteKind::Agent => "agent-vault agent invite list",
    }
}

/// The lifetime of an agent invite: 15 minutes unless asked, at most a week.
pub fn agent_invite_ttl(requested: Option<i64>) -> Result<i64, OpError> {
    match requested {
        None | Some(0) => Ok(DEFAULT_AGENT_INVITE_TTL),
        Some(secs) if (60..=MAX_AGENT_INVITE_TTL).contains(&secs) => Ok(secs),
        Some(secs) => Err(OpError::invalid(format!(
            "invite lifetime {secs} s is out of range; use 1 minute to 7 days (e.g. 15m, 2h)"
        ))),
    }
}

/// An instance role from a request (`member` when absent).
pub fn parse_instance_role(role: Option<&str>) -> Result<InstanceRole, OpError> {
    role.unwrap_or("member").parse().map_err(OpError::invalid)
}

/// What a user invite asks for.
pub struct UserInviteRequest {
    pub email: String,
    pub role: Option<String>,
    /// (vault name, role; `member` when absent).
    pub vaults: Vec<(String, Option<String>)>,
}

/// A user invite just made: shown once with its link.
pub struct CreatedInvite {
    pub invite: Invite,
    pub token: NewToken,
    pub inviter_email: Option<String>,
    /// Whether the link is on its way by email (user invites, with email on).
    pub emailed: bool,
}

impl CreatedInvite {
    /// The link a person opens (user invites) or an agent redeems (agent invites).
    pub fn link(&self, base_url: &str) -> String {
        let token = self.token.raw.expose();
        match self.invite.kind {
            InviteKind::User => format!("{base_url}/invite/{token}"),
            InviteKind::Agent => format!("{base_url}/v1/agent-invites/{token}/redeem"),
        }
    }
}

/// Pending user invites one person other than an owner may have at once.
pub const MAX_PENDING_USER_INVITES: i64 = 20;
/// Nor more than this many a day: revoking one and inviting again emails again, and a red
/// team sent thirty invite mails in seconds that way while never holding more than one.
pub const MAX_USER_INVITES_PER_DAY: i64 = 50;

/// Invites a person: only owners may invite owners, and only a vault's admins (or an owner)
/// may pre-assign it.
pub async fn invite_user(
    state: &AppState,
    caller: &Caller,
    request: UserInviteRequest,
) -> Result<CreatedInvite, OpError> {
    let inviter = caller.user()?.clone();
    let owner = caller.is_owner();
    let email = users::normalize_email(&request.email);
    validate_email(&email).map_err(OpError::invalid)?;
    let role = parse_instance_role(request.role.as_deref())?;
    if role == InstanceRole::Owner && !owner {
        return Err(OpError::forbidden(
            "only an instance owner can invite another owner",
        ));
    }
    let mut assignments = Vec::new();
    for (vault, role) in &request.vaults {
        let vault_role = match role.as_deref().unwrap_or("member").parse() {
            Ok(VaultRole::Proxy) | Err(_) => {
                return Err(OpError::invalid(format!(
                    "vault role for \"{vault}\" must be admin or member"
                )));
            }
            Ok(role) => role,
        };
        assignments.push((vault.clone(), vault_role));
    }
    let caller = caller.clone();
    let inviter_email = inviter.email.clone();
    let (invite, token) = state
        .db(move |store, _| {
            store.write(|tx| {
                let domains = settings::allowed_domains(tx)?;
                let domain = email.rsplit('@').next().unwrap_or_default();
                if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
                    return Ok(Err(OpError::forbidden(format!(
                        "this instance only accepts addresses at {}; change it with `agent-vault owner config set --allowed-domains`",
                        domains.join(", ")
                    ))));
                }
                if users::by_email(tx, &email)?.is_some_and(|u| u.active) {
                    return Ok(Err(OpError::conflict(format!(
                        "{email} already has an account; add them to a vault with `agent-vault vault user add {email}`"
                    ))));
                }
                // Each invite emails a stranger in the server's name: without a bound, any
                // account could make the server send mail to thousands of addresses.
                if !owner
                    && invites::pending_count_by(tx, InviteKind::User, &inviter.id)?
                        >= MAX_PENDING_USER_INVITES
                {
                    return Ok(Err(OpError::new(
                        http::StatusCode::TOO_MANY_REQUESTS,
                        "too_many_pending",
                        format!(
                            "you already have {MAX_PENDING_USER_INVITES} pending user invites; wait until some are accepted, or revoke some (`agent-vault user invite list`, `agent-vault user invite revoke`)"
                        ),
                    )));
                }
                if !owner
                    && invites::created_count_since(tx, InviteKind::User, &inviter.id, now() - 86_400)?
                        >= MAX_USER_INVITES_PER_DAY
                {
                    return Ok(Err(OpError::new(
                        http::StatusCode::TOO_MANY_REQUESTS,
                        "too_many_invites",
                        format!(
                            "you have made {MAX_USER_INVITES_PER_DAY} user invites in the last 24 hours, each one an email; try again tomorrow, or ask an owner to invite"
                        ),
                    )));
                }
                if let Some(pending) = invites::pending_for(tx, InviteKind::User, &email)? {
                    return Ok(Err(OpError::conflict(format!(
                        "an invite for {email} is already pending (…{}); revoke it first with `agent-vault user invite revoke {}`",
                        pending.token_suffix, pending.token_suffix
                    ))));
                }
                let vault_ids = match assignable_vaults(tx, &caller, &assignments, false)? {
                    Ok(ids) => ids,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let made = invites::create(
                    tx,
                    &NewInvite {
                        kind: InviteKind::User,
                        subject: &email,
                        agent_id: None,
                        role,
                        vaults: &vault_ids,
                        created_by: &inviter.id,
                        ttl_secs: INVITE_TTL,
                    },
                )?;
                Ok(Ok(made))
            })
        })
        .await??;
    let mut created = CreatedInvite {
        invite,
        token,
        inviter_email: Some(inviter_email),
        emailed: false,
    };
    let base = &state.config.base_url;
    let link = created.link(base);
    let invite = &created.invite;
    created.emailed = super::email::send_invite(
        state,
        &invite.subject,
        &crate::mail::message::Invite {
            link: &link,
            inviter: created.inviter_email.as_deref().unwrap_or_default(),
            role: invite.role.as_str(),
            vaults: invite
                .vaults
                .iter()
                .map(|(_, name, role)| (name.clone(), role.to_string()))
                .collect(),
            expires_at: &super::rfc3339(invite.expires_at),
            base_url: base,
        },
    );
    Ok(created)
}

/// The text a person pastes to their agent: how to redeem an agent invite over plain HTTP.
/// `vaults` are (vault, role) pairs; the CLI and the web UI show the same text.
pub fn onboarding_prompt(
    agent_name: &str,
    rotation: bool,
    expires_at: &str,
    vaults: &[(String, String)],
    url: &str,
) -> String {
    let what = if rotation {
        format!("a new token for the agent \"{agent_name}\"")
    } else {
        format!("access to Agent Vault as the agent \"{agent_name}\"")
    };
    let vaults = if vaults.is_empty() {
        "(none)".to_owned()
    } else {
        vaults
            .iter()
            .map(|(vault, role)| format!("{vault} ({role})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "You are being given {what}. Agent Vault is a credential broker: you never see API keys; \
you send HTTPS requests through its proxy and it adds the credentials.\n\
\n\
1. Redeem this single-use invite (it expires at {expires_at}) with one HTTP request:\n\
   curl -sS -X POST {url}\n\
   The JSON reply holds your agent token (`agent_token`, shown only once: keep it secret, \
never print or log it) and your vaults ({vaults}).\n\
2. Fetch the proxy's CA certificate from the `proxy.ca_url` of the reply and trust it.\n\
3. Send HTTPS through the proxy: HTTPS_PROXY=http://<agent_token>:<vault>@<host>:<port> \
(the exact form is `proxy.https_proxy` in the reply).\n\
4. To see which services and credential names you can use: GET <address>/v1/discover?vault=<vault> \
with `Authorization: Bearer <agent_token>`. To ask for a new service, file a proposal \
(POST <address>/v1/proposals).\n",
    )
}

/// What an agent invite asks for.
pub struct AgentInviteRequest {
    pub name: String,
    pub role: Option<String>,
    /// (vault name, role; `proxy` when absent).
    pub vaults: Vec<(String, Option<String>)>,
    pub ttl_seconds: Option<i64>,
}

/// Invites an agent: any user may; only owners may make it an owner, and only a vault's
/// admins (or an owner) may give it access to that vault.
pub async fn invite_agent(
    state: &AppState,
    caller: &Caller,
    request: AgentInviteRequest,
) -> Result<CreatedInvite, OpError> {
    let user = caller.user()?.clone();
    validate_slug("agent", &request.name)?;
    let role = parse_instance_role(request.role.as_deref())?;
    if role == InstanceRole::Owner && !caller.is_owner() {
        return Err(OpError::forbidden(
            "only an instance owner can invite an owner agent",
        ));
    }
    let ttl = agent_invite_ttl(request.ttl_seconds)?;
    let wanted = request
        .vaults
        .iter()
        .map(|(vault, role)| {
            let role: VaultRole = role
                .as_deref()
                .unwrap_or("proxy")
                .parse()
                .map_err(OpError::invalid)?;
            Ok((vault.clone(), role))
        })
        .collect::<Result<Vec<_>, OpError>>()?;
    let name = request.name;
    let caller = caller.clone();
    let (invite, token) = state
        .db(move |store, _| {
            store.write(|tx| {
                if agents::by_name(tx, &name)?.is_some() {
                    return Ok(Err(OpError::conflict(format!(
                        "an agent named \"{name}\" already exists; rotate its token with `agent-vault agent rotate {name}`"
                    ))));
                }
                if let Some(pending) = invites::pending_for(tx, InviteKind::Agent, &name)? {
                    return Ok(Err(OpError::conflict(format!(
                        "an invite for agent \"{name}\" is already pending (…{}); revoke it with `agent-vault agent invite revoke {}`",
                        pending.token_suffix, pending.token_suffix
                    ))));
                }
                let vault_ids = match assignable_vaults(tx, &caller, &wanted, true)? {
                    Ok(ids) => ids,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let made = invites::create(
                    tx,
                    &NewInvite {
                        kind: InviteKind::Agent,
                        subject: &name,
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
    Ok(CreatedInvite {
        invite,
        token,
        inviter_email: None,
        emailed: false,
    })
}

/// A rotation invite for an agent the caller manages; the agent's old sessions end when it
/// is redeemed.
pub async fn rotation_invite(
    state: &AppState,
    caller: &Caller,
    agent: Agent,
    ttl_seconds: Option<i64>,
) -> Result<CreatedInvite, OpError> {
    let user = caller.user()?.clone();
    let ttl = agent_invite_ttl(ttl_seconds)?;
    let (invite, token) = state
        .db(move |store, _| {
            store.write(|tx| {
                // Rights as they stand in this write, not as the request found them.
                let Some(user) = users::by_id(tx, &user.id)?.filter(|u| u.active) else {
                    return Ok(Err(OpError::forbidden("this account was removed")));
                };
                if let Err(refused) = super::agents::may_take_over(tx, &user, &agent)? {
                    return Ok(Err(OpError::forbidden(refused)));
                }
                let created = invites::create(
                    tx,
                    &NewInvite {
                        kind: InviteKind::Agent,
                        subject: &agent.name,
                        agent_id: Some(&agent.id),
                        role: agent.role,
                        vaults: &[],
                        created_by: &user.id,
                        ttl_secs: ttl,
                    },
                )?;
                Ok(Ok(created))
            })
        })
        .await??;
    Ok(CreatedInvite {
        invite,
        token,
        inviter_email: None,
        emailed: false,
    })
}

/// Invites of a kind the caller may see (owners all, others their own), optionally of one
/// status, each with its creator's email.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    kind: InviteKind,
    status: Option<&str>,
) -> Result<Vec<(Invite, Option<String>)>, OpError> {
    let me = caller.user()?.id.clone();
    let owner = caller.is_owner();
    let used = kind.used_status();
    if let Some(status) = status
        && !["pending", used, "revoked", "expired"].contains(&status)
    {
        return Err(OpError::invalid(format!(
            "unknown status \"{status}\" (expected pending, {used}, revoked or expired)"
        )));
    }
    let status = status.map(str::to_owned);
    state
        .db(move |store, _| {
            store.read(|conn| {
                let mut out = Vec::new();
                for invite in invites::list(conn, kind)? {
                    if !owner && invite.created_by.as_deref() != Some(me.as_str()) {
                        continue;
                    }
                    if status.as_deref().is_some_and(|s| s != invite.status_str()) {
                        continue;
                    }
                    let by = match &invite.created_by {
                        Some(id) => users::by_id(conn, id)?.map(|u| u.email),
                        None => None,
                    };
                    out.push((invite, by));
                }
                Ok(out)
            })
        })
        .await
}

/// Revokes a pending invite named by the end of its token (8 characters or more) or by the
/// whole token; returns its email or agent name.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    kind: InviteKind,
    given: &str,
) -> Result<String, OpError> {
    let me = caller.user()?.id.clone();
    let owner = caller.is_owner();
    let list = list_command(kind);
    let query = SuffixQuery::parse(given, kind.token_prefix(), list)?;
    state
        .db(move |store, _| {
            store.write(|tx| {
                let candidates: Vec<Invite> = match &query.full_hash {
                    Some(hash) => invites::by_token_hash(tx, kind, hash)?
                        .into_iter()
                        .collect(),
                    None => invites::list(tx, kind)?
                        .into_iter()
                        .filter(|i| query.matches(&i.token_suffix))
                        .collect(),
                };
                let candidates = candidates
                    .into_iter()
                    .filter(|i| i.status == InviteStatus::Pending)
                    .filter(|i| owner || i.created_by.as_deref() == Some(me.as_str()))
                    .collect();
                let one = match query.pick(candidates, |i| i.subject.as_str(), list) {
                    Ok(one) => one,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                invites::finish(tx, kind, &one.id, false)?;
                Ok(Ok(one.subject))
            })
        })
        .await?
}

/// A user invite by its raw token, and whether its email already has an active account.
pub async fn user_invite(state: &AppState, token: &str) -> Result<(Invite, bool), OpError> {
    let hash = hash_token(token);
    let (invite, account) = state
        .db(move |store, _| {
            store.read(|conn| {
                let invite = invites::by_token_hash(conn, InviteKind::User, &hash)?;
                let account = match &invite {
                    Some(i) => users::by_email(conn, &i.subject)?.is_some_and(|u| u.active),
                    None => false,
                };
                Ok((invite, account))
            })
        })
        .await?;
    let invite = invite.ok_or_else(|| OpError::not_found("this invite link is not valid"))?;
    Ok((invite, account))
}

fn used(invite: &Invite, what: &str) -> OpError {
    OpError::gone(
        "invite_used",
        format!("this {what} is {}; ask for a new one", invite.status_str()),
    )
}

/// Redeems a user invite: creates (or, proving its password, joins) the account with the
/// invite's role and vault grants, and logs it in.
pub async fn accept_user_invite(
    state: &AppState,
    token: &str,
    password: SecretString,
    used_by: SessionUse,
) -> Result<NewLogin, OpError> {
    let (invite, _) = user_invite(state, token).await?;
    if invite.status != InviteStatus::Pending {
        return Err(used(&invite, "invite"));
    }
    let email = invite.subject.clone();
    let existing = state
        .db(move |store, _| store.read(|conn| users::by_email(conn, &email)))
        .await?;
    // An existing active account joins only by proving its password; otherwise the invite
    // sets the password of a new account.
    let new_hash = match &existing {
        Some(user) if user.active => {
            let hashes = user.password_hash.clone().into_iter().collect();
            if !verify_password_async(password, hashes).await? {
                return Err(OpError::unauthorized(format!(
                    "{} already has an account; give its current password to accept the invite",
                    invite.subject
                )));
            }
            None
        }
        _ => {
            validate_password(password.expose()).map_err(OpError::invalid)?;
            Some(hash_password_async(password).await?)
        }
    };
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refusal) = creator_may_still_give(tx, &invite)? {
                    return Ok(Err(refusal));
                }
                // A registration not yet verified is a claim to the address that only its
                // emailed code can prove; an invite link proves nothing (its creator sees it
                // too), so it never takes that account over, whatever became of the codes
                // (wrong guesses void them).
                let user = match (users::by_email(tx, &invite.subject)?, &new_hash) {
                    (Some(user), None) if user.active => Some(user),
                    (None, Some(_)) => None,
                    (Some(user), _) if !user.active => {
                        return Ok(Err(OpError::conflict(format!(
                            "{0} has registered but not verified the address yet; verify with the code sent to it (`agent-vault auth verify --email {0} --code <code>`; register again for a new code), then accept this invite with that password",
                            invite.subject
                        ))));
                    }
                    _ => {
                        return Ok(Err(OpError::conflict(format!(
                            "the account of {} changed while this invite was being accepted; accept it again",
                            invite.subject
                        ))));
                    }
                };
                if !invites::finish(tx, InviteKind::User, &invite.id, true)? {
                    return Ok(Err(OpError::gone(
                        "invite_used",
                        "this invite was used or revoked a moment ago",
                    )));
                }
                let user = match user {
                    Some(user) => user,
                    None => {
                        let hash = new_hash.as_deref();
                        let user = users::insert(tx, &invite.subject, invite.role, true, hash)?;
                        // Whoever held the link chose the password, not necessarily the
                        // address's owner (the inviter sees the link too).
                        users::set_email_proven(tx, &user.id, false)?;
                        user
                    }
                };
                // An invite only adds: a role the account already holds at or above the
                // invite's stays (a lower one would demote, perhaps a vault's only admin).
                for (vault_id, _, role) in &invite.vaults {
                    let held = vaults::role_of(tx, vault_id, ActorType::User, &user.id)?;
                    if held.is_none_or(|held| held < *role) {
                        vaults::grant(tx, vault_id, ActorType::User, &user.id, *role)?;
                    }
                }
                let (token, session) = match used_by {
                    SessionUse::Cli => sessions::create_for_user(tx, &user.id)?,
                    SessionUse::Browser => sessions::create_browser_session(tx, &user.id)?,
                };
                Ok(Ok(NewLogin {
                    email: user.email,
                    token: token.raw,
                    expires_at: session.expires_at,
                }))
            })
        })
        .await?
}

/// Whether the invite's creator may still give what it gives: rights are checked when an
/// invite is made and again when it is used, so one made by a person since removed, demoted
/// from owner, or no longer admin of a vault it assigns hands out nothing.
fn creator_may_still_give(
    conn: &crate::store::Connection,
    invite: &Invite,
) -> crate::store::Result<Result<(), OpError>> {
    let Some(creator) = invite.created_by.as_deref() else {
        return Ok(Ok(()));
    };
    let stale = |what: String| {
        Err(OpError::gone(
            "invite_stale",
            format!("this invite can no longer be used: {what}; ask for a new one"),
        ))
    };
    let Some(user) = users::by_id(conn, creator)?.filter(|u| u.active) else {
        return Ok(stale("the person who made it was removed".into()));
    };
    let owner = user.role == InstanceRole::Owner;
    if invite.role == InstanceRole::Owner && !owner {
        return Ok(stale(format!(
            "it gives owner rights and {} is not an owner",
            user.email
        )));
    }
    for (vault_id, name, role) in &invite.vaults {
        let held = vaults::role_of(conn, vault_id, ActorType::User, &user.id)?;
        if !(owner || held == Some(VaultRole::Admin)) {
            return Ok(stale(format!(
                "{} can no longer give access to vault \"{name}\"",
                user.email
            )));
        }
        // An agent invite's token goes to whoever made it (see `assignable_vaults`).
        if invite.kind == InviteKind::Agent
            && let Err(refused) = super::access::owner_gives_itself(name, held, *role)
        {
            return Ok(stale(refused));
        }
    }
    Ok(Ok(()))
}

/// For a rotation invite, whether its creator may still take the agent over (see
/// [`super::agents::may_take_over`]): rights may have been lost since it was made.
fn rotator_may_still_take_over(
    conn: &crate::store::Connection,
    invite: &Invite,
) -> crate::store::Result<Result<(), OpError>> {
    let (Some(agent_id), Some(creator)) = (&invite.agent_id, &invite.created_by) else {
        return Ok(Ok(()));
    };
    // A creator since removed is refused by `creator_may_still_give`, a deleted agent later.
    let (Some(agent), Some(rotator)) =
        (agents::by_id(conn, agent_id)?, users::by_id(conn, creator)?)
    else {
        return Ok(Ok(()));
    };
    Ok(
        super::agents::may_take_over(conn, &rotator, &agent)?.map_err(|refused| {
            OpError::gone(
                "invite_stale",
                format!("this invite can no longer be used: {refused}"),
            )
        }),
    )
}

/// An agent invite by its raw token.
pub async fn agent_invite(state: &AppState, token: &str) -> Result<Invite, OpError> {
    let hash = hash_token(token);
    state
        .db(move |store, _| {
            store.read(|conn| invites::by_token_hash(conn, InviteKind::Agent, &hash))
        })
        .await?
        .ok_or_else(|| OpError::not_found("this agent invite is not valid"))
}

/// A redeemed agent invite: the agent, its new token (shown once) and its vaults.
pub struct Redeemed {
    pub agent: Agent,
    pub token: NewToken,
    pub grants: Vec<(Vault, VaultRole)>,
}

/// Redeems an agent invite (the invite token is the credential): creates the agent (or, for
/// a rotation, ends its old sessions) and mints its token.
pub async fn redeem_agent_invite(state: &AppState, token: &str) -> Result<Redeemed, OpError> {
    let hash = hash_token(token);
    state
        .db(move |store, _| {
            store.write(|tx| {
                let Some(invite) = invites::by_token_hash(tx, InviteKind::Agent, &hash)? else {
                    return Ok(Err(OpError::not_found("this agent invite is not valid")));
                };
                if invite.status != InviteStatus::Pending {
                    return Ok(Err(used(&invite, "agent invite")));
                }
                if let Err(refusal) = creator_may_still_give(tx, &invite)? {
                    return Ok(Err(refusal));
                }
                if let Err(refusal) = rotator_may_still_take_over(tx, &invite)? {
                    return Ok(Err(refusal));
                }
                if !invites::finish(tx, InviteKind::Agent, &invite.id, true)? {
                    return Ok(Err(used(&invite, "agent invite")));
                }
                let agent = match &invite.agent_id {
                    Some(id) => {
                        let Some(agent) = agents::by_id(tx, id)? else {
                            return Ok(Err(OpError::not_found(
                                "the agent of this rotation invite was deleted",
                            )));
                        };
                        agents::end_sessions(tx, &agent.id)?;
                        if let Some(rotator) = &invite.created_by
                            && agent.created_by.as_ref() != Some(rotator)
                        {
                            agents::set_created_by(tx, &agent.id, rotator)?;
                        }
                        agent
                    }
                    None => {
                        if agents::by_name(tx, &invite.subject)?.is_some() {
                            return Ok(Err(OpError::conflict(format!(
                                "an agent named \"{}\" already exists",
                                invite.subject
                            ))));
                        }
                        let agent = agents::insert(
                            tx,
                            &invite.subject,
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
                Ok(Ok(Redeemed {
                    agent,
                    token,
                    grants,
                }))
            })
        })
        .await?
}
