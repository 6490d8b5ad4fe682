//! Rate limits: four tiers that keep one client, account, token or agent from taking the
//! instance down or guessing its way in.
//!
//! - `AUTH`: anonymous sign-in and redemption routes (API and web), and failed proxy
//!   authentication; keyed per client address and also per target account or token.
//! - `PROXY`: the data path, per principal (agent, or each vault-scoped token) and vault: a
//!   token bucket and a ceiling on requests in flight.
//! - `AUTHED`: authenticated API calls, per principal (user, agent, or each vault-scoped token).
//! - `GLOBAL`: the API listener's requests per second and in flight; the proxy listener's in
//!   flight only (a busy data path is never cut by an RPS cap meant for the API).
//!
//! [`config`] decides the numbers (profile, environment, owner override); [`table`] keeps the
//! per-key budgets in bounded tables; [`http`] answers `429` and gates the API port. The
//! limits in force can be swapped at run time (an owner's change applies at once); the hot
//! path pays a read lock, one shard lock and one atomic update per request.
//!
//! Stance: a refusal says which tier refused and when to come back, never whether an account
//! exists (login and verify are charged per address before anything is looked up).

pub mod config;
pub mod http;
pub mod table;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::Quota;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use config::TierLimits;
pub use config::{Effective, EnvError, EnvLayer, OverrideError, Profile, StoredRateLimit, Tier};
use table::{Bucket, DEFAULT_CAPACITY, Outcome, Table};

/// How long a request waits for a free slot before a concurrency ceiling refuses it: long
/// enough to absorb a burst, short enough that a client is told instead of hanging.
const PROXY_SLOT_WAIT: Duration = Duration::from_secs(2);
const GLOBAL_SLOT_WAIT: Duration = Duration::from_millis(500);

/// A refusal: which tier, what its limit is, when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub tier: Tier,
    pub limit: u32,
    pub retry_after: Duration,
    /// A ceiling on requests in flight refused (rather than a rate).
    pub concurrency: bool,
    /// That ceiling is a share: one person's of the proxy port (PROXY), one client address's
    /// of the API port (GLOBAL).
    pub shared: bool,
}

impl Refusal {
    fn from_outcome(tier: Tier, outcome: Outcome) -> Result<u32, Refusal> {
        match outcome {
            Outcome::Allowed { remaining, .. } => Ok(remaining),
            Outcome::Refused { limit, retry_after } => Err(Refusal {
                tier,
                limit,
                retry_after,
                concurrency: false,
                shared: false,
            }),
        }
    }

    fn busy(tier: Tier, limit: u32) -> Refusal {
        Refusal {
            tier,
            limit,
            retry_after: Duration::from_secs(1),
            concurrency: true,
            shared: false,
        }
    }

    fn busy_share(tier: Tier, limit: u32) -> Refusal {
        Refusal {
            shared: true,
            ..Refusal::busy(tier, limit)
        }
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// The request-log code for a refused proxy request.
    pub fn code(&self) -> &'static str {
        if self.concurrency {
            "concurrency_limited"
        } else {
            "rate_limited"
        }
    }

    pub fn message(&self) -> String {
        let wait = self.retry_after_secs();
        match (self.tier, self.concurrency) {
            (Tier::Proxy, true) if self.shared => format!(
                "the tokens and agents of the person behind this one already have {} requests in flight; retry when some finish",
                self.limit
            ),
            (Tier::Global, true) if self.shared => format!(
                "this address already has {} requests in flight to the server; retry in {wait} s",
                self.limit
            ),
            (Tier::Auth, _) => format!(
                "too many attempts from this address or for this account or link; try again in {wait} s"
            ),
            (Tier::Proxy, false) => format!(
                "this token has sent more than {} requests in a burst to this vault; slow down and retry in {wait} s",
                self.limit
            ),
            (Tier::Proxy, true) => format!(
                "this token already has {} requests in flight to this vault; retry when some finish",
                self.limit
            ),
            (Tier::Authed, _) => {
                format!("too many API calls from this login or token; retry in {wait} s")
            }
            (Tier::Global, true) => format!(
                "the server has {} requests in flight; retry in {wait} s",
                self.limit
            ),
            (Tier::Global, false) => {
                format!("the server is over its request rate; retry in {wait} s")
            }
        }
    }
}

/// A request that passed: what `X-RateLimit-*` report, and slots held until it finishes.
#[derive(Debug, Default)]
pub struct Admitted {
    pub limit: u32,
    pub remaining: u32,
    pub slots: Vec<OwnedSemaphorePermit>,
}

/// The budgets of the limits in force; rebuilt when the limits change.
struct Active {
    effective: Effective,
    auth: Option<Arc<Table>>,
    proxy: Option<Arc<Table>>,
    authed: Option<Arc<Table>>,
    global_rate: Option<Arc<Bucket>>,
    api_inflight: Option<Arc<Semaphore>>,
    proxy_inflight: Option<Arc<Semaphore>>,
    global_concurrency: u32,
    /// Each client address's share of `api_inflight`, and each person's of `proxy_inflight`.
    api_per_address: Option<Arc<Table>>,
    proxy_per_person: Option<Arc<Table>>,
}

/// What one client address may hold of the API port's requests in flight, and one person
/// (with their tokens and the agents they invited) of the proxy port's: a share, so that no
/// one takes all. A red team held all 1,024 API slots from one address, anonymously, with
/// login bodies it never sent; and all of the proxy port's with tokens of its own vaults,
/// starving every other vault's agents.
fn address_share(global: u32) -> u32 {
    (global / 8).max(1)
}

fn person_share(global: u32) -> u32 {
    (global / 4).max(1)
}

fn rate_quota(limits: &TierLimits) -> Option<Quota> {
    if limits.rate <= 0.0 {
        return None;
    }
    // Rates are checked to be at least `config::MIN_RATE`; should one slip past, no quota
    // beats a panic on every request.
    let period = Duration::try_from_secs_f64(1.0 / limits.rate).ok()?;
    let burst = NonZeroU32::new(limits.burst.max(1))?;
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

/// `max` attempts per `window`: a full budget of `max`, one back every `window / max`.
fn window_quota(limits: &TierLimits) -> Option<Quota> {
    let max = NonZeroU32::new(limits.max)?;
    Quota::with_period(limits.window / max.get()).map(|q| q.allow_burst(max))
}

impl Active {
    /// Budgets for `effective`; a tier whose numbers did not change keeps its budgets.
    fn build(effective: Effective, previous: Option<&Active>, capacity: usize) -> Self {
        let kept = |tier: Tier| previous.filter(|p| p.effective.tier(tier) == effective.tier(tier));
        let auth = match kept(Tier::Auth) {
            Some(p) => p.auth.clone(),
            None => effective
                .tier(Tier::Auth)
                .and_then(window_quota)
                .map(|q| Arc::new(Table::new(Some(q), 0, capacity))),
        };
        let proxy = match kept(Tier::Proxy) {
            Some(p) => p.proxy.clone(),
            None => effective.tier(Tier::Proxy).and_then(|l| {
                let quota = rate_quota(l);
                (quota.is_some() || l.concurrency > 0)
                    .then(|| Arc::new(Table::new(quota, l.concurrency, capacity)))
            }),
        };
        let authed = match kept(Tier::Authed) {
            Some(p) => p.authed.clone(),
            None => effective
                .tier(Tier::Authed)
                .and_then(rate_quota)
                .map(|q| Arc::new(Table::new(Some(q), 0, capacity))),
        };
        let global_concurrency = effective.tier(Tier::Global).map_or(0, |g| g.concurrency);
        let (global_rate, api_inflight, proxy_inflight, api_per_address, proxy_per_person) =
            match kept(Tier::Global) {
                Some(p) => (
                    p.global_rate.clone(),
                    p.api_inflight.clone(),
                    p.proxy_inflight.clone(),
                    p.api_per_address.clone(),
                    p.proxy_per_person.clone(),
                ),
                None => {
                    let on = global_concurrency > 0;
                    let ceiling =
                        || on.then(|| Arc::new(Semaphore::new(global_concurrency as usize)));
                    let shares =
                        |share: u32| on.then(|| Arc::new(Table::new(None, share, capacity)));
                    (
                        effective
                            .tier(Tier::Global)
                            .and_then(rate_quota)
                            .map(|q| Arc::new(Bucket::new(Some(q), 0))),
                        ceiling(),
                        ceiling(),
                        shares(address_share(global_concurrency)),
                        shares(person_share(global_concurrency)),
                    )
                }
            };
        Active {
            effective,
            auth,
            proxy,
            authed,
            global_rate,
            api_inflight,
            proxy_inflight,
            global_concurrency,
            api_per_address,
            proxy_per_person,
        }
    }
}

/// Addresses refused for failing proxy authentication too often, until when. Only failures
/// are charged (an agent's good requests never are), so the check before authenticating is a
/// read of this small map, skipped entirely while it is empty.
struct Penalties {
    any: AtomicBool,
    until: Mutex<lru::LruCache<IpAddr, (Instant, u32)>>,
}

/// The rate limits of one server.
pub struct Limits {
    env: EnvLayer,
    capacity: usize,
    active: RwLock<Arc<Active>>,
    penalties: Penalties,
}

impl Limits {
    /// The limits from the environment and the owner's stored override. A stored override that
    /// no longer validates (the floors changed) is ignored; the error is returned to be logged.
    pub fn new(env: EnvLayer, stored: &StoredRateLimit) -> (Self, Option<OverrideError>) {
        Self::with_capacity(env, stored, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(
        env: EnvLayer,
        stored: &StoredRateLimit,
        capacity: usize,
    ) -> (Self, Option<OverrideError>) {
        let (effective, error) = config::resolve(&env, stored);
        let active = Active::build(effective, None, capacity);
        let limits = Limits {
            env,
            capacity,
            active: RwLock::new(Arc::new(active)),
            penalties: Penalties {
                any: AtomicBool::new(false),
                until: Mutex::new(lru::LruCache::new(
                    std::num::NonZeroUsize::new(capacity.max(1))
                        .unwrap_or(std::num::NonZeroUsize::MIN),
                )),
            },
        };
        (limits, error)
    }

    /// No limits at all (tests and tools that build a server by hand).
    pub fn off() -> Self {
        Self::new(EnvLayer::off(), &StoredRateLimit::default()).0
    }

    pub fn locked(&self) -> bool {
        self.env.locked
    }

    fn active(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(active) => active.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn effective(&self) -> Effective {
        self.active().effective.clone()
    }

    /// What `stored` would give, without applying it.
    pub fn preview(&self, stored: &StoredRateLimit) -> Result<Effective, OverrideError> {
        stored.validate()?;
        Ok(config::resolve(&self.env, stored).0)
    }

    /// Applies an owner's override at once. Tiers whose numbers changed start with fresh
    /// budgets.
    pub fn apply(&self, stored: &StoredRateLimit) -> Result<Effective, OverrideError> {
        let effective = self.preview(stored)?;
        let previous = self.active();
        if previous.effective == effective {
            return Ok(effective);
        }
        let active = Arc::new(Active::build(
            effective.clone(),
            Some(&previous),
            self.capacity,
        ));
        match self.active.write() {
            Ok(mut slot) => *slot = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
        Ok(effective)
    }

    /// AUTH: one attempt charged to each key in order (the client address first, then the
    /// account or token); the first exhausted one refuses.
    pub fn auth(&self, keys: &[&str]) -> Result<Admitted, Refusal> {
        let active = self.active();
        let Some(table) = &active.auth else {
            return Ok(Admitted::default());
        };
        let mut admitted = Admitted::default();
        for key in keys {
            let bucket = table.bucket(key);
            let outcome = bucket.check();
            let remaining = Refusal::from_outcome(Tier::Auth, outcome)?;
            if let Outcome::Allowed { limit, .. } = outcome
                && (admitted.limit == 0 || remaining < admitted.remaining)
            {
                admitted.limit = limit;
                admitted.remaining = remaining;
            }
        }
        Ok(admitted)
    }

    /// AUTHED: one call charged to the principal.
    pub fn authed(&self, principal: &str) -> Result<Admitted, Refusal> {
        let active = self.active();
        let Some(table) = &active.authed else {
            return Ok(Admitted::default());
        };
        match table.check(principal) {
            Outcome::Allowed { limit, remaining } => Ok(Admitted {
                limit,
                remaining,
                slots: Vec::new(),
            }),
            outcome => Refusal::from_outcome(Tier::Authed, outcome).map(|_| Admitted::default()),
        }
    }

    /// PROXY: one request charged to `key` (principal and vault), and a slot among its
    /// requests in flight and among its person's (`share_key`), held by the caller until the
    /// response is finished.
    pub async fn proxy(&self, key: &str, share_key: &str) -> Result<Admitted, Refusal> {
        let active = self.active();
        let mut admitted = charge_proxy_key(&active, key).await?;
        if let Some(shares) = &active.proxy_per_person {
            let share = person_share(active.global_concurrency);
            match shares.bucket(share_key).slot(PROXY_SLOT_WAIT).await {
                Ok(slot) => admitted.slots.extend(slot),
                Err(()) => return Err(Refusal::busy_share(Tier::Proxy, share)),
            }
        }
        Ok(admitted)
    }

    /// GLOBAL on the API listener: the request rate, then a slot among the requests in flight
    /// of `address` (the client's, when known) and among all.
    pub async fn global_api(
        &self,
        counts_rate: bool,
        address: Option<&str>,
    ) -> Result<Admitted, Refusal> {
        let active = self.active();
        let mut admitted = Admitted::default();
        if counts_rate && let Some(bucket) = &active.global_rate {
            admitted.remaining = Refusal::from_outcome(Tier::Global, bucket.check())?;
        }
        if let (Some(shares), Some(address)) = (&active.api_per_address, address) {
            let share = address_share(active.global_concurrency);
            match shares.bucket(address).slot(GLOBAL_SLOT_WAIT).await {
                Ok(slot) => admitted.slots.extend(slot),
                Err(()) => return Err(Refusal::busy_share(Tier::Global, share)),
            }
        }
        if let Some(ceiling) = &active.api_inflight {
            admitted.slots.push(
                global_slot(ceiling)
                    .await
                    .ok_or(Refusal::busy(Tier::Global, active.global_concurrency))?,
            );
        }
        Ok(admitted)
    }

    /// GLOBAL on the proxy listener: a slot among requests in flight (no rate).
    pub async fn global_proxy(&self) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        let active = self.active();
        match &active.proxy_inflight {
            None => Ok(None),
            Some(ceiling) => global_slot(ceiling)
                .await
                .map(Some)
                .ok_or(Refusal::busy(Tier::Global, active.global_concurrency)),
        }
    }

    /// Before authenticating a proxy client: refused while its address is in the penalty box.
    pub fn proxy_auth_gate(&self, peer: IpAddr) -> Result<(), Refusal> {
        if !self.penalties.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut map = match self.penalties.until.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get(&peer).copied() {
            Some((until, limit)) if until > Instant::now() => Err(Refusal {
                tier: Tier::Auth,
                limit,
                retry_after: until - Instant::now(),
                concurrency: false,
                shared: false,
            }),
            Some(_) => {
                map.pop(&peer);
                if map.is_empty() {
                    self.penalties.any.store(false, Ordering::Relaxed);
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A proxy client failed to authenticate: charged to its address in the AUTH tier; once
    /// the budget is spent the address waits until it refills.
    pub fn proxy_auth_failed(&self, peer: IpAddr) {
        let key = format!("proxy-auth:{}", http::address_key(peer));
        let (limit, wait) = match self.auth(&[&key]) {
            // The last attempt of the budget: the next one must already be refused.
            Ok(admitted) if admitted.limit > 0 && admitted.remaining == 0 => {
                let interval = self
                    .effective()
                    .tier(Tier::Auth)
                    .map_or(Duration::from_secs(1), |l| l.window / l.max.max(1));
                (admitted.limit, interval)
            }
            Ok(_) => return,
            Err(refusal) => (refusal.limit, refusal.retry_after),
        };
        let mut map = match self.penalties.until.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.put(peer, (Instant::now() + wait, limit));
        self.penalties.any.store(true, Ordering::Relaxed);
    }
}

/// PROXY for one key: its rate, and a slot among its requests in flight.
async fn charge_proxy_key(active: &Active, key: &str) -> Result<Admitted, Refusal> {
    let Some(table) = &active.proxy else {
        return Ok(Admitted::default());
    };
    let bucket = table.bucket(key);
    let outcome = bucket.check();
    let remaining = Refusal::from_outcome(Tier::Proxy, outcome)?;
    let limit = match outcome {
        Outcome::Allowed { limit, .. } => limit,
        Outcome::Refused { .. } => 0,
    };
    let mut admitted = Admitted {
        limit,
        remaining,
        slots: Vec::new(),
    };
    if bucket.has_ceiling() {
        let ceiling = active
            .effective
            .tier(Tier::Proxy)
            .map_or(0, |l| l.concurrency);
        match bucket.slot(PROXY_SLOT_WAIT).await {
            Ok(Some(slot)) => admitted.slots.push(slot),
            Ok(None) => {}
            Err(()) => return Err(Refusal::busy(Tier::Proxy, ceiling)),
        }
    }
    Ok(admitted)
}

async fn global_slot(ceiling: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = ceiling.clone().try_acquire_owned() {
        return Some(permit);
    }
    tokio::time::timeout(GLOBAL_SLOT_WAIT, ceiling.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> Limits {
        let env =
            EnvLayer::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        Limits::new(env, &StoredRateLimit::default()).0
    }

    #[test]
    fn auth_charges_the_address_and_the_account() {
        let l = limits(&[
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "2"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "1h"),
        ]);
        l.auth(&["ip:1", "acct:a"]).unwrap();
        l.auth(&["ip:2", "acct:a"]).unwrap();
        let refusal = l.auth(&["ip:3", "acct:a"]).unwrap_err();
        assert_eq!((refusal.tier, refusal.limit), (Tier::Auth, 2));
        assert!(refusal.retry_after_secs() > 1000, "one back every 30 min");
        l.auth(&["ip:3", "acct:b"]).unwrap();
    }

    #[test]
    fn an_applied_override_takes_effect_at_once_unless_locked() {
        let l = limits(&[]);
        let stored: StoredRateLimit =
            serde_json::from_str(r#"{"overrides":{"AUTHED":{"rate":1,"burst":10}}}"#).unwrap();
        l.apply(&stored).unwrap();
        for _ in 0..10 {
            l.authed("user:1").unwrap();
        }
        assert!(l.authed("user:1").is_err());

        let locked = limits(&[("AGENT_VAULT_RATELIMIT_LOCK", "true")]);
        locked.apply(&stored).unwrap();
        for _ in 0..11 {
            locked.authed("user:1").unwrap();
        }
    }

    #[test]
    fn proxy_auth_failures_put_an_address_in_the_penalty_box() {
        let l = limits(&[
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "2"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "1h"),
        ]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        l.proxy_auth_gate(peer).unwrap();
        l.proxy_auth_failed(peer);
        l.proxy_auth_gate(peer).unwrap();
        l.proxy_auth_failed(peer);
        assert_eq!(l.proxy_auth_gate(peer).unwrap_err().tier, Tier::Auth);
        l.proxy_auth_gate("127.0.0.2".parse().unwrap()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_holds_only_its_share_of_the_api_port() {
        let l = limits(&[("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "16")]);
        let held: Vec<_> =
            futures_util::future::join_all((0..2).map(|_| l.global_api(true, Some("ip:10.0.0.1"))))
                .await;
        assert!(held.iter().all(Result::is_ok));
        let refused = l.global_api(true, Some("ip:10.0.0.1")).await.unwrap_err();
        assert!(refused.concurrency && refused.shared, "{refused:?}");
        assert_eq!(refused.limit, 2);
        assert!(
            refused.message().contains("this address"),
            "{}",
            refused.message()
        );
        l.global_api(true, Some("ip:10.0.0.2")).await.unwrap();
        drop(held);
        l.global_api(true, Some("ip:10.0.0.1")).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn one_person_holds_only_their_share_of_the_proxy_port() {
        let l = limits(&[("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "8")]);
        // Each token is under its own ceiling, in whichever vault; together they meet the
        // person's.
        let first = l.proxy("token:a/v", "user:1").await.unwrap();
        let second = l.proxy("token:b/w", "user:1").await.unwrap();
        let refused = l.proxy("token:c/x", "user:1").await.unwrap_err();
        assert!(refused.concurrency && refused.shared, "{refused:?}");
        assert!(
            refused.message().contains("person"),
            "{}",
            refused.message()
        );
        l.proxy("token:d/v", "user:2").await.unwrap();
        drop((first, second));
        l.proxy("token:c/x", "user:1").await.unwrap();
    }

    #[tokio::test]
    async fn off_admits_everything() {
        let l = Limits::off();
        for _ in 0..10_000 {
            l.auth(&["ip:1"]).unwrap();
            l.proxy("k", "v").await.unwrap();
        }
        assert!(
            l.global_api(true, Some("ip:1"))
                .await
                .unwrap()
                .slots
                .is_empty()
        );
    }
}
