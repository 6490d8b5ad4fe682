//! What the limits are: four tiers, the knobs each one has, the four profiles, and the three
//! layers that decide a value — the environment (`AGENT_VAULT_RATELIMIT_*`, always wins), the
//! owner's stored override (ignored when `AGENT_VAULT_RATELIMIT_LOCK=true`), then the profile.
//!
//! Pure data and parsing: nothing here counts requests. A bad environment value is an error
//! naming the variable (the server refuses to start); a bad owner override is an error naming
//! the tier and knob.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "AGENT_VAULT_RATELIMIT_";
pub const PROFILE_ENV: &str = "AGENT_VAULT_RATELIMIT_PROFILE";
pub const LOCK_ENV: &str = "AGENT_VAULT_RATELIMIT_LOCK";
/// The instance setting that holds the owner's override (JSON of [`StoredRateLimit`]).
pub const SETTING: &str = "ratelimit_config";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Tier {
    /// Anonymous authentication: register, login, verify, redemptions, failed proxy auth.
    Auth,
    /// The data path, per principal and vault.
    Proxy,
    /// Authenticated API calls, per principal.
    Authed,
    /// Whole listeners: requests per second (API only) and requests in flight.
    Global,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Auth, Tier::Proxy, Tier::Authed, Tier::Global];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Auth => "AUTH",
            Tier::Proxy => "PROXY",
            Tier::Authed => "AUTHED",
            Tier::Global => "GLOBAL",
        }
    }

    /// The knobs this tier has. AUTH counts attempts in a window; the others are token
    /// buckets (a sustained rate and a burst); PROXY and GLOBAL also cap requests in flight.
    pub fn knobs(self) -> &'static [Knob] {
        match self {
            Tier::Auth => &[Knob::Max, Knob::Window],
            Tier::Authed => &[Knob::Rate, Knob::Burst],
            Tier::Proxy | Tier::Global => &[Knob::Rate, Knob::Burst, Knob::Concurrency],
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    /// Sustained requests per second (a decimal; 0 turns the bucket off).
    Rate,
    /// Requests allowed at once before the rate applies (at least 1).
    Burst,
    /// AUTH's counting window (`30s`, `5m`, `1h`).
    Window,
    /// AUTH attempts per window (0 turns the tier off).
    Max,
    /// Requests in flight at once (0: no ceiling).
    Concurrency,
}

impl Knob {
    pub const ALL: [Knob; 5] = [
        Knob::Rate,
        Knob::Burst,
        Knob::Window,
        Knob::Max,
        Knob::Concurrency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Knob::Rate => "RATE",
            Knob::Burst => "BURST",
            Knob::Window => "WINDOW",
            Knob::Max => "MAX",
            Knob::Concurrency => "CONCURRENCY",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Default,
    Strict,
    Loose,
    Off,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Strict => "strict",
            Profile::Loose => "loose",
            Profile::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Profile::Default,
            Profile::Strict,
            Profile::Loose,
            Profile::Off,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// The profile's numbers (docs/ratelimits.md says why each was chosen). `off` has none.
    pub fn limits(self, tier: Tier) -> Option<TierLimits> {
        let scale = match self {
            Profile::Default => 1.0,
            Profile::Strict => 0.5,
            Profile::Loose => 4.0,
            Profile::Off => return None,
        };
        let base = match tier {
            Tier::Auth => TierLimits {
                max: 30,
                window: Duration::from_secs(300),
                ..TierLimits::NONE
            },
            Tier::Proxy => TierLimits {
                rate: 100.0,
                burst: 1000,
                concurrency: 128,
                ..TierLimits::NONE
            },
            Tier::Authed => TierLimits {
                rate: 50.0,
                burst: 1000,
                ..TierLimits::NONE
            },
            Tier::Global => TierLimits {
                rate: 2000.0,
                burst: 4000,
                concurrency: 1024,
                ..TierLimits::NONE
            },
        };
        Some(base.scaled(scale))
    }
}

/// The effective numbers of one tier. A knob the tier does not have is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierLimits {
    pub rate: f64,
    pub burst: u32,
    pub window: Duration,
    pub max: u32,
    pub concurrency: u32,
}

impl TierLimits {
    const NONE: TierLimits = TierLimits {
        rate: 0.0,
        burst: 0,
        window: Duration::ZERO,
        max: 0,
        concurrency: 0,
    };

    fn scaled(self, by: f64) -> Self {
        let count = |n: u32| ((f64::from(n) * by).round() as u32).max(1);
        TierLimits {
            rate: self.rate * by,
            burst: if self.burst == 0 {
                0
            } else {
                count(self.burst)
            },
            window: self.window,
            max: if self.max == 0 { 0 } else { count(self.max) },
            concurrency: if self.concurrency == 0 {
                0
            } else {
                count(self.concurrency)
            },
        }
    }

    fn set(&mut self, knob: Knob, value: KnobValue) {
        match (knob, value) {
            (Knob::Rate, KnobValue::Rate(v)) => self.rate = v,
            (Knob::Window, KnobValue::Window(w)) => self.window = w,
            (Knob::Burst, KnobValue::Count(n)) => self.burst = n,
            (Knob::Max, KnobValue::Count(n)) => self.max = n,
            (Knob::Concurrency, KnobValue::Count(n)) => self.concurrency = n,
            _ => {}
        }
    }

    pub fn get(&self, knob: Knob) -> KnobValue {
        match knob {
            Knob::Rate => KnobValue::Rate(self.rate),
            Knob::Window => KnobValue::Window(self.window),
            Knob::Burst => KnobValue::Count(self.burst),
            Knob::Max => KnobValue::Count(self.max),
            Knob::Concurrency => KnobValue::Count(self.concurrency),
        }
    }
}

/// The slowest rate a limit may have (one request in about 17 minutes): a slower one is no
/// limit anyone means, and its period times a burst would not fit the limiter's clock.
pub const MIN_RATE: f64 = 0.001;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KnobValue {
    Rate(f64),
    Count(u32),
    Window(Duration),
}

impl KnobValue {
    fn parse(knob: Knob, text: &str) -> Result<Self, String> {
        let text = text.trim();
        match knob {
            Knob::Rate => text
                .parse::<f64>()
                .ok()
                .filter(|v| *v == 0.0 || (MIN_RATE..=1_000_000.0).contains(v))
                .map(KnobValue::Rate)
                .ok_or_else(|| {
                    format!("must be requests per second: 0 (off), or from {MIN_RATE} to 1000000, such as 20 or 0.5")
                }),
            Knob::Window => parse_window(text).map(KnobValue::Window),
            Knob::Burst => match text.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(KnobValue::Count(n)),
                _ => Err("must be a whole number of at least 1".to_owned()),
            },
            Knob::Max | Knob::Concurrency => text
                .parse::<u32>()
                .map(KnobValue::Count)
                .map_err(|_| "must be a whole number (0 turns it off)".to_owned()),
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        match self {
            KnobValue::Rate(v) => serde_json::json!(v),
            KnobValue::Count(n) => serde_json::json!(n),
            KnobValue::Window(w) => serde_json::json!(format_window(w)),
        }
    }
}

/// A window: whole numbers with units `s`, `m`, `h`, in sequence (`90s`, `5m`, `1h30m`),
/// from one second to one day.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let bad = || format!("\"{text}\" is not a window; write it like 30s, 5m or 1h (1s to 24h)");
    let mut seconds: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit = after.chars().next().ok_or_else(bad)?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        seconds = number
            .checked_mul(scale)
            .and_then(|s| s.checked_add(seconds))
            .ok_or_else(bad)?;
        rest = &after[1..];
    }
    if !(1..=86_400).contains(&seconds) {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

pub fn format_window(window: Duration) -> String {
    let s = window.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (h, 0, 0) if h > 0 => format!("{h}h"),
        (0, m, 0) if m > 0 => format!("{m}m"),
        (0, 0, s) => format!("{s}s"),
        (h, m, s) => {
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if m > 0 {
                out.push_str(&format!("{m}m"));
            }
            if s > 0 {
                out.push_str(&format!("{s}s"));
            }
            out
        }
    }
}

/// A bad environment value: the server does not start.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value}: {problem}")]
pub struct EnvError {
    pub variable: String,
    pub value: String,
    pub problem: String,
}

/// One knob set per tier, by the environment or the owner; `None` inherits.
type KnobSet = [Option<KnobValue>; 5];

/// The environment layer, read once at start.
#[derive(Debug, Clone, Default)]
pub struct EnvLayer {
    pub profile: Option<Profile>,
    pub locked: bool,
    knobs: [KnobSet; 4],
}

impl EnvLayer {
    /// `AGENT_VAULT_RATELIMIT_PROFILE=off`.
    pub fn off() -> Self {
        EnvLayer {
            profile: Some(Profile::Off),
            ..EnvLayer::default()
        }
    }

    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(std::env::vars_os().filter_map(|(k, v)| {
            let key = k.into_string().ok()?;
            key.starts_with(PREFIX)
                .then(|| (key, v.to_string_lossy().into_owned()))
        }))
    }

    /// Every `AGENT_VAULT_RATELIMIT_*` variable must be one this server understands, with a
    /// value it can use: a typo stops the server instead of silently leaving a limit unset.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, EnvError> {
        let mut env = EnvLayer::default();
        for (variable, value) in vars {
            let fail = |problem: String| EnvError {
                variable: variable.clone(),
                value: value.clone(),
                problem,
            };
            if value.trim().is_empty() {
                continue;
            }
            if variable == PROFILE_ENV {
                env.profile = Some(Profile::parse(&value).ok_or_else(|| {
                    fail("must be one of default, strict, loose, off".to_owned())
                })?);
                continue;
            }
            if variable == LOCK_ENV {
                env.locked = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(fail("must be true or false".to_owned())),
                };
                continue;
            }
            let rest = variable.strip_prefix(PREFIX).unwrap_or_default();
            let (tier, knob) = rest
                .split_once('_')
                .and_then(|(t, k)| Some((Tier::parse(t)?, Knob::parse(k)?)))
                .ok_or_else(|| {
                    fail(format!(
                        "unknown variable; use {PROFILE_ENV}, {LOCK_ENV} or {PREFIX}<TIER>_<KNOB> with TIER one of AUTH, PROXY, AUTHED, GLOBAL"
                    ))
                })?;
            if !tier.knobs().contains(&knob) {
                return Err(fail(format!(
                    "{tier} has no {} knob; its knobs are {}",
                    knob.as_str(),
                    knob_names(tier)
                )));
            }
            let parsed = KnobValue::parse(knob, &value).map_err(fail)?;
            env.knobs[tier.index()][knob as usize] = Some(parsed);
        }
        Ok(env)
    }
}

fn knob_names(tier: Tier) -> String {
    tier.knobs()
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One tier's override as JSON: absent fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl KnobOverride {
    fn is_empty(&self) -> bool {
        self == &KnobOverride::default()
    }

    fn raw(&self, knob: Knob) -> Option<String> {
        match knob {
            Knob::Rate => self.rate.map(|v| v.to_string()),
            Knob::Burst => self.burst.map(|v| v.to_string()),
            Knob::Window => self.window.clone(),
            Knob::Max => self.max.map(|v| v.to_string()),
            Knob::Concurrency => self.concurrency.map(|v| v.to_string()),
        }
    }
}

/// What the owner stored (`ratelimit_config`): a profile and per-tier knobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<Tier, KnobOverride>,
}

/// The owner's stored override; a row that does not parse reads as none (it was written by
/// [`store`], so that only happens after a downgrade).
pub fn stored(conn: &crate::store::db::Connection) -> crate::store::Result<StoredRateLimit> {
    Ok(crate::store::settings::get(conn, SETTING)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

pub fn store(
    conn: &crate::store::db::Connection,
    value: &StoredRateLimit,
) -> crate::store::Result<()> {
    let json = serde_json::to_string(value)
        .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
    crate::store::settings::set(conn, SETTING, &json)
}

/// A bad owner override (400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverrideError(pub String);

impl StoredRateLimit {
    /// Layers `change` over `self`: a given profile replaces, given knobs replace, the rest
    /// stays (the CLI edits one knob this way; the API stores what it is sent).
    pub fn merged(&self, change: &StoredRateLimit) -> StoredRateLimit {
        let mut out = self.clone();
        if change.profile.is_some() {
            out.profile = change.profile;
        }
        for (tier, knobs) in &change.overrides {
            let entry = out.overrides.entry(*tier).or_default();
            entry.rate = knobs.rate.or(entry.rate);
            entry.burst = knobs.burst.or(entry.burst);
            entry.window = knobs.window.clone().or(entry.window.take());
            entry.max = knobs.max.or(entry.max);
            entry.concurrency = knobs.concurrency.or(entry.concurrency);
        }
        out.overrides.retain(|_, k| !k.is_empty());
        out
    }

    /// Checks every knob and the floors that keep the owner from locking everyone out
    /// (the environment may go lower: it is the operator's call).
    fn knob_sets(&self) -> Result<[KnobSet; 4], OverrideError> {
        let mut sets: [KnobSet; 4] = Default::default();
        for (tier, knobs) in &self.overrides {
            for knob in Knob::ALL {
                let Some(raw) = knobs.raw(knob) else { continue };
                let name = format!("{tier}.{}", knob.as_str().to_ascii_lowercase());
                if !tier.knobs().contains(&knob) {
                    return Err(OverrideError(format!(
                        "{name}: {tier} has no {} knob; its knobs are {}",
                        knob.as_str().to_ascii_lowercase(),
                        knob_names(*tier).to_ascii_lowercase()
                    )));
                }
                let value = KnobValue::parse(knob, &raw)
                    .map_err(|problem| OverrideError(format!("{name} {problem}")))?;
                let floor = match (tier, knob) {
                    (Tier::Auth, Knob::Max) => 5.0,
                    (Tier::Authed, Knob::Rate) => 1.0,
                    (Tier::Authed, Knob::Burst) => 10.0,
                    (Tier::Global, Knob::Rate) => 100.0,
                    (Tier::Global, Knob::Concurrency) => 32.0,
                    _ => 0.0,
                };
                let number = match value {
                    KnobValue::Rate(v) => v,
                    KnobValue::Count(n) => f64::from(n),
                    KnobValue::Window(_) => floor,
                };
                if number != 0.0 && number < floor || number > 100_000.0 {
                    return Err(OverrideError(format!(
                        "{name} must be 0 (off) or between {floor} and 100000, so no setting can lock everyone out"
                    )));
                }
                sets[tier.index()][knob as usize] = Some(value);
            }
        }
        Ok(sets)
    }

    /// Parses and checks the stored JSON.
    pub fn validate(&self) -> Result<(), OverrideError> {
        self.knob_sets().map(drop)
    }
}

/// Where an effective value came from, reported to the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Env,
    Override,
    Profile,
}

/// The limits in force: per tier its numbers and where each knob came from; `None` is off.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub profile: Profile,
    pub profile_source: Source,
    pub locked: bool,
    pub tiers: [Option<(TierLimits, [Source; 5])>; 4],
}

impl Effective {
    pub fn tier(&self, tier: Tier) -> Option<&TierLimits> {
        self.tiers[tier.index()].as_ref().map(|(l, _)| l)
    }

    pub fn is_off(&self) -> bool {
        self.profile == Profile::Off
    }

    /// The `rate_limit` block of `GET /v1/admin/settings`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut tiers = serde_json::Map::new();
        for tier in Tier::ALL {
            let value = match &self.tiers[tier.index()] {
                None => serde_json::json!({ "off": true }),
                Some((limits, sources)) => {
                    let mut block = serde_json::Map::new();
                    let mut source_map = serde_json::Map::new();
                    for knob in tier.knobs() {
                        let key = knob.as_str().to_ascii_lowercase();
                        block.insert(key.clone(), limits.get(*knob).to_json());
                        source_map.insert(key, serde_json::json!(sources[*knob as usize]));
                    }
                    block.insert("source".into(), source_map.into());
                    block.into()
                }
            };
            tiers.insert(tier.as_str().to_owned(), value);
        }
        serde_json::json!({
            "profile": self.profile,
            "profile_source": self.profile_source,
            "locked": self.locked,
            "off": self.is_off(),
            "tiers": tiers,
        })
    }
}

/// Layers the environment over the stored override (ignored when locked) over the profile.
/// A stored override that no longer validates is ignored with the error returned beside.
pub fn resolve(env: &EnvLayer, stored: &StoredRateLimit) -> (Effective, Option<OverrideError>) {
    let (stored_sets, error) = if env.locked {
        (Default::default(), None)
    } else {
        match stored.knob_sets() {
            Ok(sets) => (sets, None),
            Err(e) => (Default::default(), Some(e)),
        }
    };
    let stored_profile = if env.locked || error.is_some() {
        None
    } else {
        stored.profile
    };
    let (profile, profile_source) = match (env.profile, stored_profile) {
        (Some(p), _) => (p, Source::Env),
        (None, Some(p)) => (p, Source::Override),
        (None, None) => (Profile::Default, Source::Profile),
    };
    let mut tiers: [Option<(TierLimits, [Source; 5])>; 4] = Default::default();
    for tier in Tier::ALL {
        let Some(mut limits) = profile.limits(tier) else {
            continue;
        };
        let mut sources = [Source::Profile; 5];
        for knob in Knob::ALL {
            let i = knob as usize;
            let layered = env.knobs[tier.index()][i]
                .map(|v| (v, Source::Env))
                .or(stored_sets[tier.index()][i].map(|v| (v, Source::Override)));
            if let Some((value, source)) = layered {
                limits.set(knob, value);
                sources[i] = source;
            }
        }
        tiers[tier.index()] = Some((limits, sources));
    }
    let effective = Effective {
        profile,
        profile_source,
        locked: env.locked,
        tiers,
    };
    (effective, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<EnvLayer, EnvError> {
        EnvLayer::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn profiles_scale_the_default() {
        let auth = Profile::Default.limits(Tier::Auth).unwrap();
        assert_eq!((auth.max, auth.window.as_secs()), (30, 300));
        let strict = Profile::Strict.limits(Tier::Proxy).unwrap();
        assert_eq!(
            (strict.rate, strict.burst, strict.concurrency),
            (50.0, 500, 64)
        );
        let loose = Profile::Loose.limits(Tier::Global).unwrap();
        assert_eq!(loose.concurrency, 4096);
        assert!(Profile::Off.limits(Tier::Auth).is_none());
    }

    #[test]
    fn an_env_knob_beats_the_override_and_the_profile() {
        let env = env(&[
            ("AGENT_VAULT_RATELIMIT_PROFILE", "strict"),
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "3"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "2s"),
        ])
        .unwrap();
        let stored: StoredRateLimit = serde_json::from_str(
            r#"{"profile":"loose","overrides":{"AUTH":{"max":40},"PROXY":{"rate":7}}}"#,
        )
        .unwrap();
        let (eff, err) = resolve(&env, &stored);
        assert!(err.is_none());
        assert_eq!(
            (eff.profile, eff.profile_source),
            (Profile::Strict, Source::Env)
        );
        let (auth, sources) = eff.tiers[0].unwrap();
        assert_eq!((auth.max, auth.window), (3, Duration::from_secs(2)));
        assert_eq!(sources[Knob::Max as usize], Source::Env);
        let (proxy, sources) = eff.tiers[1].unwrap();
        assert_eq!(proxy.rate, 7.0);
        assert_eq!(sources[Knob::Rate as usize], Source::Override);
        assert_eq!(proxy.burst, 500, "strict profile");
    }

    #[test]
    fn a_rate_too_slow_to_mean_a_limit_is_refused_and_the_slowest_kept_works() {
        for rate in ["1e-12", "1e-25", "0.0009"] {
            let stored: StoredRateLimit = serde_json::from_str(&format!(
                r#"{{"overrides":{{"PROXY":{{"rate":{rate},"burst":100000}}}}}}"#
            ))
            .unwrap();
            let err = stored.validate().unwrap_err().0;
            assert!(err.contains("from 0.001"), "{rate}: {err}");
        }
        let slowest = TierLimits {
            rate: MIN_RATE,
            burst: 100_000,
            ..Profile::Default.limits(Tier::Proxy).unwrap()
        };
        let quota = super::super::rate_quota(&slowest).unwrap();
        let limiter = governor::RateLimiter::direct(quota);
        assert!(limiter.check().is_ok());
    }

    #[test]
    fn the_lock_ignores_the_owner() {
        let env = env(&[("AGENT_VAULT_RATELIMIT_LOCK", "true")]).unwrap();
        let stored: StoredRateLimit =
            serde_json::from_str(r#"{"profile":"off","overrides":{"AUTH":{"max":40}}}"#).unwrap();
        let (eff, _) = resolve(&env, &stored);
        assert_eq!(eff.profile, Profile::Default);
        assert_eq!(eff.tier(Tier::Auth).unwrap().max, 30);
    }

    #[test]
    fn off_turns_every_tier_off() {
        let env = env(&[("AGENT_VAULT_RATELIMIT_PROFILE", "OFF")]).unwrap();
        let (eff, _) = resolve(&env, &StoredRateLimit::default());
        assert!(eff.is_off());
        assert!(Tier::ALL.iter().all(|t| eff.tier(*t).is_none()));
    }

    #[test]
    fn bad_environment_names_the_variable() {
        for (var, value, needle) in [
            ("AGENT_VAULT_RATELIMIT_PROFILE", "medium", "default, strict"),
            ("AGENT_VAULT_RATELIMIT_LOCK", "maybe", "true or false"),
            ("AGENT_VAULT_RATELIMIT_AUTH_RATE", "5", "AUTH has no RATE"),
            ("AGENT_VAULT_RATELIMIT_PROXY_RATEE", "5", "unknown variable"),
            (
                "AGENT_VAULT_RATELIMIT_AUTH_WINDOW",
                "5 minutes",
                "not a window",
            ),
            ("AGENT_VAULT_RATELIMIT_PROXY_BURST", "0", "at least 1"),
            (
                "AGENT_VAULT_RATELIMIT_GLOBAL_RATE",
                "-1",
                "requests per second",
            ),
            ("AGENT_VAULT_RATELIMIT_PROXY_RATE", "1e-12", "from 0.001"),
        ] {
            let err = env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{var}={value}")), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn owner_overrides_are_checked_against_floors() {
        let bad: StoredRateLimit =
            serde_json::from_str(r#"{"overrides":{"GLOBAL":{"concurrency":3}}}"#).unwrap();
        assert!(bad.validate().unwrap_err().0.contains("GLOBAL.concurrency"));
        let bad: StoredRateLimit =
            serde_json::from_str(r#"{"overrides":{"AUTHED":{"window":"5m"}}}"#).unwrap();
        assert!(bad.validate().unwrap_err().0.contains("no window knob"));
        let off: StoredRateLimit =
            serde_json::from_str(r#"{"overrides":{"AUTH":{"max":0}}}"#).unwrap();
        off.validate().unwrap();
        assert!(serde_json::from_str::<StoredRateLimit>(r#"{"overrides":{"NOPE":{}}}"#).is_err());
    }

    #[test]
    fn merging_keeps_what_is_not_changed() {
        let a: StoredRateLimit = serde_json::from_str(
            r#"{"profile":"strict","overrides":{"AUTH":{"max":9,"window":"1m"}}}"#,
        )
        .unwrap();
        let b: StoredRateLimit =
            serde_json::from_str(r#"{"overrides":{"AUTH":{"max":12}}}"#).unwrap();
        let m = a.merged(&b);
        assert_eq!(m.profile, Some(Profile::Strict));
        assert_eq!(m.overrides[&Tier::Auth].max, Some(12));
        assert_eq!(m.overrides[&Tier::Auth].window.as_deref(), Some("1m"));
    }

    #[test]
    fn windows_parse_and_print() {
        assert_eq!(parse_window("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_window("1h30m").unwrap().as_secs(), 5400);
        assert!(parse_window("0s").is_err());
        assert!(parse_window("2d").is_err());
        assert!(parse_window("25h").is_err());
        assert_eq!(format_window(Duration::from_secs(300)), "5m");
        assert_eq!(format_window(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_window(Duration::from_secs(2)), "2s");
    }
}
