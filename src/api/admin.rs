//! Owner-only administration: remove users, change instance roles, instance settings. The
//! last owner (users and agents together) can be neither removed nor demoted.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState};
use crate::broker::retention::{self, RetentionEnv, StoredRetention};
use crate::broker::trim_request_log;
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

/// What the settings endpoints return.
struct SettingsView {
    invite_only: bool,
    domains: Vec<String>,
    stored_retention: StoredRetention,
}

impl SettingsView {
    fn read(conn: &rusqlite::Connection) -> crate::store::Result<Self> {
        Ok(Self {
            invite_only: settings::invite_only(conn)?,
            domains: settings::allowed_domains(conn)?,
            stored_retention: retention::stored(conn)?,
        })
    }

    fn body(&self, env: &RetentionEnv) -> serde_json::Value {
        let (effective, [age_source, rows_source]) = env.resolve(self.stored_retention);
        json!({
            "invite_only": self.invite_only,
            "allowed_email_domains": self.domains,
            "logs_retention": {
                "max_age_hours": effective.max_age_hours,
                "max_rows_per_vault": effective.max_rows_per_vault,
                "source": { "max_age_hours": age_source, "max_rows_per_vault": rows_source },
                "locked": env.locked,
            },
        })
    }
}

/// `GET /v1/admin/settings`.
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    require_owner(&caller)?;
    let view = state.db(|store, _| store.read(SettingsView::read)).await?;
    Ok(axum::Json(view.body(&state.config.retention)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    invite_only: Option<bool>,
    allowed_email_domains: Option<Vec<String>>,
    logs_retention: Option<StoredRetention>,
}

/// Checks an owner's retention change against the bounds and the lock.
fn check_retention(change: &StoredRetention, env: &RetentionEnv) -> Result<(), ApiError> {
    if env.locked {
        return Err(ApiError::conflict(format!(
            "log retention is pinned by {} on the server; change the environment instead",
            retention::LOCK_ENV
        )));
    }
    let bounded = |value: Option<i64>, limit: i64, name: &str| match value {
        Some(v) if !(0..=limit).contains(&v) => Err(ApiError::invalid(format!(
            "{name} must be between 0 (no limit) and {limit}"
        ))),
        _ => Ok(()),
    };
    bounded(
        change.max_age_hours,
        retention::LIMIT_MAX_AGE_HOURS,
        "logs_retention.max_age_hours",
    )?;
    bounded(
        change.max_rows_per_vault,
        retention::LIMIT_MAX_ROWS,
        "logs_retention.max_rows_per_vault",
    )
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

/// `PUT /v1/admin/settings`: changes only the fields given. A retention change also trims
/// the request log at once.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_owner(&caller)?;
    if body.invite_only.is_none()
        && body.allowed_email_domains.is_none()
        && body.logs_retention.is_none()
    {
        return Err(ApiError::invalid(
            "nothing to change; give invite_only, allowed_email_domains and/or logs_retention",
        ));
    }
    let env = state.config.retention;
    if let Some(change) = &body.logs_retention {
        check_retention(change, &env)?;
    }
    let domains = body.allowed_email_domains.map(clean_domains).transpose()?;
    let view = state
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
                if let Some(change) = body.logs_retention {
                    let mut stored = retention::stored(tx)?;
                    stored.max_age_hours = change.max_age_hours.or(stored.max_age_hours);
                    stored.max_rows_per_vault =
                        change.max_rows_per_vault.or(stored.max_rows_per_vault);
                    retention::store(tx, &stored)?;
                    trim_request_log(tx, env.effective(tx)?)?;
                }
                SettingsView::read(tx)
            })
        })
        .await?;
    Ok(axum::Json(view.body(&env)))
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
