//! Owner-only administration: remove users, change instance roles, instance settings. The
//! last owner (users and agents together) can be neither removed nor demoted.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::store::{InstanceRole, sessions, settings, users};

pub fn require_owner(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_owner() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an instance owner can do this"))
    }
}

fn last_owner(email: &str) -> ApiError {
    ApiError::conflict(format!(
        "{email} is the last owner of this instance; make another user owner first"
    ))
}

async fn find_user(state: &AppState, email: &str) -> Result<users::User, ApiError> {
    let lookup = users::normalize_email(email);
    state
        .db(move |store, _| store.read(|conn| users::by_email(conn, &lookup)))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user with email \"{email}\"")))
}

/// `DELETE /v1/admin/users/{email}`.
pub async fn remove_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_owner(&caller)?;
    let user = find_user(&state, &email).await?;
    let removed = state
        .db(move |store, _| {
            store.write(|tx| {
                if user.role == InstanceRole::Owner
                    && user.active
                    && users::count_active_owners(tx)? <= 1
                {
                    return Ok(Err(last_owner(&user.email)));
                }
                sessions::delete_all_for_user(tx, &user.id)?;
                users::delete(tx, &user.id)?;
                Ok(Ok(user.email))
            })
        })
        .await??;
    Ok(axum::Json(json!({ "email": removed, "removed": true })))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

/// `POST /v1/admin/users/{email}/role`.
pub async fn set_user_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_owner(&caller)?;
    let role: InstanceRole = body.role.parse().map_err(ApiError::invalid)?;
    let user = find_user(&state, &email).await?;
    let email = user.email.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                let demoting = user.role == InstanceRole::Owner && role != InstanceRole::Owner;
                if demoting && user.active && users::count_active_owners(tx)? <= 1 {
                    return Ok(Err(last_owner(&user.email)));
                }
                users::set_role(tx, &user.id, role)?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(axum::Json(json!({ "email": email, "role": role })))
}

fn settings_body(invite_only: bool, domains: &[String]) -> serde_json::Value {
    json!({ "invite_only": invite_only, "allowed_email_domains": domains })
}

/// `GET /v1/admin/settings`.
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    require_owner(&caller)?;
    let (invite_only, domains) = state
        .db(|store, _| {
            store.read(|conn| {
                Ok((
                    settings::invite_only(conn)?,
                    settings::allowed_domains(conn)?,
                ))
            })
        })
        .await?;
    Ok(axum::Json(settings_body(invite_only, &domains)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    invite_only: Option<bool>,
    allowed_email_domains: Option<Vec<String>>,
}

/// Normalises allowed domains: lower-case, deduplicated, each a plausible domain.
fn clean_domains(domains: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for domain in domains {
        let domain = domain.trim().trim_start_matches('@').to_lowercase();
        if domain.is_empty() {
            continue;
        }
        let valid = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(ApiError::invalid(format!(
                "\"{domain}\" is not an email domain (for example example.com)"
            )));
        }
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

/// `PUT /v1/admin/settings`: changes only the fields given.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_owner(&caller)?;
    if body.invite_only.is_none() && body.allowed_email_domains.is_none() {
        return Err(ApiError::invalid(
            "nothing to change; give invite_only and/or allowed_email_domains",
        ));
    }
    let domains = body.allowed_email_domains.map(clean_domains).transpose()?;
    let (invite_only, domains) = state
        .db(move |store, _| {
            store.write(|tx| {
                if let Some(flag) = body.invite_only {
                    settings::set(tx, "invite_only", if flag { "true" } else { "false" })?;
                }
                if let Some(domains) = &domains {
                    let json = serde_json::to_string(domains)
                        .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                    settings::set(tx, "allowed_email_domains", &json)?;
                }
                Ok((settings::invite_only(tx)?, settings::allowed_domains(tx)?))
            })
        })
        .await?;
    Ok(axum::Json(settings_body(invite_only, &domains)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_cleaned() {
        let cleaned = clean_domains(vec![
            " Example.COM ".into(),
            "@corp.io".into(),
            "example.com".into(),
            "".into(),
        ])
        .unwrap();
        assert_eq!(cleaned, vec!["example.com", "corp.io"]);
        assert!(clean_domains(vec!["localhost".into()]).is_err());
        assert!(clean_domains(vec!["a b.com".into()]).is_err());
    }
}
