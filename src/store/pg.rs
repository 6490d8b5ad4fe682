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

use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use super::db::{Connection, Error, block};
use super::{Result, StoreError};

/// The advisory lock key every write transaction takes ("agentvlt" in ASCII).
const WRITE_LOCK: i64 = 0x6167_656e_7476_6c74;
/// Connections per replica: enough for the API's parallel readers; writers queue on the lock.
const DEFAULT_POOL_SIZE: usize = 16;

pub struct PgStore {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    location: String,
}

impl PgStore {
    /// Connects (checking the server answers) without touching the schema.
    pub fn connect(url: &str) -> Result<Self> {
        let location = redacted(url);
        let bad_url = |e: &dyn std::fmt::Display| StoreError::Config(format!(
            "AGENT_VAULT_DATABASE_URL ({location}) is not a usable PostgreSQL URL: {e}; write it like postgres://user:password@host:5432/dbname"
        ));
        let parsed: tokio_postgres::Config = url.parse().map_err(|e| bad_url(&e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agent-vault-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the database runtime: {e}")))?;
        let manager = deadpool_postgres::Manager::from_config(
            parsed,
            NoTls,
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

    /// Pool use for metrics: (connections open, connections idle, callers waiting).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }
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
            e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())
        ),
        PoolError::Timeout(_) => {
            format!("timed out waiting for a PostgreSQL connection to {location}")
        }
        other => format!("PostgreSQL at {location}: {other}"),
    }
}

/// The URL with its password replaced by `***`.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
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
    }
}
