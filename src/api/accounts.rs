//! Registration, verification, login and the caller's own account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::crypto::{
    KdfParams, SecretString, hash_password, verify_password, waste_password_check,
};
use crate::store::vaults::{self, ActorType};
use crate::store::{
    DEFAULT_VAULT, InstanceRole, StoreError, VaultRole, sessions, settings, users, verifications,
};
use verifications::NewCode;

pub const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 1024;

/// Checks an email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn validate_email(email: &str) -> Result<(), String> {
    let email = email.trim();
    if email.is_empty() {
        return Err("email is empty; pass an address such as --email you@example.com".into());
    }
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.'));
    if valid {
        Ok(())
    } else {
        Err(format!("\"{email}\" is not a valid email address"))
    }
}

/// Checks a new password's length (the only rule: long passphrases beat composition rules).
pub fn validate_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        Err(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        ))
    } else if password.len() > MAX_PASSWORD_LEN {
        Err(format!("password must be at most {MAX_PASSWORD_LEN} bytes"))
    } else {
        Ok(())
    }
}

/// Hashes on a blocking thread: Argon2id takes a noticeable fraction of a second.
pub(super) async fn hash_password_async(password: SecretString) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        hash_password(password.expose(), KdfParams::for_new_secrets())
    })
    .await
    .map_err(|_| ApiError::internal("password hashing failed"))?
    .map_err(|_| ApiError::internal("password hashing failed"))
}

pub(super) async fn verify_password_async(password: SecretString, hashes: Vec<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        if hashes.is_empty() {
            waste_password_check(password.expose());
            return false;
        }
        hashes.iter().any(|h| verify_password(password.expose(), h))
    })
    .await
    .unwrap_or(false)
}

fn session_body(token: &SecretString, expires_at: Option<i64>) -> serde_json::Value {
    json!({ "token": token.expose(), "expires_at": expires_at.map(rfc3339) })
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: SecretString,
}

enum Registered {
    Owner {
        email: String,
        token: SecretString,
        expires_at: Option<i64>,
    },
    /// A later account waits for its code; `code` is `None` when no new code was made (an
    /// active address, or too many live codes).
    Pending { code: Option<NewCode> },
}

/// Checks instance settings that restrict self-registration.
fn registration_allowed(conn: &rusqlite::Connection, email: &str) -> Result<(), ApiError> {
    if settings::invite_only(conn)? {
        return Err(ApiError::forbidden(
            "this instance is invite-only; ask an existing user for an invite",
        ));
    }
    let domains = settings::allowed_domains(conn)?;
    let domain = email.rsplit('@').next().unwrap_or_default();
    if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
        return Err(ApiError::forbidden(format!(
            "sign-ups are restricted to addresses at {}; ask the owner to add your domain",
            domains.join(", ")
        )));
    }
    Ok(())
}

/// `POST /v1/auth/register`: the first account becomes the owner; later ones wait for a code.
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let email = users::normalize_email(&body.email);
    validate_email(&email).map_err(ApiError::invalid)?;
    validate_password(body.password.expose()).map_err(ApiError::invalid)?;
    let hash = hash_password_async(body.password.clone()).await?;

    let delivery = super::email::initial_delivery(&state);
    let outcome = {
        let email = email.clone();
        state
            .db(move |store, dek| {
                store.write(|tx| {
                    if users::count(tx)? == 0 {
                        let user =
                            users::insert(tx, &email, InstanceRole::Owner, true, Some(&hash))?;
                        let default = vaults::by_name(tx, DEFAULT_VAULT)?.ok_or_else(|| {
                            StoreError::Corrupt("the default vault is missing".into())
                        })?;
                        vaults::grant(
                            tx,
                            &default.id,
                            ActorType::User,
                            &user.id,
                            VaultRole::Admin,
                        )?;
                        let (token, session) = sessions::create_for_user(tx, &user.id)?;
                        return Ok(Ok(Registered::Owner {
                            email: user.email,
                            token: token.raw,
                            expires_at: session.expires_at,
                        }));
                    }
                    if let Err(refused) = registration_allowed(tx, &email) {
                        return Ok(Err(refused));
                    }
                    let user = match users::by_email(tx, &email)? {
                        // Same answer as a new account: registration never reveals who exists.
                        Some(user) if user.active => {
                            return Ok(Ok(Registered::Pending { code: None }));
                        }
                        Some(user) => user,
                        None => users::insert(tx, &email, InstanceRole::Member, false, None)?,
                    };
                    let code = if verifications::pending(tx, &user.id)?.len()
                        < verifications::MAX_PENDING
                    {
                        Some(verifications::create(tx, dek, &user.id, &hash, delivery)?)
                    } else {
                        None
                    };
                    Ok(Ok(Registered::Pending { code }))
                })
            })
            .await??
    };

    Ok(match outcome {
        Registered::Owner {
            email,
            token,
            expires_at,
        } => {
            let mut body = session_body(&token, expires_at);
            body["email"] = json!(email);
            body["role"] = json!("owner");
            body["requires_verification"] = json!(false);
            body["authenticated"] = json!(true);
            body["message"] = json!("Owner account created.");
            (StatusCode::CREATED, axum::Json(body))
        }
        Registered::Pending { code } => {
            if let Some(code) = code {
                super::email::send_verification_code(&state, &email, code);
            }
            let emailed = state.mailer.is_enabled();
            let how = if emailed {
                "A 6-digit verification code is on its way to this address by email."
            } else {
                "Ask the instance owner for your 6-digit verification code (they can read it with `agent-vault owner user info <email>`)."
            };
            let body = json!({
                "email": email,
                "requires_verification": true,
                "email_sent": emailed,
                "message": format!(
                    "If this address can register, a verification code was created. {how} Then run `agent-vault auth verify --email {email}`."
                ),
            });
            (StatusCode::CREATED, axum::Json(body))
        }
    })
}

#[derive(Deserialize)]
pub struct VerifyBody {
    email: String,
    code: SecretString,
}

/// `POST /v1/auth/verify`: activates an account with the password bound to the code.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let email = users::normalize_email(&body.email);
    let code = body.code.expose().trim().to_owned();
    let verified = state
        .db(move |store, dek| {
            store.write(|tx| {
                let Some(user) = users::by_email(tx, &email)? else {
                    return Ok(None);
                };
                if user.active {
                    return Ok(None);
                }
                for pending in verifications::pending(tx, &user.id)? {
                    let expected = pending.code(dek)?;
                    if bool::from(expected.expose().as_bytes().ct_eq(code.as_bytes())) {
                        verifications::consume(tx, &user.id, pending.id)?;
                        users::activate(tx, &user.id, &pending.password_hash)?;
                        let (token, session) = sessions::create_for_user(tx, &user.id)?;
                        return Ok(Some((user.email, token.raw, session.expires_at)));
                    }
                }
                verifications::record_failure(tx, &user.id)?;
                Ok(None)
            })
        })
        .await?;
    let (email, token, expires_at) = verified.ok_or_else(|| {
        ApiError::invalid(
            "invalid or expired verification code (a code allows 5 attempts); register again to get a new one",
        )
    })?;
    let mut body = session_body(&token, expires_at);
    body["email"] = json!(email);
    body["authenticated"] = json!(true);
    body["message"] = json!("Account verified.");
    Ok(axum::Json(body))
}

/// `POST /v1/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let email = users::normalize_email(&body.email);
    let lookup_email = email.clone();
    let (count, user, pending_hashes) = state
        .db(move |store, _| {
            store.read(|conn| {
                let user = users::by_email(conn, &lookup_email)?;
                let pending = match &user {
                    Some(u) if !u.active => verifications::pending(conn, &u.id)?
                        .into_iter()
                        .map(|v| v.password_hash)
                        .collect(),
                    _ => Vec::new(),
                };
                Ok((users::count(conn)?, user, pending))
            })
        })
        .await?;
    if count == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_initialized",
            "this server has no account yet; create the owner with `agent-vault auth register`",
        ));
    }
    let invalid = || ApiError::unauthorized("invalid email or password");
    let Some(user) = user else {
        verify_password_async(body.password, Vec::new()).await;
        return Err(invalid());
    };
    if !user.active {
        if verify_password_async(body.password, pending_hashes).await {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "account_not_verified",
                format!(
                    "this account is not verified yet; {} and run `agent-vault auth verify --email {email}`",
                    if state.mailer.is_enabled() {
                        "find the 6-digit code in your inbox (or ask the instance owner if it did not arrive)"
                    } else {
                        "get the 6-digit code from the instance owner"
                    }
                ),
            ));
        }
        return Err(invalid());
    }
    let hashes = user.password_hash.clone().into_iter().collect();
    if !verify_password_async(body.password, hashes).await {
        return Err(invalid());
    }
    let (token, session) = state
        .db(move |store, _| store.write(|tx| sessions::create_for_user(tx, &user.id)))
        .await?;
    Ok(axum::Json(session_body(&token.raw, session.expires_at)))
}

/// `POST /v1/auth/logout`: ends the presented session.
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let hash = caller.session.token_hash.clone();
    state
        .db(move |store, _| store.write(|tx| sessions::delete(tx, &hash)))
        .await?;
    Ok(axum::Json(json!({ "status": "ok" })))
}

/// `GET /v1/auth/me`.
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user()?.clone();
    let user_id = user.id.clone();
    let grants = state
        .db(move |store, _| store.read(|c| vaults::grants_of(c, ActorType::User, &user_id)))
        .await?;
    Ok(axum::Json(json!({
        "type": "user",
        "email": user.email,
        "role": user.role,
        "is_owner": user.role == InstanceRole::Owner,
        "vaults": grants.iter().map(|(v, r)| json!({ "name": v.name, "role": r })).collect::<Vec<_>>(),
        "created_at": rfc3339(user.created_at),
        "session_expires_at": caller.session.expires_at.map(rfc3339),
        "server": state.config.base_url,
    })))
}

#[derive(Deserialize)]
pub struct ChangePassword {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /v1/auth/change-password`: ends every session of the user and issues a new one.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user()?.clone();
    validate_password(body.new_password.expose()).map_err(ApiError::invalid)?;
    let current = user.password_hash.clone().into_iter().collect();
    if !verify_password_async(body.current_password, current).await {
        return Err(ApiError::unauthorized("the current password is incorrect"));
    }
    let hash = hash_password_async(body.new_password).await?;
    let (token, session) = state
        .db(move |store, _| {
            store.write(|tx| {
                users::set_password(tx, &user.id, &hash)?;
                sessions::delete_all_for_user(tx, &user.id)?;
                sessions::create_for_user(tx, &user.id)
            })
        })
        .await?;
    Ok(axum::Json(session_body(&token.raw, session.expires_at)))
}

/// `DELETE /v1/auth/account`: owners must hand over ownership first.
pub async fn delete_account(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user()?.clone();
    if user.role == InstanceRole::Owner {
        return Err(ApiError::conflict(
            "owners cannot delete their own account; make another user owner first (`agent-vault owner user set-role <email> --role owner`), then have them demote you",
        ));
    }
    let (id, email) = (user.id.clone(), user.email.clone());
    state
        .db(move |store, _| {
            store.write(|tx| {
                sessions::delete_all_for_user(tx, &id)?;
                users::delete(tx, &id)
            })
        })
        .await?;
    Ok(axum::Json(json!({ "status": "deleted", "email": email })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "   ",
            "no-at",
            "@x.com",
            "a@b",
            "a@.com",
            "a b@c.com",
            "a@b@c.com",
            "a@b.com.",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_rules() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"x".repeat(2000)).is_err());
    }
}
