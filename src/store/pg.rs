//! The PostgreSQL back-end: a deadpool pool of tokio-postgres clients whose connection tasks
//! run on a small runtime owned by the store, so the store's synchronous `read`/`write` work
//! from any thread. Several brokers may share one database: every write transaction first
//! takes one transaction-scoped advisory lock, which gives PostgreSQL writers the same
//! one-at-a-time order SQLite's single writer has (the aggregates' read-check-write steps
//! rely on it), while reads run in parallel on the pool.
//!
//! Stance: the URL may hold a password; it is never logged or put in an error (see
//! [`redacted`]).

use std::sync::mpsc;
use std::time::Duration;

use super::db::{Connection, Error, block};
use super::pg_tls::{self, MakeRustls};
use super::{Result, StoreError};
use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};

/// The advisory lock key every write transaction takes ("agentvlt" in ASCII).
const WRITE_LOCK: i64 = 0x6167_656e_7476_6c74;
/// Connections per replica: enough for the API's parallel readers; writers queue on the lock.
const DEFAULT_POOL_SIZE: usize = 16;

/// The channel replicas tell each other about changes on.
pub const CHANGES_CHANNEL: &str = "agent_vault_changes";

pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustls,
    runtime: Option<tokio::runtime::Runtime>,
    location: String,
}

impl PgStore {
    /// Connects (checking the server answers) without touching the schema.
    pub fn connect(url: &str) -> Result<Self> {
        let location = redacted(url);
        let pg_tls::Target {
            config: parsed,
            tls,
            ..
        } = pg_tls::parse(url, &location)?;
        let bad_url = |e: &dyn std::fmt::Display| {
            StoreError::Config(format!(
                "AGENT_VAULT_DATABASE_URL ({location}) is not a usable PostgreSQL URL: {e}; write it like postgres://user:password@host:5432/dbname"
            ))
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agent-vault-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the database runtime: {e}")))?;
        let manager = deadpool_postgres::Manager::from_config(
            parsed.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .config(PoolConfig {
                max_size: DEFAULT_POOL_SIZE,
                timeouts: Timeouts {
                    wait: Some(Duration::from_secs(30)),
                    create: Some(Duration::from_secs(10)),
                    recycle: Some(Duration::from_secs(5)),
                },
                ..PoolConfig::default()
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| bad_url(&e))?;
        let store = Self {
            pool,
            config: parsed,
            tls,
            runtime: Some(runtime),
            location,
        };
        store.ping()?;
        Ok(store)
    }

    /// Where this store points, with any password removed (for messages).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn client(&self) -> Result<deadpool_postgres::Client> {
        let pool = self.pool.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Pool("the store is closed".into()))?;
        runtime.spawn(async move {
            let _ = tx.send(pool.get().await);
        });
        match rx.recv() {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(Error::Pool(pool_message(&e, &self.location)).into()),
            Err(_) => Err(Error::Pool("the database runtime stopped".into()).into()),
        }
    }

    /// `SELECT 1` on a pooled connection: whether the database answers.
    pub fn ping(&self) -> Result<()> {
        let client = self.client()?;
        block(client.simple_query("SELECT 1")).map_err(Error::from)?;
        Ok(())
    }

    pub fn read<R>(&self, f: impl FnOnce(&Connection<'_>) -> Result<R>) -> Result<R> {
        let client = self.client()?;
        f(&Connection::Postgres(&client))
    }

    pub fn write<R>(&self, f: impl FnOnce(&Connection<'_>) -> Result<R>) -> Result<R> {
        let client = self.client()?;
        block(client.batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        )))
        .map_err(Error::from)?;
        let mut open = OpenTransaction {
            client: Some(client),
        };
        let out = {
            let client = open.client.as_ref().ok_or(Error::QueryReturnedNoRows)?;
            f(&Connection::Postgres(client))
        };
        let client = open.client.take().ok_or(Error::QueryReturnedNoRows)?;
        match out {
            Ok(value) => {
                block(client.batch_execute("COMMIT")).map_err(Error::from)?;
                Ok(value)
            }
            Err(e) => {
                if block(client.batch_execute("ROLLBACK")).is_err() {
                    // A connection in an unknown state never goes back to the pool.
                    let _ = deadpool_postgres::Object::take(client);
                }
                Err(e)
            }
        }
    }

    /// Tells every replica listening (this one included) about a change: `NOTIFY` on
    /// [`CHANGES_CHANNEL`].
    pub fn notify(&self, payload: &str) -> Result<()> {
        self.read(|c| {
            // `execute`: pg_notify returns `void`, which no column type reads.
            c.execute(
                "SELECT pg_notify(?1, ?2)",
                super::db::params![CHANGES_CHANNEL, payload],
            )?;
            Ok(())
        })
    }

    /// Listens on [`CHANGES_CHANNEL`] on a connection of its own, for as long as the store
    /// lives: `on_change(Some(payload))` per notification, and `on_change(None)` whenever
    /// notifications may have been missed (the connection dropped; called again once it is
    /// back), so the caller can forget everything it caches.
    pub fn listen(&self, on_change: impl Fn(Option<&str>) + Send + Sync + 'static) {
        let Some(runtime) = self.runtime.as_ref() else {
            return;
        };
        let config = self.config.clone();
        let tls = self.tls.clone();
        let location = self.location.clone();
        runtime.spawn(async move {
            let mut failures = 0u32;
            loop {
                match listen_once(&config, tls.clone(), &on_change).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(30) {
                            tracing::warn!(
                                "change notifications from {location} interrupted ({}); caches are dropped and rebuilt from the database until they return",
                                postgres_error(&e),
                            );
                        }
                    }
                }
                on_change(None);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Pool use for metrics: (connections open, connections idle, callers waiting).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustls,
    on_change: &(impl Fn(Option<&str>) + Send + Sync),
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .await?;
    // Anything changed while we were not listening is unknown: start from nothing.
    on_change(None);
    let out = loop {
        match rx.recv().await {
            Some(Ok(payload)) => on_change(Some(&payload)),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    pump.abort();
    out
}

/// The server's own message when it sent one, else the driver's; plus a TLS fix when TLS
/// is the cause.
fn postgres_error(e: &tokio_postgres::Error) -> String {
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned());
    format!("{message}{}", pg_tls::hint(e))
}

/// A write transaction whose closure panicked: its connection is closed rather than reused,
/// which makes the server roll the transaction back.
struct OpenTransaction {
    client: Option<deadpool_postgres::Client>,
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = deadpool_postgres::Object::take(client);
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so a store may be dropped inside an async context too.
            runtime.shutdown_background();
        }
    }
}

fn pool_message(err: &deadpool_postgres::PoolError, location: &str) -> String {
    use deadpool_postgres::PoolError;
    match err {
        PoolError::Backend(e) => format!(
            "cannot connect to PostgreSQL at {location}: {}",
            postgres_error(e)
        ),
        PoolError::Timeout(_) => {
            format!("timed out waiting for a PostgreSQL connection to {location}")
        }
        other => format!("PostgreSQL at {location}: {other}"),
    }
}

/// The URL with its password (in the authority or a `password=` parameter) replaced by `***`.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if let Some(query) = parsed.query() {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some(("password", _)) => "password=***".to_owned(),
                        _ => pair.to_owned(),
                    })
                    .collect();
                parsed.set_query(Some(&query.join("&")));
            }
            parsed.to_string()
        }
        Err(_) => "the given URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("postgres://av:hunter2@db:5432/vault"),
            "postgres://av:***@db:5432/vault"
        );
        assert!(!redacted("not a url hunter2").contains("hunter2"));
        assert_eq!(
            redacted("postgres://db/vault?sslmode=require&password=hunter2"),
            "postgres://db/vault?sslmode=require&password=***"
        );
    }
}
