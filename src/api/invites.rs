//! User invites as JSON: create (with vault pre-assignments), list, revoke by token suffix,
//! and the public details and redemption. The rules are in [`crate::ops::invites`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, ApiQuery, AppState, rfc3339};
use crate::crypto::SecretString;
use crate::ops::accounts::SessionUse;
use crate::ops::invites::{self, UserInviteRequest};
use crate::store::invites::{Invite, InviteKind};

#[derive(Deserialize)]
pub struct VaultAssignment {
    pub vault: String,
    #[serde(default)]
    pub role: Option<String>,
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
        "email": invite.subject,
        "role": invite.role,
        "status": invite.status_str(),
        "token_suffix": invite.token_suffix,
        "vaults": invite.vaults.iter().map(|(_, name, role)| json!({ "vault": name, "role": role })).collect::<Vec<_>>(),
        "created_by": created_by,
        "created_at": rfc3339(invite.created_at),
        "expires_at": rfc3339(invite.expires_at),
    })
}

/// `POST /v1/users/invites`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = UserInviteRequest {
        email: body.email,
        role: body.role,
        vaults: body.vaults.into_iter().map(|a| (a.vault, a.role)).collect(),
    };
    let created = invites::invite_user(&state, &caller, request).await?;
    let mut body = describe(&created.invite, created.inviter_email.as_deref());
    body["invite_link"] = json!(created.link(&state.config.base_url));
    body["email_sent"] = json!(created.emailed);
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
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let rows = invites::list(&state, &caller, InviteKind::User, query.status.as_deref()).await?;
    let invites: Vec<_> = rows
        .iter()
        .map(|(i, by)| describe(i, by.as_deref()))
        .collect();
    Ok(axum::Json(json!({ "invites": invites })))
}

/// `DELETE /v1/users/invites/{suffix}`.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(given): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let email = invites::revoke(&state, &caller, InviteKind::User, &given).await?;
    Ok(axum::Json(json!({ "revoked": true, "email": email })))
}

/// `GET /v1/invites/{token}` (public): what accepting this invite would do.
pub async fn details(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (invite, account) = invites::user_invite(&state, &token).await?;
    let mut body = describe(&invite, None);
    body["account_exists"] = json!(account);
    Ok(axum::Json(body))
}

#[derive(Deserialize)]
pub struct AcceptBody {
    password: SecretString,
}

/// `POST /v1/invites/{token}/accept` (public).
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<impl IntoResponse, ApiError> {
    let accepted =
        invites::accept_user_invite(&state, &token, body.password, SessionUse::Cli).await?;
    Ok(axum::Json(json!({
        "email": accepted.email,
        "token": accepted.token.expose(),
        "expires_at": accepted.expires_at.map(rfc3339),
        "message": "Invite accepted.",
    })))
}
