//! SQLite persistence: one file (`~/.agent-vault/agent-vault.db`, 0600), WAL journal, foreign
//! keys on, versioned migrations applied at open.
//!
//! Callers go through the repository functions of each aggregate module (never SQL in
//! handlers), passing the `&Connection` or `&Transaction` they got from [`Store::read`] or
//! [`Store::write`]; every multi-row change runs inside one `write` transaction. Secret
//! columns are sealed here with associated data naming their row.

pub mod agents;
pub mod credentials;
pub mod invites;
pub mod master_key;
mod migrations;
pub mod proposals;
pub mod request_log;
pub mod roles;
pub mod services;
pub mod sessions;
pub mod settings;
pub mod users;
pub mod vaults;
pub mod verifications;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::crypto::CryptoError;
pub use roles::{InstanceRole, VaultRole};

/// The name of the vault every instance starts with. It cannot be renamed or deleted.
pub const DEFAULT_VAULT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database at {path} was written by a newer agent-vault (schema {found}, this binary knows {known}); upgrade agent-vault"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a UNIQUE/PRIMARY KEY violation to [`StoreError::Conflict`] naming `what`.
pub fn conflict_as(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |err| match &err {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Sqlite(err),
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
    conn: Mutex<Connection>,
}

impl Store {
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
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::configure(conn, path)
    }

    /// An in-memory database with the full schema (unit tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::configure(Connection::open_in_memory()?, Path::new(":memory:"))
    }

    fn configure(mut conn: Connection, path: &Path) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::apply(&mut conn, path)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no open transaction (it rolls back on drop),
        // so the connection is still consistent.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs read-only work on the connection.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        f(&self.lock())
    }

    /// Runs `f` in one immediate transaction: all of its changes commit, or none do.
    pub fn write<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R>) -> Result<R> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
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
                let journal: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let fk: i64 = c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
                assert_eq!(journal, "wal");
                assert_eq!(fk, 1);
                Ok(())
            })
            .unwrap();
        drop(store);
        Store::open(&path).expect("reopening applies no migration twice");
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let store = Store::open_in_memory().unwrap();
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
