//! Instance users as seen by the owner (`owner user …`).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, AppState, rfc3339};
use crate::store::users::{self, normalize_email};
use crate::store::vaults::{self, ActorType};
use crate::store::verifications;

/// `GET /v1/admin/users/{email}`: anyone may see themselves (`me`), the owner anyone. For a
/// pending account the owner also sees a live verification code that did not go out by
/// email (email off, or its delivery failed).
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.user()?.clone();
    let email = if email == "me" {
        me.email.clone()
    } else {
        normalize_email(&email)
    };
    if email != me.email && !caller.is_owner() {
        return Err(ApiError::forbidden(
            "only the instance owner can view other users",
        ));
    }
    // With email on, a code that reached its inbox stays there; the owner sees only codes
    // that were never sent or whose delivery failed.
    let reveal_code = caller.is_owner();
    let email_on = state.mailer.is_enabled();
    let lookup = email.clone();
    let found = state
        .db(move |store, dek| {
            store.read(|conn| {
                let Some(user) = users::by_email(conn, &lookup)? else {
                    return Ok(None);
                };
                let grants = vaults::grants_of(conn, ActorType::User, &user.id)?;
                let code = match (user.active, reveal_code) {
                    (false, true) => match verifications::pending(conn, &user.id)?
                        .into_iter()
                        .find(|v| !email_on || v.delivery.undelivered())
                    {
                        Some(v) => Some((v.code(dek)?, v.expires_at, v.delivery)),
                        None => None,
                    },
                    _ => None,
                };
                Ok(Some((user, grants, code)))
            })
        })
        .await?;
    let (user, grants, code) =
        found.ok_or_else(|| ApiError::not_found(format!("no user with email \"{email}\"")))?;
    let mut body = json!({
        "email": user.email,
        "role": user.role,
        "status": if user.active { "active" } else { "pending" },
        "vaults": grants.iter().map(|(v, r)| json!({ "name": v.name, "role": r })).collect::<Vec<_>>(),
        "created_at": rfc3339(user.created_at),
    });
    if let Some((code, expires_at, delivery)) = code {
        body["verification_code"] = json!(code.expose());
        body["verification_code_expires_at"] = json!(rfc3339(expires_at));
        body["verification_code_email"] = json!(delivery.as_str());
    }
    Ok(axum::Json(body))
}

/// `GET /v1/admin/users`: the owner-only listing.
pub async fn owner_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    super::admin::require_owner(&caller)?;
    list(State(state), caller).await
}

/// `GET /v1/users`: owners see every account with its status and vault memberships;
/// members see active accounts only.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    caller.user()?;
    let owner = caller.is_owner();
    let rows = state
        .db(move |store, _| {
            store.read(|conn| {
                users::list(conn)?
                    .into_iter()
                    .filter(|u| owner || u.active)
                    .map(|u| {
                        let grants = if owner {
                            vaults::grants_of(conn, ActorType::User, &u.id)?
                        } else {
                            Vec::new()
                        };
                        Ok((u, grants))
                    })
                    .collect::<crate::store::Result<Vec<_>>>()
            })
        })
        .await?;
    let users: Vec<_> = rows
        .iter()
        .map(|(u, grants)| {
            let mut row =
                json!({ "email": u.email, "role": u.role, "created_at": rfc3339(u.created_at) });
            if owner {
                row["status"] = json!(if u.active { "active" } else { "pending" });
                row["vaults"] = grants
                    .iter()
                    .map(|(v, r)| json!({ "name": v.name, "role": r }))
                    .collect();
            }
            row
        })
        .collect();
    Ok(axum::Json(json!({ "users": users })))
}
