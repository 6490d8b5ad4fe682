//! Instance users as JSON (`owner user …`, `user list`). The rules are in
//! [`crate::ops::admin`].

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, AppState, rfc3339};
use crate::ops::admin;

/// `GET /v1/admin/users/{email}`: anyone may see themselves (`me`), the owner anyone. For a
/// pending account the owner also sees a live verification code that did not go out by
/// email (email off, or its delivery failed).
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let details = admin::user_details(&state, &caller, &email).await?;
    let user = &details.user;
    let mut body = json!({
        "email": user.email,
        "role": user.role,
        "status": if user.active { "active" } else { "pending" },
        "vaults": details.grants.iter().map(|(v, r)| json!({ "name": v.name, "role": r })).collect::<Vec<_>>(),
        "created_at": rfc3339(user.created_at),
    });
    if let Some((code, expires_at, delivery)) = &details.code {
        body["verification_code"] = json!(code.expose());
        body["verification_code_expires_at"] = json!(rfc3339(*expires_at));
        body["verification_code_email"] = json!(delivery.as_str());
    }
    Ok(axum::Json(body))
}

/// `GET /v1/admin/users`: the owner-only listing.
pub async fn owner_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    admin::require_owner(&caller)?;
    list(State(state), caller).await
}

/// `GET /v1/users`: owners see every account with its status and vault memberships;
/// members see active accounts only.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let owner = caller.is_owner();
    let rows = admin::list_users(&state, &caller).await?;
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
