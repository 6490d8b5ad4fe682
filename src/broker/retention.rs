//! How long request-log rows are kept, from three layers: the environment
//! (`AGENT_VAULT_LOGS_MAX_AGE_HOURS`, `AGENT_VAULT_LOGS_MAX_ROWS_PER_VAULT`) always wins, then
//! the owner's stored setting (`logs_retention`, ignored when `AGENT_VAULT_LOGS_RETENTION_LOCK`
//! is true), then the defaults (168 hours, 10 000 rows per vault). 0 disables a dimension.

use crate::store::Connection;
use serde::{Deserialize, Serialize};

use crate::store::{self, settings};

pub const MAX_AGE_ENV: &str = "AGENT_VAULT_LOGS_MAX_AGE_HOURS";
pub const MAX_ROWS_ENV: &str = "AGENT_VAULT_LOGS_MAX_ROWS_PER_VAULT";
pub const LOCK_ENV: &str = "AGENT_VAULT_LOGS_RETENTION_LOCK";
const SETTING: &str = "logs_retention";
const DEFAULT_MAX_AGE_HOURS: i64 = 168;
const DEFAULT_MAX_ROWS: i64 = 10_000;
/// Bounds on owner-set values: ten years, ten million rows.
pub const LIMIT_MAX_AGE_HOURS: i64 = 87_600;
pub const LIMIT_MAX_ROWS: i64 = 10_000_000;

/// The effective limits the trimmer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub max_age_hours: i64,
    pub max_rows_per_vault: i64,
}

/// What the owner stored; an absent field inherits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRetention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_per_vault: Option<i64>,
}

/// Where a value came from, reported to the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Env,
    Setting,
    Default,
}

/// The environment layer, read once at start.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionEnv {
    max_age_hours: Option<i64>,
    max_rows_per_vault: Option<i64>,
    pub locked: bool,
}

impl RetentionEnv {
    /// Reads the environment; a bad value is ignored with a warning naming it.
    pub fn from_env() -> (Self, Vec<String>) {
        let get = |name: &str| std::env::var(name).ok();
        Self::from_values(get(MAX_AGE_ENV), get(MAX_ROWS_ENV), get(LOCK_ENV))
    }

    fn from_values(
        age: Option<String>,
        rows: Option<String>,
        lock: Option<String>,
    ) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut count = |name: &str, value: Option<String>, default: i64| {
            let value = value.filter(|v| !v.trim().is_empty())?;
            let parsed = value.trim().parse::<i64>().ok().filter(|n| *n >= 0);
            if parsed.is_none() {
                warnings.push(format!(
                    "{name}={value} is not a non-negative whole number; ignoring it (default {default}, 0 disables)"
                ));
            }
            parsed
        };
        let max_age_hours = count(MAX_AGE_ENV, age, DEFAULT_MAX_AGE_HOURS);
        let max_rows_per_vault = count(MAX_ROWS_ENV, rows, DEFAULT_MAX_ROWS);
        let locked = match lock.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => {
                warnings.push(format!(
                    "{LOCK_ENV}={v} is not true or false; treating it as true (the stricter choice)"
                ));
                true
            }
        };
        let env = Self {
            max_age_hours,
            max_rows_per_vault,
            locked,
        };
        (env, warnings)
    }

    /// Layers the stored setting (unless locked) and the defaults under the environment.
    pub fn resolve(&self, stored: StoredRetention) -> (Retention, [Source; 2]) {
        let stored = if self.locked {
            StoredRetention::default()
        } else {
            stored
        };
        let pick = |env: Option<i64>, setting: Option<i64>, default: i64| match (env, setting) {
            (Some(v), _) => (v, Source::Env),
            (None, Some(v)) => (v, Source::Setting),
            (None, None) => (default, Source::Default),
        };
        let (age, age_source) = pick(
            self.max_age_hours,
            stored.max_age_hours,
            DEFAULT_MAX_AGE_HOURS,
        );
        let (rows, rows_source) = pick(
            self.max_rows_per_vault,
            stored.max_rows_per_vault,
            DEFAULT_MAX_ROWS,
        );
        let retention = Retention {
            max_age_hours: age,
            max_rows_per_vault: rows,
        };
        (retention, [age_source, rows_source])
    }

    /// The effective limits with the owner's current setting.
    pub fn effective(&self, conn: &Connection) -> store::Result<Retention> {
        Ok(self.resolve(stored(conn)?).0)
    }
}

/// The owner's stored setting (unreadable JSON counts as none).
pub fn stored(conn: &Connection) -> store::Result<StoredRetention> {
    Ok(settings::get(conn, SETTING)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

pub fn store(conn: &Connection, value: &StoredRetention) -> store::Result<()> {
    let json =
        serde_json::to_string(value).map_err(|e| store::StoreError::Corrupt(e.to_string()))?;
    settings::set(conn, SETTING, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(age: Option<&str>, rows: Option<&str>, lock: Option<&str>) -> RetentionEnv {
        let own = |v: Option<&str>| v.map(str::to_owned);
        RetentionEnv::from_values(own(age), own(rows), own(lock)).0
    }

    #[test]
    fn env_beats_the_setting_which_beats_the_default() {
        let stored = StoredRetention {
            max_age_hours: Some(24),
            max_rows_per_vault: Some(50),
        };
        let (r, sources) = env(None, None, None).resolve(StoredRetention::default());
        assert_eq!((r.max_age_hours, r.max_rows_per_vault), (168, 10_000));
        assert_eq!(sources, [Source::Default, Source::Default]);
        let (r, sources) = env(None, None, None).resolve(stored);
        assert_eq!((r.max_age_hours, r.max_rows_per_vault), (24, 50));
        assert_eq!(sources, [Source::Setting, Source::Setting]);
        let (r, sources) = env(Some("0"), None, None).resolve(stored);
        assert_eq!((r.max_age_hours, r.max_rows_per_vault), (0, 50));
        assert_eq!(sources, [Source::Env, Source::Setting]);
    }

    #[test]
    fn the_lock_ignores_the_setting() {
        let stored = StoredRetention {
            max_age_hours: Some(24),
            max_rows_per_vault: None,
        };
        let locked = env(None, Some("7"), Some("true"));
        assert!(locked.locked);
        let (r, sources) = locked.resolve(stored);
        assert_eq!((r.max_age_hours, r.max_rows_per_vault), (168, 7));
        assert_eq!(sources, [Source::Default, Source::Env]);
    }

    #[test]
    fn bad_values_warn_and_are_ignored() {
        let (env, warnings) =
            RetentionEnv::from_values(Some("-1".into()), Some("lots".into()), Some("maybe".into()));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains(MAX_AGE_ENV));
        assert!(env.locked, "an unclear lock errs on the locked side");
        assert_eq!(
            env.resolve(StoredRetention::default()).1,
            [Source::Default; 2]
        );
    }
}
