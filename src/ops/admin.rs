//! Owner administration: the users of the instance (list, details, remove, instance role) and
//! the instance settings (invite-only, allowed domains, request-log retention). The last
//! owner (users and agents together) can be neither removed nor demoted.

use serde::Deserialize;

use super::caller::Caller;
use super::{AppState, OpError};
use crate::broker::retention::{self, RetentionEnv, StoredRetention};
use crate::broker::trim_request_log;
use crate::crypto::SecretString;
use crate::limits::StoredRateLimit;
use crate::limits::config as ratelimit_config;
use crate::store::users::{self, User, normalize_email};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{InstanceRole, VaultRole, sessions, settings, verifications};

pub fn require_owner(caller: &Caller) -> Result<(), OpError> {
    if caller.is_owner() {
        Ok(())
    } else {
        Err(OpError::forbidden("only an instance owner can do this"))
    }
}

fn last_owner(email: &str) -> OpError {
    OpError::conflict(format!(
        "{email} is the last owner of this instance; make another user owner first"
    ))
}

async fn find_user(state: &AppState, email: &str) -> Result<User, OpError> {
    let lookup = normalize_email(email);
    state
        .db(move |store, _| store.read(|conn| users::by_email(conn, &lookup)))
        .await?
        .ok_or_else(|| {
            OpError::not_found(format!(
                "no user with email \"{}\"",
                crate::ceilings::excerpt(email, crate::ceilings::ECHO_CHARS)
            ))
        })
}

/// Removes a user with their sessions and grants (owners).
pub async fn remove_user(
    state: &AppState,
    caller: &Caller,
    email: &str,
) -> Result<String, OpError> {
    require_owner(caller)?;
    let user = find_user(state, email).await?;
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_owner(tx)? {
                    return Ok(Err(refused));
                }
                if user.role == InstanceRole::Owner
                    && user.active
                    && users::count_active_owners(tx)? <= 1
                {
                    return Ok(Err(last_owner(&user.email)));
                }
                let member = (ActorType::User, user.id.as_str(), user.email.as_str());
                if let Err(refused) = super::members::keeps_every_vault_administered(tx, member)? {
                    return Ok(Err(refused));
                }
                if let Err(refused) =
                    super::members::release_agents_of_deleted(tx, &user.id, &user.email)?
                {
                    return Ok(Err(refused));
                }
                sessions::delete_all_for_user(tx, &user.id)?;
                users::delete(tx, &user.id)?;
                Ok(Ok(user.email))
            })
        })
        .await?
}

/// Changes a user's instance role (owners).
pub async fn set_user_role(
    state: &AppState,
    caller: &Caller,
    email: &str,
    role: &str,
) -> Result<(String, InstanceRole), OpError> {
    require_owner(caller)?;
    let role: InstanceRole = role.parse().map_err(OpError::invalid)?;
    let user = find_user(state, email).await?;
    let email = user.email.clone();
    let caller = caller.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                if let Err(refused) = caller.still_owner(tx)? {
                    return Ok(Err(refused));
                }
                // As it is now, not as it was read before the transaction.
                let Some(user) = users::by_id(tx, &user.id)? else {
                    return Ok(Err(OpError::not_found(format!(
                        "no user with email \"{}\"",
                        user.email
                    ))));
                };
                let demoting = user.role == InstanceRole::Owner && role != InstanceRole::Owner;
                if demoting && user.active && users::count_active_owners(tx)? <= 1 {
                    return Ok(Err(last_owner(&user.email)));
                }
                let change = super::members::UserChange::NoLongerOwner;
                let caps = if demoting {
                    match super::members::agent_caps(tx, &user.id, &user.email, &change)? {
                        Ok(caps) => caps,
                        Err(refused) => return Ok(Err(refused)),
                    }
                } else {
                    Vec::new()
                };
                users::set_role(tx, &user.id, role)?;
                super::members::apply_agent_caps(tx, &caps)?;
                if demoting {
                    super::members::demote_owner_agents_of(tx, &user.id)?;
                }
                Ok(Ok(()))
            })
        })
        .await??;
    Ok((email, role))
}

/// A user as the owner sees them.
pub struct UserDetails {
    pub user: User,
    pub grants: Vec<(Vault, VaultRole)>,
    /// A live verification code of a pending account that did not go out by email (email
    /// off, or its delivery failed): (code, expiry, delivery).
    pub code: Option<(SecretString, i64, verifications::Delivery)>,
}

/// Anyone may see themselves (`me`), the owner anyone.
pub async fn user_details(
    state: &AppState,
    caller: &Caller,
    email: &str,
) -> Result<UserDetails, OpError> {
    let me = caller.user()?.clone();
    let email = if email == "me" {
        me.email.clone()
    } else {
        normalize_email(email)
    };
    if email != me.email && !caller.is_owner() {
        return Err(OpError::forbidden(
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
                Ok(Some(UserDetails { user, grants, code }))
            })
        })
        .await?;
    found.ok_or_else(|| {
        OpError::not_found(format!(
            "no user with email \"{}\"",
            crate::ceilings::excerpt(&email, crate::ceilings::ECHO_CHARS)
        ))
    })
}

/// Users of the instance: owners see every account with its vault grants; members see
/// active accounts only, without grants.
pub async fn list_users(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<(User, Vec<(Vault, VaultRole)>)>, OpError> {
    caller.user()?;
    let owner = caller.is_owner();
    state
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
        .await
}

/// The instance settings an owner sees.
pub struct Settings {
    pub invite_only: bool,
    pub allowed_domains: Vec<String>,
    pub stored_retention: StoredRetention,
    /// The owner's rate-limit override as stored (the limits in force are
    /// `state.proxy.limits.effective()`).
    pub stored_rate_limit: StoredRateLimit,
}

impl Settings {
    fn read(conn: &crate::store::Connection) -> crate::store::Result<Self> {
        Ok(Self {
            invite_only: settings::invite_only(conn)?,
            allowed_domains: settings::allowed_domains(conn)?,
            stored_retention: retention::stored(conn)?,
            stored_rate_limit: ratelimit_config::stored(conn)?,
        })
    }
}

pub async fn settings(state: &AppState, caller: &Caller) -> Result<Settings, OpError> {
    require_owner(caller)?;
    state.db(|store, _| store.read(Settings::read)).await
}

/// A change to the instance settings: only the fields given change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    pub invite_only: Option<bool>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub logs_retention: Option<StoredRetention>,
    /// Replaces the stored rate-limit override whole (`{}` clears it).
    pub rate_limit: Option<StoredRateLimit>,
}

/// Checks an owner's rate-limit override against the lock and the floors.
pub fn check_rate_limit(state: &AppState, change: &StoredRateLimit) -> Result<(), OpError> {
    if state.proxy.limits.locked() {
        return Err(OpError::conflict(format!(
            "rate limits are pinned by {}=true on the server; change the environment instead",
            ratelimit_config::LOCK_ENV
        )));
    }
    change.validate().map_err(|e| OpError::invalid(e.0))
}

/// What an override would give, without saving it (owners).
pub fn preview_rate_limit(
    state: &AppState,
    caller: &Caller,
    change: &StoredRateLimit,
) -> Result<crate::limits::Effective, OpError> {
    require_owner(caller)?;
    check_rate_limit(state, change)?;
    state
        .proxy
        .limits
        .preview(change)
        .map_err(|e| OpError::invalid(e.0))
}

/// Checks an owner's retention change against the bounds and the lock.
fn check_retention(change: &StoredRetention, env: &RetentionEnv) -> Result<(), OpError> {
    if env.locked {
        return Err(OpError::conflict(format!(
            "log retention is pinned by {} on the server; change the environment instead",
            retention::LOCK_ENV
        )));
    }
    let bounded = |value: Option<i64>, limit: i64, name: &str| match value {
        Some(v) if !(0..=limit).contains(&v) => Err(OpError::invalid(format!(
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
pub fn clean_domains(domains: Vec<String>) -> Result<Vec<String>, OpError> {
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
            return Err(OpError::invalid(format!(
                "\"{domain}\" is not an email domain (for example example.com)"
            )));
        }
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

/// Changes the instance settings. A retention change also trims the request log at once.
pub async fn change_settings(
    state: &AppState,
    caller: &Caller,
    change: SettingsChange,
) -> Result<Settings, OpError> {
    require_owner(caller)?;
    if change.invite_only.is_none()
        && change.allowed_email_domains.is_none()
        && change.logs_retention.is_none()
        && change.rate_limit.is_none()
    {
        return Err(OpError::invalid(
            "nothing to change; give invite_only, allowed_email_domains, logs_retention and/or rate_limit",
        ));
    }
    if let Some(rate_limit) = &change.rate_limit {
        check_rate_limit(state, rate_limit)?;
    }
    let env = state.config.retention;
    if let Some(retention) = &change.logs_retention {
        check_retention(retention, &env)?;
    }
    let domains = change
        .allowed_email_domains
        .map(clean_domains)
        .transpose()?;
    let caller = caller.clone();
    let settings = state
        .db(move |store, _| {
            let settings = store.write(|tx| {
                if let Err(refused) = caller.still_owner(tx)? {
                    return Ok(Err(refused));
                }
                if let Some(flag) = change.invite_only {
                    settings::set(tx, "invite_only", if flag { "true" } else { "false" })?;
                }
                if let Some(domains) = &domains {
                    let json = serde_json::to_string(domains)
                        .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                    settings::set(tx, "allowed_email_domains", &json)?;
                }
                if let Some(retention) = change.logs_retention {
                    let mut stored = retention::stored(tx)?;
                    stored.max_age_hours = retention.max_age_hours.or(stored.max_age_hours);
                    stored.max_rows_per_vault =
                        retention.max_rows_per_vault.or(stored.max_rows_per_vault);
                    retention::store(tx, &stored)?;
                }
                if let Some(rate_limit) = &change.rate_limit {
                    ratelimit_config::store(tx, rate_limit)?;
                }
                Settings::read(tx).map(Ok)
            })?;
            let settings = match settings {
                Ok(settings) => settings,
                Err(refused) => return Ok(Err(refused)),
            };
            if change.logs_retention.is_some() {
                // Applied at once, a chunk at a time (not inside the settings' transaction).
                trim_request_log(store, store.read(|c| env.effective(c))?)?;
            }
            Ok(Ok(settings))
        })
        .await??;
    // Applied at once: the new budgets hold from the next request.
    state
        .proxy
        .limits
        .apply(&settings.stored_rate_limit)
        .map_err(|e| OpError::invalid(e.0))?;
    Ok(settings)
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
