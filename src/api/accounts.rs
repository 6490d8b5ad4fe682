//! Registration, verification, login and the caller's own account, as JSON. The rules are in
//! [`crate::ops::accounts`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::crypto::SecretString;
use crate::limits::http::ClientIp;
use crate::ops::accounts::{self, NewLogin, Registered, SessionUse};
use crate::store::InstanceRole;

fn session_body(login: &NewLogin) -> serde_json::Value {
    json!({ "token": login.token.expose(), "expires_at": login.expires_at.map(rfc3339) })
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: SecretString,
}

/// `POST /v1/auth/register`: the first account becomes the owner; later ones wait for a code.
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome = accounts::register(&state, &body.email, body.password, SessionUse::Cli).await?;
    Ok(match outcome {
        Registered::Owner(login) => {
            let mut body = session_body(&login);
            body["email"] = json!(login.email);
            body["role"] = json!("owner");
            body["requires_verification"] = json!(false);
            body["authenticated"] = json!(true);
            body["message"] = json!("Owner account created.");
            (StatusCode::CREATED, axum::Json(body))
        }
        Registered::Pending { email } => {
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
    password: SecretString,
}

/// `POST /v1/auth/verify`: the code proves the address; the account gets the password given.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let login = accounts::verify(
        &state,
        &body.email,
        &body.code,
        body.password,
        SessionUse::Cli,
    )
    .await?;
    let mut body = session_body(&login);
    body["email"] = json!(login.email);
    body["authenticated"] = json!(true);
    body["message"] = json!("Account verified.");
    Ok(axum::Json(body))
}

/// `POST /v1/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let login = accounts::login(&state, &body.email, body.password, SessionUse::Cli, from).await?;
    Ok(axum::Json(session_body(&login)))
}

/// `POST /v1/auth/logout`: ends the presented session.
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    accounts::logout(&state, &caller).await?;
    Ok(axum::Json(json!({ "status": "ok" })))
}

/// `GET /v1/auth/me`.
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let (user, grants) = accounts::me(&state, &caller).await?;
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
    let login = accounts::change_password(
        &state,
        &caller,
        body.current_password,
        body.new_password,
        SessionUse::Cli,
    )
    .await?;
    Ok(axum::Json(session_body(&login)))
}

/// `DELETE /v1/auth/account`: owners must hand over ownership first.
pub async fn delete_account(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let email = accounts::delete_account(&state, &caller).await?;
    Ok(axum::Json(json!({ "status": "deleted", "email": email })))
}
