//! Persistence on one of two engines, chosen once at start: an SQLite file
//! (`~/.agent-vault/agent-vault.db`, 0600, WAL journal, foreign keys on) by default, or a
//! PostgreSQL database when `AGENT_VAULT_DATABASE_URL` names one (several brokers may share
//! it). Both get the same versioned migrations at open.
//!
//! Callers go through the repository functions of each aggregate module (never SQL in
//! handlers), passing the `&Connection` or `&Transaction` they got from [`Store::read`] or
//! [`Store::write`]; every multi-row change runs inside one `write` transaction. Secret
//! columns are sealed here with associated data naming their row, on either engine.

pub mod agents;
pub mod ca_root;
pub mod copy;
pub mod credentials;
pub mod db;
pub mod invites;
pub mod master_key;
mod migrations;
pub mod pg;
pub mod pg_tls;
pub mod proposals;
pub mod request_log;
pub mod roles;
pub mod services;
pub mod sessions;
pub mod settings;
#[cfg(test)]
pub mod testpg;
pub mod users;
pub mod vaults;
pub mod verifications;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::TransactionBehavior;

pub use db::{Connection, Transaction};

use crate::crypto::CryptoError;
pub use roles::{InstanceRole, VaultRole};

/// The name of the vault every instance starts with. It cannot be renamed or deleted.
pub const DEFAULT_VAULT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] db::Error),
    #[error("{0}")]
    Config(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database at {location} was written by a newer agent-vault (schema {found}, this binary knows {known}); upgrade agent-vault"
    )]
    TooNew {
        location: String,
        found: i64,
        known: i64,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Database(err.into())
    }
}

/// Maps a UNIQUE/PRIMARY KEY violation to [`StoreError::Conflict`] naming `what`.
pub fn conflict_as(what: &str) -> impl FnOnce(db::Error) -> StoreError + '_ {
    move |err| {
        if err.is_constraint_violation() {
            StoreError::Conflict(what.to_owned())
        } else {
            StoreError::Database(err)
        }
    }
}

/// Which engine holds the data: the environment variable that chooses it.
pub const DATABASE_URL_ENV: &str = "AGENT_VAULT_DATABASE_URL";

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// PostgreSQL when `AGENT_VAULT_DATABASE_URL` is set and not empty, else the SQLite file.
    pub fn from_env(sqlite_path: PathBuf) -> std::result::Result<Self, StoreError> {
        match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Self::parse_url(url.trim()),
            _ => Ok(Self::Sqlite(sqlite_path)),
        }
    }

    pub fn parse_url(url: &str) -> std::result::Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err(StoreError::Config(format!(
                "{DATABASE_URL_ENV} must be a PostgreSQL URL (postgres://user:password@host:5432/dbname), got {}; unset it to use the SQLite file",
                pg::redacted(url)
            )))
        }
    }

    /// Whether the data is already there (a SQLite file that exists; PostgreSQL always counts
    /// as existing: its schema is checked at open).
    pub fn exists(&self) -> bool {
        match self {
            Self::Sqlite(path) => path.exists(),
            Self::Postgres(_) => true,
        }
    }

    /// For messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => pg::redacted(url),
        }
    }
}

/// Seconds since the Unix epoch: the unit of every timestamp column.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A fresh random identifier for a row.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(pg::PgStore),
}

impl Store {
    /// Opens the store at `location` and migrates it.
    pub fn open_at(location: &Location) -> Result<Self> {
        match location {
            Location::Sqlite(path) => Self::open(path),
            Location::Postgres(url) => Self::open_postgres(url),
        }
    }

    /// Connects to a PostgreSQL database and migrates it.
    pub fn open_postgres(url: &str) -> Result<Self> {
        let pg = pg::PgStore::connect(url)?;
        migrations::apply_postgres(&pg)?;
        Ok(Self {
            backend: Backend::Postgres(pg),
        })
    }

    /// The PostgreSQL back-end, when this store runs on one.
    pub fn postgres(&self) -> Option<&pg::PgStore> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => self.read(|c| {
                c.query_row("SELECT 1", db::params![], |r| r.get::<_, i64>(0))?;
                Ok(())
            }),
            Backend::Postgres(pg) => pg.ping(),
        }
    }

    /// Opens (creating if needed) the database file with mode 0600 and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let io_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::configure(conn, path)
    }

    /// An in-memory database with the full schema (unit tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::configure(
            rusqlite::Connection::open_in_memory()?,
            Path::new(":memory:"),
        )
    }

    fn configure(mut conn: rusqlite::Connection, path: &Path) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::apply(&mut conn, path)?;
        Ok(Self {
            backend: Backend::Sqlite(Mutex::new(conn)),
        })
    }

    fn lock(conn: &Mutex<rusqlite::Connection>) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock leaves no open transaction (it rolls back on drop),
        // so the connection is still consistent.
        conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs read-only work on a connection.
    pub fn read<R>(&self, f: impl FnOnce(&Connection<'_>) -> Result<R>) -> Result<R> {
        match &self.backend {
            Backend::Sqlite(conn) => f(&Connection::Sqlite(&Self::lock(conn))),
            Backend::Postgres(pg) => pg.read(f),
        }
    }

    /// Runs `f` in one transaction that excludes other writers (on PostgreSQL, those of every
    /// replica too): all of its changes commit, or none do.
    pub fn write<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R>) -> Result<R> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut conn = Self::lock(conn);
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&Connection::Sqlite(&tx))?;
                tx.commit()?;
                Ok(out)
            }
            Backend::Postgres(pg) => pg.write(f),
        }
    }
}

/// Runs the store test `$name(store: Store)` once per back-end: as `$name::sqlite` on an
/// in-memory SQLite database and as `$name::postgres` on a fresh database of the test binary's
/// PostgreSQL server (see [`testpg`]).
#[cfg(test)]
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::store::Store::open_in_memory().unwrap());
            }
            #[test]
            fn postgres() {
                super::$name(
                    $crate::store::Store::open_postgres(
                        &$crate::store::testpg::fresh_database_url(),
                    )
                    .unwrap(),
                );
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_file_is_private_wal_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-vault.db");
        let store = Store::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        store
            .read(|c| {
                let journal: String = c.query_row("PRAGMA journal_mode", (), |r| r.get(0))?;
                let fk: i64 = c.query_row("PRAGMA foreign_keys", (), |r| r.get(0))?;
                assert_eq!(journal, "wal");
                assert_eq!(fk, 1);
                Ok(())
            })
            .unwrap();
        drop(store);
        Store::open(&path).expect("reopening applies no migration twice");
    }

    crate::on_both_backends!(failed_write_leaves_nothing_behind);
    fn failed_write_leaves_nothing_behind(store: Store) {
        let err = store.write(|tx| {
            vaults::insert(tx, "alpha")?;
            vaults::insert(tx, "alpha")?;
            Ok(())
        });
        assert!(matches!(err, Err(StoreError::Conflict(_))));
        let found = store.read(|c| vaults::by_name(c, "alpha")).unwrap();
        assert!(found.is_none(), "the first insert must be rolled back too");
    }
}
