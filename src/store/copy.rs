//! Copying a whole instance from its SQLite file into an empty PostgreSQL database
//! (`agent-vault migrate-db`). Rows travel as they are stored: ids, token hashes and sealed
//! values unchanged, so every ciphertext still opens under the same DEK with the same
//! associated data, and the same master password unlocks the copy.

use super::db::{Connection, Value, params};
use super::{Result, Store, StoreError, ca_root, migrations};

/// Every table, parents before children (PostgreSQL checks foreign keys row by row).
pub const TABLES: &[&str] = &[
    "master_key",
    "users",
    "agents",
    "vaults",
    "vault_grants",
    "sessions",
    "email_verifications",
    "credentials",
    "instance_settings",
    "user_invites",
    "user_invite_vaults",
    "services",
    "vault_settings",
    "request_log",
    "agent_invites",
    "agent_invite_vaults",
    "proposals",
    "ca_root",
];

/// One table's rows as read: (name, column names, rows).
type TableRows = (&'static str, Vec<String>, Vec<Vec<Value>>);

/// Tables whose ids PostgreSQL draws from a sequence, moved past the copied ids.
const SERIAL_IDS: &[&str] = &["email_verifications", "request_log"];

/// How many rows each table holds in `source`, in copy order.
pub fn row_counts(source: &Store) -> Result<Vec<(&'static str, i64)>> {
    source.read(|c| {
        check_tables_known(c)?;
        TABLES
            .iter()
            .map(|t| {
                let n: i64 = c.query_row(&format!("SELECT COUNT(*) FROM {t}"), (), |r| r.get(0))?;
                Ok((*t, n))
            })
            .collect()
    })
}

/// Refuses a source with a table this binary does not know how to copy (so nothing is left
/// behind silently).
fn check_tables_known(c: &Connection) -> Result<()> {
    let (_, rows) = c.query_all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    for row in rows {
        if let Some(Value::Text(name)) = row.first()
            && !TABLES.contains(&name.as_str())
        {
            return Err(StoreError::Corrupt(format!(
                "the SQLite database has a table \"{name}\" this agent-vault cannot copy; use the agent-vault that wrote it"
            )));
        }
    }
    Ok(())
}

/// Whether a PostgreSQL database holds nothing at all (no table in any user schema).
pub fn target_is_empty(target_url: &str) -> Result<bool> {
    let pg = super::pg::PgStore::connect(target_url)?;
    pg.read(|c| {
        let n: i64 = c.query_row(
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
            (),
            |r| r.get(0),
        )?;
        Ok(n == 0)
    })
}

/// Copies every row of `source` (an SQLite store, migrated to this binary's schema) and the
/// CA (`ca`: certificate PEM and sealed key, from the instance's files) into `target` (a
/// freshly migrated PostgreSQL store), in one transaction: all of it, or nothing.
pub fn copy_all(source: &Store, target: &Store, ca: Option<(String, Vec<u8>)>) -> Result<()> {
    let tables: Vec<TableRows> = source.read(|c| {
        check_tables_known(c)?;
        TABLES
            .iter()
            .map(|t| {
                let (columns, rows) = c.query_all(&format!("SELECT * FROM {t}"))?;
                Ok((*t, columns, rows))
            })
            .collect::<Result<_>>()
    })?;
    target.write(|tx| {
        let version = migrations::postgres_version(tx)?;
        if version != migrations::known_version() {
            return Err(StoreError::Corrupt(format!(
                "the target database is at schema {version}, expected {}",
                migrations::known_version()
            )));
        }
        // The migrations seed the default vault and an instance id: the source's win.
        for t in TABLES.iter().rev() {
            tx.execute(&format!("DELETE FROM {t}"), ())?;
        }
        for (table, columns, rows) in &tables {
            if rows.is_empty() {
                continue;
            }
            let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                placeholders.join(", ")
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            for row in rows {
                stmt.execute(row.clone())?;
            }
        }
        for table in SERIAL_IDS {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                         COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ),
                (),
            )?;
        }
        if let Some((pem, sealed)) = &ca {
            let copied: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM ca_root)", params![], |r| {
                    r.get(0)
                })?;
            if !copied {
                ca_root::insert(tx, pem, sealed)?;
            }
        }
        Ok(())
    })
}

/// Drops what a failed migration created in a target that was empty before it, so a retry
/// finds it empty again.
pub fn drop_copied_schema(target_url: &str) -> Result<()> {
    let pg = super::pg::PgStore::connect(target_url)?;
    pg.read(|c| {
        for t in TABLES.iter().chain(["agent_vault_schema"].iter()) {
            c.execute_batch(&format!("DROP TABLE IF EXISTS {t} CASCADE"))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_schema_is_copied() {
        let store = Store::open_in_memory().unwrap();
        store.read(check_tables_known).unwrap();
        let counts = row_counts(&store).unwrap();
        assert_eq!(counts.len(), TABLES.len());
    }
}
