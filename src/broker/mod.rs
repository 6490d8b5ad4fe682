//! The broker: the policy core shared by both ingresses (the MITM forward proxy and the
//! explicit `/proxy/{host}/…` endpoint). It authenticates a proxy token, picks the vault,
//! matches a service, plans the credential injection and substitutions, and records the
//! request-log row. Transport (TLS, HTTP, streaming) lives in `proxy`.
//!
//! Hot path: per-vault snapshots (services, decrypted credentials, policy) and resolved
//! proxy tokens are kept in memory. A successful change through the management API drops
//! what it made stale — one vault's snapshot, one token, every token, or (for a change not
//! classified) everything — and nothing else, so a login or a minted token leaves every
//! vault warm; a generation counter guards against a load racing a change. A change takes
//! effect on the next request while a warm request touches no database, does no decryption
//! and mints no certificate.

mod audit;
mod error;
mod plan;
pub mod proxy_auth;
pub mod retention;
pub mod rewrite;
pub mod scrub;

use std::collections::HashMap;

use crate::ceilings::{ECHO_CHARS, excerpt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use audit::{AuditLog, trim as trim_request_log};
pub use error::{BROKER_ERROR_HEADER, BrokerError, Fault};
pub use plan::{Plan, ResolvedSubstitution, plan};
pub use proxy_auth::ProxyCredentials;
pub use retention::{Retention, RetentionEnv};

use crate::crypto::{Key, SecretString};
use crate::services::Service;
use crate::store::sessions::{self, SessionKind};
use crate::store::vaults::{self, ActorType};
use crate::store::{Store, VaultRole, credentials, now};

/// What a vault does with a request to a host none of its services match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedPolicy {
    /// Forward it unchanged, without credentials (the default).
    Forward,
    /// Refuse it with 403 `forbidden`.
    Deny,
}

impl UnmatchedPolicy {
    pub const SETTING: &'static str = "unmatched_host_policy";

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "forward" => Some(Self::Forward),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Deny => "deny",
        }
    }
}

/// Everything the data path needs about one vault, held in memory.
pub struct VaultSnapshot {
    pub vault_id: String,
    pub vault_name: String,
    pub services: Vec<Service>,
    pub credentials: HashMap<String, SecretString>,
    pub policy: UnmatchedPolicy,
    /// Per service (same order): its plan, built once here rather than per request.
    pub plans: Vec<plan::Prepared>,
    /// The plan for a host no service matches (under the `forward` policy).
    pub unmatched: Arc<Plan>,
}

impl VaultSnapshot {
    pub fn new(
        vault_id: String,
        vault_name: String,
        services: Vec<Service>,
        credentials: HashMap<String, SecretString>,
        policy: UnmatchedPolicy,
    ) -> Self {
        let plans = services
            .iter()
            .map(|service| {
                let scrubber = service
                    .scrub_responses
                    .then(|| vault_scrubber(&services, &credentials, Some(service)))
                    .flatten();
                plan::prepare(&vault_name, service, &credentials, scrubber)
            })
            .collect();
        let scrubber = vault_scrubber(&services, &credentials, None);
        Self {
            vault_id,
            vault_name,
            services,
            credentials,
            policy,
            plans,
            unmatched: Arc::new(Plan {
                scrubber,
                ..Plan::default()
            }),
        }
    }
}

/// Values shorter than this are scrubbed only from the responses of the service that sends
/// them. See [`vault_scrubber`].
pub const GUESSABLE_BELOW: usize = 20;

/// The scrubber for the responses of `own` (a service that has not opted out), or of hosts no
/// service matches (`None`): every credential value `own` sends, and every value any other
/// service of the vault sends that is at least [`GUESSABLE_BELOW`] characters long (not bytes:
/// a short password in another script is no harder to guess). A value that
/// one service's upstream stored can be read back through another route of that host, or
/// through a host no service matches, so scanning only the matched service's own values would
/// let it through. But a scrubber also answers "is this the secret?" for whatever an upstream
/// reflects, and the agent runs upstreams of its own (any host the vault forwards to): one
/// that echoed a list of guesses read which came back redacted, at hundreds of thousands of
/// guesses per request. Against a long machine-made key that answer is worthless; against a
/// password or user name it is a dictionary attack. So short values, the guessable kind, are
/// scrubbed only where their own service's upstream, which the agent does not run, answers.
fn vault_scrubber(
    services: &[Service],
    credentials: &HashMap<String, SecretString>,
    own: Option<&Service>,
) -> Option<Arc<scrub::Scrubber>> {
    let value = |key: &str| credentials.get(key).map(SecretString::expose);
    let mine = |service: &Service| own.is_some_and(|own| std::ptr::eq(own, service));
    let keep =
        |service: &Service, value: &str| mine(service) || value.chars().count() >= GUESSABLE_BELOW;
    let values: std::collections::BTreeSet<&str> = services
        .iter()
        .flat_map(|service| {
            service
                .credential_keys()
                .into_iter()
                .filter_map(value)
                .filter(move |v| keep(service, v))
        })
        .collect();
    let basic = services.iter().filter_map(|service| match &service.auth {
        crate::services::Auth::Basic { username, password } => value(username)
            .zip(value(password))
            .filter(|(_, password)| keep(service, password)),
        _ => None,
    });
    scrub::Scrubber::new(values, basic).map(Arc::new)
}

/// Who is proxying, into which vault.
#[derive(Debug, Clone)]
pub struct Scope {
    pub vault_id: Arc<str>,
    pub vault_name: String,
    pub role: VaultRole,
    /// Who acts: `agent` (its own token), the `user` or `agent` who minted a vault-scoped
    /// token, or `scoped` when that is unknown; and their id.
    pub actor_type: &'static str,
    pub actor_id: Option<Arc<str>>,
    pub expires_at: Option<i64>,
    /// The PROXY rate-limit key: the agent, or this very vault-scoped token (never the user
    /// who minted it: two `vault run`s have two budgets), and the vault.
    pub limit_key: Arc<str>,
    /// Whose share of the proxy port's requests in flight this takes: the person behind it
    /// (the user, or the person who invited the agent), whatever vault or token it uses.
    pub share_key: Arc<str>,
}

/// The person behind an agent, for the proxy port's shares: whoever invited it (or the agent
/// itself, when nobody did). A user is their own person. A red team held the whole port with
/// tokens of four vaults of its own; shares by vault did not stop one person.
fn agent_share_key(
    conn: &crate::store::Connection,
    agent_id: &str,
) -> crate::store::Result<Arc<str>> {
    let inviter = crate::store::agents::by_id(conn, agent_id)?.and_then(|a| a.created_by);
    Ok(match inviter {
        Some(inviter) => format!("user:{inviter}").into(),
        None => format!("agent:{agent_id}").into(),
    })
}

pub struct Broker {
    store: Arc<Store>,
    dek: Arc<Key>,
    /// The externally reachable API URL, for hints in error bodies.
    pub base_url: String,
    pub audit: AuditLog,
    generation: AtomicU64,
    snapshots: Cache<String, Arc<VaultSnapshot>>,
    /// Keyed by [`ProxyCredentials`]' cache key (token hash and the vault it names).
    scopes: Cache<String, Arc<Scope>>,
}

/// A map of loaded values. An entry stays until it is invalidated; a value is stored only if
/// no invalidation happened while it was being loaded (the broker's generation counter), so
/// a load that raced a change cannot put stale data back.
struct Cache<K, V> {
    map: RwLock<HashMap<K, V, foldhash::fast::RandomState>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::default()),
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.map.read().ok()?.get(key).cloned()
    }

    /// Stores a value loaded during `generation`, unless a change happened since.
    fn put(&self, key: K, value: V, generation: u64, current: &AtomicU64) {
        if let Ok(mut map) = self.map.write()
            && current.load(Ordering::SeqCst) == generation
        {
            map.insert(key, value);
        }
    }

    fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        if let Ok(mut map) = self.map.write() {
            map.retain(keep);
        }
    }
}

/// What a successful management change can make stale in the broker's caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Nothing the data path caches (a login, minting a new token, a proposal).
    Nothing,
    /// One token's resolved scope (logout: the caller's own token hash).
    Token(String),
    /// Every resolved token (grants, roles, leases), but no vault's snapshot.
    Scopes,
    /// One vault's snapshot (its credentials, services or settings), by vault name.
    Vault(String),
    /// Everything: the safe answer for a change not classified more precisely.
    Everything,
}

impl Invalidation {
    /// The change as a notification payload for other replicas (`None`: nothing to tell).
    pub fn encode(&self) -> Option<String> {
        match self {
            Self::Nothing => None,
            Self::Token(hash) => Some(format!("token:{hash}")),
            Self::Scopes => Some("scopes".into()),
            Self::Vault(name) => Some(format!("vault:{name}")),
            Self::Everything => Some("everything".into()),
        }
    }

    /// A payload from [`Self::encode`]; anything unknown (a newer replica's) means everything.
    pub fn decode(payload: &str) -> Self {
        match payload.split_once(':') {
            Some(("token", hash)) => Self::Token(hash.to_owned()),
            Some(("vault", name)) => Self::Vault(name.to_owned()),
            _ if payload == "scopes" => Self::Scopes,
            _ => Self::Everything,
        }
    }
}

impl Broker {
    pub fn new(store: Arc<Store>, dek: Arc<Key>, base_url: String, audit: AuditLog) -> Self {
        Self {
            store,
            dek,
            base_url,
            audit,
            generation: AtomicU64::new(0),
            snapshots: Cache::new(),
            scopes: Cache::new(),
        }
    }

    /// Forgets every cached snapshot and token.
    pub fn invalidate(&self) {
        self.apply(Invalidation::Everything);
    }

    /// Forgets what `change` made stale and keeps every other entry warm. The generation is
    /// bumped first, so a load in flight cannot store what it read before the change.
    pub fn apply(&self, change: Invalidation) {
        if change == Invalidation::Nothing {
            return;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        match change {
            Invalidation::Nothing => {}
            Invalidation::Token(hash) => self.scopes.retain(|key, _| !key.starts_with(&hash)),
            Invalidation::Scopes => self.scopes.retain(|_, _| false),
            Invalidation::Vault(name) => self.snapshots.retain(|_, s| s.vault_name != name),
            Invalidation::Everything => {
                self.scopes.retain(|_, _| false);
                self.snapshots.retain(|_, _| false);
            }
        }
    }

    /// Applies `change` here and, on a shared PostgreSQL database, tells the other replicas
    /// (`NOTIFY`) before returning, so their next request sees it too. A notification that
    /// cannot be sent is logged; the replicas' periodic refresh still bounds the staleness.
    pub async fn apply_everywhere(&self, change: Invalidation) {
        let payload = change.encode();
        self.apply(change);
        let Some(payload) = payload else { return };
        if self.store.postgres().is_none() {
            return;
        }
        let store = self.store.clone();
        let sent = tokio::task::spawn_blocking(move || match store.postgres() {
            Some(pg) => pg.notify(&payload),
            None => Ok(()),
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!(
                "could not notify the other replicas of a change; they pick it up at their next cache refresh"
            );
        }
    }

    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Store, &Key) -> Result<R, BrokerError> + Send + 'static,
    ) -> Result<R, BrokerError> {
        let (store, dek) = (self.store.clone(), self.dek.clone());
        tokio::task::spawn_blocking(move || work(&store, &dek))
            .await
            .map_err(|_| BrokerError::internal("the broker's database task failed"))?
    }

    /// Resolves proxy credentials to a scope (cached until the next change).
    pub async fn authenticate(
        &self,
        credentials: &ProxyCredentials,
    ) -> Result<Arc<Scope>, BrokerError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let cached = self.scopes.get(credentials.cache_key.as_str());
        crate::metrics::global().cache_lookup("token", cached.is_some());
        if let Some(scope) = cached {
            return check_expiry(scope);
        }
        let hash = credentials.token_hash().to_owned();
        let hint = credentials.vault.clone();
        let scope = Arc::new(
            self.blocking(move |store, _| resolve_scope(store, &hash, hint.as_deref()))
                .await?,
        );
        self.scopes.put(
            credentials.cache_key.clone(),
            scope.clone(),
            generation,
            &self.generation,
        );
        check_expiry(scope)
    }

    /// The in-memory view of a vault (loaded, decrypted and cached on first use).
    pub async fn snapshot(&self, vault_id: &str) -> Result<Arc<VaultSnapshot>, BrokerError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let cached = self.snapshots.get(vault_id);
        crate::metrics::global().cache_lookup("snapshot", cached.is_some());
        if let Some(snapshot) = cached {
            return Ok(snapshot);
        }
        let key = vault_id.to_owned();
        let id = key.clone();
        let snapshot = Arc::new(
            self.blocking(move |store, dek| load_snapshot(store, dek, &id))
                .await?,
        );
        self.snapshots
            .put(key, snapshot.clone(), generation, &self.generation);
        Ok(snapshot)
    }
}

fn check_expiry(scope: Arc<Scope>) -> Result<Arc<Scope>, BrokerError> {
    if scope.expires_at.is_some_and(|at| now() >= at) {
        return Err(BrokerError::auth_required(
            "the proxy token has expired; get a new one",
        ));
    }
    Ok(scope)
}

fn store_error(err: crate::store::StoreError) -> BrokerError {
    tracing::error!(error = %err, "broker store failure");
    BrokerError::internal("the broker could not read its configuration; see the server log")
}

fn resolve_scope(
    store: &Store,
    token_hash: &str,
    hint: Option<&str>,
) -> Result<Scope, BrokerError> {
    store
        .read(|conn| {
            let invalid = || BrokerError::auth_required("the proxy token is invalid, revoked or expired");
            let Some(session) = sessions::by_token_hash(conn, token_hash)? else {
                return Ok(Err(invalid()));
            };
            if session.is_expired(now()) {
                return Ok(Err(invalid()));
            }
            let scope = match session.kind {
                SessionKind::User => Err(BrokerError::forbidden(
                    "user_session",
                    "a login session cannot use the proxy; mint a vault token with `agent-vault vault token`",
                )),
                SessionKind::Scoped => {
                    let (Some(vault_id), Some(role)) = (&session.vault_id, session.vault_role) else {
                        return Ok(Err(invalid()));
                    };
                    let Some(vault) = vaults::by_id(conn, vault_id)? else {
                        return Ok(Err(invalid()));
                    };
                    match hint {
                        Some(name) if name != vault.name => Err(BrokerError::forbidden(
                            "vault_mismatch",
                            format!("this token belongs to vault \"{}\", not \"{}\"", vault.name, excerpt(name, ECHO_CHARS)),
                        )),
                        _ => {
                            // The log names who minted the token (`vault run`, `vault token`).
                            let (actor_type, actor_id) = match sessions::minted_by(conn, token_hash)? {
                                Some((kind, id)) if kind == "user" => ("user", Some(id.into())),
                                Some((kind, id)) if kind == "agent" => ("agent", Some(id.into())),
                                _ => ("scoped", None),
                            };
                            let share_key = match (actor_type, actor_id.as_deref()) {
                                ("user", Some(id)) => format!("user:{id}").into(),
                                ("agent", Some(id)) => agent_share_key(conn, id)?,
                                // A token whose minter is not known shares its vault's.
                                _ => format!("vault:{}", vault.id).into(),
                            };
                            Ok(Scope {
                                limit_key: format!("token:{}/{}", session.public_id, vault.id).into(),
                                share_key,
                                vault_id: vault.id.into(),
                                vault_name: vault.name,
                                role,
                                actor_type,
                                actor_id,
                                expires_at: session.expires_at,
                            })
                        }
                    }
                }
                SessionKind::Agent => {
                    let agent_id = session.agent_id.clone().unwrap_or_default();
                    let grants = vaults::grants_of(conn, ActorType::Agent, &agent_id)?;
                    let chosen = match hint {
                        Some(name) => match grants.iter().find(|(v, _)| v.name == name) {
                            Some(grant) => Ok(grant.clone()),
                            None if vaults::by_name(conn, name)?.is_none() => {
                                Err(BrokerError::not_found(format!("vault \"{}\" does not exist", excerpt(name, ECHO_CHARS))))
                            }
                            None => Err(BrokerError::forbidden(
                                "forbidden",
                                format!("this agent has no access to vault \"{}\"", excerpt(name, ECHO_CHARS)),
                            )),
                        },
                        None => match grants.as_slice() {
                            [one] => Ok(one.clone()),
                            [] => Err(BrokerError::forbidden("forbidden", "this agent has no vault access")),
                            many => Err(BrokerError::bad_request(
                                "vault_ambiguous",
                                format!(
                                    "this agent can use {} vaults ({}); name one: HTTPS_PROXY=http://<token>:<vault>@<host>:<port>",
                                    many.len(),
                                    many.iter().map(|(v, _)| v.name.as_str()).collect::<Vec<_>>().join(", ")
                                ),
                            )),
                        },
                    };
                    let share_key = agent_share_key(conn, &agent_id)?;
                    chosen.map(|(vault, role)| Scope {
                        limit_key: format!("agent:{agent_id}/{}", vault.id).into(),
                        share_key,
                        vault_id: vault.id.into(),
                        vault_name: vault.name,
                        role,
                        actor_type: "agent",
                        actor_id: Some(agent_id.into()),
                        expires_at: session.expires_at,
                    })
                }
            };
            Ok(scope)
        })
        .map_err(store_error)?
}

fn load_snapshot(store: &Store, dek: &Key, vault_id: &str) -> Result<VaultSnapshot, BrokerError> {
    store
        .read(|conn| {
            let vault = vaults::by_id(conn, vault_id)?
                .ok_or_else(|| crate::store::StoreError::Corrupt("the vault was deleted".into()))?;
            let services = crate::store::services::list(conn, vault_id)?;
            let mut values = HashMap::new();
            for key in credentials::keys(conn, vault_id)? {
                if let Some(value) = credentials::get(conn, dek, vault_id, &key)? {
                    values.insert(key, value);
                }
            }
            let policy = vaults::setting(conn, vault_id, UnmatchedPolicy::SETTING)?
                .and_then(|v| UnmatchedPolicy::parse(&v))
                .unwrap_or(UnmatchedPolicy::Forward);
            Ok(VaultSnapshot::new(
                vault.id, vault.name, services, values, policy,
            ))
        })
        .map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_scanned_for_their_services_values_and_every_unguessable_one() {
        let services = crate::services::parse_yaml(
            "services:\n\
             - {host: a.example.com, auth: {type: bearer, token: A_KEY}}\n\
             - {host: b.example.com, scrub_responses: false, auth: {type: basic, username: B_USER, password: B_PASS}}\n",
        )
        .unwrap();
        let credentials: HashMap<String, SecretString> = [
            ("A_KEY", "value-of-a"),
            ("B_USER", "üsér-öf-bé-ñäöüß"),
            ("B_PASS", "pass-of-b-long-enough-to-scrub"),
            ("UNUSED", "value-unused"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), SecretString::from(v)))
        .collect();
        let snapshot = VaultSnapshot::new(
            "id".into(),
            "v".into(),
            services,
            credentials,
            UnmatchedPolicy::Forward,
        );
        let text = "value-of-a üsér-öf-bé-ñäöüß pass-of-b-long-enough-to-scrub value-unused";
        let scrubber = |host: &str| {
            plan(&snapshot, host, 443, "/", true)
                .1
                .unwrap()
                .scrubber
                .clone()
        };
        let scrubbed = |host: &str| {
            let replaced = scrubber(host).expect("a scrubber").replace(text.as_bytes());
            String::from_utf8(replaced.unwrap()).unwrap()
        };
        let m = scrub::MARKER;
        // A's service: A's value, and B's that is too long to guess.
        assert_eq!(
            scrubbed("a.example.com"),
            format!("{m} üsér-öf-bé-ñäöüß {m} value-unused")
        );
        // Hosts no service matches (the agent may run them): only what is too long to guess.
        assert_eq!(
            scrubbed("elsewhere.example.com"),
            format!("value-of-a üsér-öf-bé-ñäöüß {m} value-unused")
        );
        // B opted out of scrubbing.
        assert!(scrubber("b.example.com").is_none());
    }

    #[test]
    fn invalidations_survive_the_trip_between_replicas() {
        for change in [
            Invalidation::Token("abc:def".into()),
            Invalidation::Scopes,
            Invalidation::Vault("team:a".into()),
            Invalidation::Everything,
        ] {
            let payload = change.encode().unwrap();
            assert_eq!(Invalidation::decode(&payload), change);
        }
        assert_eq!(Invalidation::Nothing.encode(), None);
        assert_eq!(
            Invalidation::decode("from-the-future"),
            Invalidation::Everything
        );
    }
    use crate::crypto::{TokenKind, mint_token, random_bytes};
    use crate::store::sessions::Session;

    /// Warm requests are served from memory: a change made behind the API's back (no
    /// invalidation) is not seen until `invalidate`, which proves no database read happened.
    #[tokio::test]
    async fn warm_lookups_skip_the_database_until_invalidated() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let dek = Arc::new(Key::generate());
        let vault = store
            .read(|c| vaults::by_name(c, "default"))
            .unwrap()
            .unwrap();
        let token = mint_token(TokenKind::Session);
        let session = Session {
            token_hash: token.hash.clone(),
            public_id: hex::encode(random_bytes::<10>()),
            kind: SessionKind::Scoped,
            user_id: None,
            agent_id: None,
            vault_id: Some(vault.id.clone()),
            vault_role: Some(VaultRole::Proxy),
            created_at: now(),
            expires_at: Some(now() + 3600),
            last_used_at: now(),
        };
        store.write(|tx| sessions::insert(tx, &session)).unwrap();
        store
            .write(|tx| credentials::upsert(tx, &dek, &vault.id, "KEY", &SecretString::from("one")))
            .unwrap();
        let (_, stop) = tokio::sync::watch::channel(false);
        let (audit, _) = AuditLog::start(store.clone(), RetentionEnv::default(), stop);
        let broker = Broker::new(store.clone(), dek.clone(), "http://x".into(), audit);
        let creds = ProxyCredentials::new(token.raw.clone(), Some("default".into()));

        assert_eq!(
            broker.authenticate(&creds).await.unwrap().vault_name,
            "default"
        );
        assert_eq!(
            broker.snapshot(&vault.id).await.unwrap().credentials["KEY"].expose(),
            "one"
        );
        store
            .write(|tx| {
                sessions::delete(tx, &token.hash)?;
                credentials::upsert(tx, &dek, &vault.id, "KEY", &SecretString::from("two"))
            })
            .unwrap();
        assert!(
            broker.authenticate(&creds).await.is_ok(),
            "served from the cache"
        );
        assert_eq!(
            broker.snapshot(&vault.id).await.unwrap().credentials["KEY"].expose(),
            "one"
        );

        // Changes elsewhere leave this vault and this token warm.
        broker.apply(Invalidation::Nothing);
        broker.apply(Invalidation::Vault("another".into()));
        broker.apply(Invalidation::Token("another-hash".into()));
        assert!(broker.authenticate(&creds).await.is_ok());
        assert_eq!(
            broker.snapshot(&vault.id).await.unwrap().credentials["KEY"].expose(),
            "one"
        );
        broker.apply(Invalidation::Vault("default".into()));
        assert_eq!(
            broker.snapshot(&vault.id).await.unwrap().credentials["KEY"].expose(),
            "two"
        );
        assert!(
            broker.authenticate(&creds).await.is_ok(),
            "tokens stay warm"
        );
        broker.apply(Invalidation::Token(token.hash.clone()));
        assert_eq!(broker.authenticate(&creds).await.unwrap_err().status, 407);
    }
}
