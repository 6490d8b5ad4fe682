//! User invites: create (with vault pre-assignments), list, revoke by token suffix, and the
//! public redemption that creates an active account.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::access::assignable_vaults;
use super::accounts::{
    hash_password_async, validate_email, validate_password, verify_password_async,
};
use super::auth::Caller;
use super::suffix::SuffixQuery;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::crypto::{SecretString, hash_token};
use crate::store::invites::{self, Invite, InviteStatus};
use crate::store::vaults::{self, ActorType};
use crate::store::{InstanceRole, VaultRole, sessions, settings, users, verifications};

#[derive(Deserialize)]
pub struct VaultAssignment {
    vault: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
pub struct CreateBody {
    email: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    vaults: Vec<VaultAssignment>,
}

fn describe(invite: &Invite, created_by: Option<&str>) -> serde_json::Value {
    json!({
        "email": invite.email,
        "role": invite.role,
        "status": invite.status.as_str(),
        "token_suffix": invite.token_suffix,
        "vaults": invite.vaults.iter().map(|(_, name, role)| json!({ "vault": name, "role": role })).collect::<Vec<_>>(),
        "created_by": created_by,
        "created_at": rfc3339(invite.created_at),
        "expires_at": rfc3339(invite.expires_at),
    })
}

/// `POST /v1/users/invites`: any user may invite; only owners may invite owners, and only a
/// vault's admins (or an owner) may pre-assign it.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let inviter = caller.user()?.clone();
    let owner = caller.is_owner();
    let email = users::normalize_email(&body.email);
    validate_email(&email).map_err(ApiError::invalid)?;
    let role: InstanceRole = body
        .role
        .as_deref()
        .unwrap_or("member")
        .parse()
        .map_err(ApiError::invalid)?;
    if role == InstanceRole::Owner && !owner {
        return Err(ApiError::forbidden(
            "only an instance owner can invite another owner",
        ));
    }
    let mut assignments = Vec::new();
    for a in &body.vaults {
        let vault_role = match a.role.as_deref().unwrap_or("member").parse() {
            Ok(VaultRole::Proxy) | Err(_) => {
                return Err(ApiError::invalid(format!(
                    "vault role for \"{}\" must be admin or member",
                    a.vault
                )));
            }
            Ok(role) => role,
        };
        assignments.push((a.vault.clone(), vault_role));
    }

    let base = state.config.base_url.clone();
    let inviter_email = inviter.email.clone();
    let made = state
        .db(move |store, _| {
            store.write(|tx| {
                let domains = settings::allowed_domains(tx)?;
                let domain = email.rsplit('@').next().unwrap_or_default();
                if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
                    return Ok(Err(ApiError::forbidden(format!(
                        "this instance only accepts addresses at {}; change it with `agent-vault owner config set --allowed-domains`",
                        domains.join(", ")
                    ))));
                }
                if users::by_email(tx, &email)?.is_some_and(|u| u.active) {
                    return Ok(Err(ApiError::conflict(format!(
                        "{email} already has an account; add them to a vault with `agent-vault vault user add {email}`"
                    ))));
                }
                if let Some(pending) = invites::pending_for_email(tx, &email)? {
                    return Ok(Err(ApiError::conflict(format!(
                        "an invite for {email} is already pending (…{}); revoke it first with `agent-vault user invite revoke {}`",
                        pending.token_suffix, pending.token_suffix
                    ))));
                }
                let vault_ids = match assignable_vaults(tx, &caller, &assignments)? {
                    Ok(ids) => ids,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let (invite, token) = invites::create(tx, &email, role, &vault_ids, &inviter.id)?;
                Ok(Ok((invite, token)))
            })
        })
        .await??;
    let (invite, token) = made;
    let mut body = describe(&invite, Some(&inviter_email));
    let link = format!("{base}/invite/{}", token.raw.expose());
    let emailed = super::email::send_invite(
        &state,
        &invite.email,
        &crate::mail::message::Invite {
            link: &link,
            inviter: &inviter_email,
            role: invite.role.as_str(),
            vaults: invite
                .vaults
                .iter()
                .map(|(_, name, role)| (name.clone(), role.to_string()))
                .collect(),
            expires_at: &rfc3339(invite.expires_at),
            base_url: &base,
        },
    );
    body["invite_link"] = json!(link);
    body["email_sent"] = json!(emailed);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

/// `GET /v1/users/invites[?status=]`: owners see all invites, others their own.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.user()?.clone();
    let owner = caller.is_owner();
    if let Some(status) = &query.status
        && !["pending", "accepted", "revoked", "expired"].contains(&status.as_str())
    {
        return Err(ApiError::invalid(format!(
            "unknown status \"{status}\" (expected pending, accepted, revoked or expired)"
        )));
    }
    let rows = state
        .db(move |store, _| {
            store.read(|conn| {
                let mut out = Vec::new();
                for invite in invites::list(conn)? {
                    if !owner && invite.created_by.as_deref() != Some(me.id.as_str()) {
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
        .await?;
    let invites: Vec<_> = rows
        .iter()
        .filter(|(i, _)| {
            query
                .status
                .as_deref()
                .is_none_or(|s| s == i.status.as_str())
        })
        .map(|(i, by)| describe(i, by.as_deref()))
        .collect();
    Ok(axum::Json(json!({ "invites": invites })))
}

/// `DELETE /v1/users/invites/{suffix}`: revoke a pending invite named by the end of its
/// token (8 characters or more) or by the whole token.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(given): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    const LIST: &str = "agent-vault user invite list";
    let me = caller.user()?.clone();
    let owner = caller.is_owner();
    let query = SuffixQuery::parse(&given, "av_uinv_", LIST)?;
    let email = state
        .db(move |store, _| {
            store.write(|tx| {
                let candidates: Vec<Invite> = match &query.full_hash {
                    Some(hash) => invites::by_token_hash(tx, hash)?.into_iter().collect(),
                    None => invites::list(tx)?
                        .into_iter()
                        .filter(|i| query.matches(&i.token_suffix))
                        .collect(),
                };
                let candidates = candidates
                    .into_iter()
                    .filter(|i| i.status == InviteStatus::Pending)
                    .filter(|i| owner || i.created_by.as_deref() == Some(me.id.as_str()))
                    .collect();
                let one = match query.pick(candidates, |i| i.email.as_str(), LIST) {
                    Ok(one) => one,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                invites::finish(tx, &one.id, false)?;
                Ok(Ok(one.email))
            })
        })
        .await??;
    Ok(axum::Json(json!({ "revoked": true, "email": email })))
}

/// `GET /v1/invites/{token}` (public): what accepting this invite would do.
pub async fn details(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hash = hash_token(&token);
    let (invite, account) = state
        .db(move |store, _| {
            store.read(|conn| {
                let invite = invites::by_token_hash(conn, &hash)?;
                let account = match &invite {
                    Some(i) => users::by_email(conn, &i.email)?.is_some_and(|u| u.active),
                    None => false,
                };
                Ok((invite, account))
            })
        })
        .await?;
    let invite = invite.ok_or_else(|| ApiError::not_found("this invite link is not valid"))?;
    let mut body = describe(&invite, None);
    body["account_exists"] = json!(account);
    Ok(axum::Json(body))
}

#[derive(Deserialize)]
pub struct AcceptBody {
    password: SecretString,
}

/// `POST /v1/invites/{token}/accept` (public): creates (or, proving its password, joins) the
/// account with the invite's role and vault grants, and logs it in.
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<impl IntoResponse, ApiError> {
    let accepted = accept_invite(&state, &token, body.password).await?;
    Ok(axum::Json(json!({
        "email": accepted.email,
        "token": accepted.token.expose(),
        "expires_at": accepted.expires_at.map(rfc3339),
        "message": "Invite accepted.",
    })))
}

pub struct Accepted {
    pub email: String,
    pub token: SecretString,
    pub expires_at: Option<i64>,
}

/// Redeems an invite: shared by the JSON API and the browser page.
pub async fn accept_invite(
    state: &AppState,
    token: &str,
    password: SecretString,
) -> Result<Accepted, ApiError> {
    let hash = hash_token(token);
    let lookup = hash.clone();
    let (invite, existing) = state
        .db(move |store, _| {
            store.read(|conn| {
                let invite = invites::by_token_hash(conn, &lookup)?;
                let user = match &invite {
                    Some(i) => users::by_email(conn, &i.email)?,
                    None => None,
                };
                Ok((invite, user))
            })
        })
        .await?;
    let invite = invite.ok_or_else(|| ApiError::not_found("this invite link is not valid"))?;
    if invite.status != InviteStatus::Pending {
        return Err(ApiError::new(
            StatusCode::GONE,
            "invite_used",
            format!(
                "this invite is {}; ask for a new one",
                invite.status.as_str()
            ),
        ));
    }
    // An existing active account joins only by proving its password; otherwise the invite
    // sets the password of a new (or never verified) account.
    let new_hash = match &existing {
        Some(user) if user.active => {
            let hashes = user.password_hash.clone().into_iter().collect();
            if !verify_password_async(password, hashes).await {
                return Err(ApiError::unauthorized(format!(
                    "{} already has an account; give its current password to accept the invite",
                    invite.email
                )));
            }
            None
        }
        _ => {
            validate_password(password.expose()).map_err(ApiError::invalid)?;
            Some(hash_password_async(password).await?)
        }
    };
    let invite_id = invite.id.clone();
    let (email, token, expires_at) = state
        .db(move |store, _| {
            store.write(|tx| {
                if !invites::finish(tx, &invite_id, true)? {
                    return Ok(Err(ApiError::new(
                        StatusCode::GONE,
                        "invite_used",
                        "this invite was used or revoked a moment ago",
                    )));
                }
                let user = match (users::by_email(tx, &invite.email)?, &new_hash) {
                    (Some(user), None) => user,
                    (Some(user), Some(hash)) => {
                        users::activate(tx, &user.id, hash)?;
                        users::set_role(tx, &user.id, invite.role)?;
                        verifications::void_all(tx, &user.id)?;
                        user
                    }
                    (None, hash) => {
                        users::insert(tx, &invite.email, invite.role, true, hash.as_deref())?
                    }
                };
                for (vault_id, _, role) in &invite.vaults {
                    vaults::grant(tx, vault_id, ActorType::User, &user.id, *role)?;
                }
                let (token, session) = sessions::create_for_user(tx, &user.id)?;
                Ok(Ok((user.email, token.raw, session.expires_at)))
            })
        })
        .await??;
    Ok(Accepted {
        email,
        token,
        expires_at,
    })
}
