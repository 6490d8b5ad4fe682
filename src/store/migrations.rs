//! Versioned schema migrations, one numbered list for both engines: written in SQLite's
//! dialect and carried to PostgreSQL by [`postgres_sql`] (64-bit integers, `BYTEA`, serial
//! ids). SQLite keys the version on `user_version`; PostgreSQL on a one-row table. Each step
//! commits together with its version bump, so a crash never leaves half a migration; on
//! PostgreSQL the whole run holds an advisory lock, so replicas starting together migrate once.
//! Append new steps; never edit a released one.

use std::path::Path;

use rusqlite::Connection;

use super::db::{self, params};
use super::pg::PgStore;
use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: foundation — master key, accounts, vaults, grants, sessions, credentials, settings.
    r#"
    CREATE TABLE master_key (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        dek_plain       BLOB,
        dek_wrapped     BLOB,
        kdf_salt        BLOB,
        kdf_memory_kib  INTEGER,
        kdf_iterations  INTEGER,
        kdf_parallelism INTEGER,
        dek_check       BLOB NOT NULL,
        updated_at      INTEGER NOT NULL,
        CHECK ((dek_plain IS NULL) <> (dek_wrapped IS NULL))
    );
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,
        password_hash TEXT,
        role          TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        is_active     INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE TABLE agents (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
        created_by TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE vaults (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    INSERT INTO vaults (id, name, created_at)
        VALUES ('00000000-0000-0000-0000-000000000000', 'default', CAST(strftime('%s', 'now') AS INTEGER));
    CREATE TABLE vault_grants (
        vault_id   TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'agent')),
        actor_id   TEXT NOT NULL,
        role       TEXT NOT NULL CHECK (role IN ('proxy', 'member', 'admin')),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (vault_id, actor_type, actor_id)
    );
    CREATE INDEX vault_grants_by_actor ON vault_grants (actor_type, actor_id);
    CREATE TABLE sessions (
        token_hash      TEXT PRIMARY KEY,
        public_id       TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL CHECK (kind IN ('user', 'scoped', 'agent')),
        user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
        agent_id        TEXT REFERENCES agents(id) ON DELETE CASCADE,
        vault_id        TEXT REFERENCES vaults(id) ON DELETE CASCADE,
        vault_role      TEXT CHECK (vault_role IN ('proxy', 'member', 'admin')),
        created_by_type TEXT,
        created_by_id   TEXT,
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER,
        last_used_at    INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE TABLE email_verifications (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_sealed     BLOB NOT NULL,
        password_hash   TEXT NOT NULL,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        status          TEXT NOT NULL CHECK (status IN ('pending', 'used', 'void')),
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL
    );
    CREATE INDEX email_verifications_by_user ON email_verifications (user_id, status);
    CREATE TABLE credentials (
        vault_id     TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        key          TEXT NOT NULL,
        value_sealed BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (vault_id, key)
    );
    CREATE TABLE instance_settings (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    "#,
    // 2: management surface — user invites with vault pre-assignments, services, vault
    // settings, and the instance id that ties a running server to its data directory.
    r#"
    CREATE TABLE user_invites (
        id           TEXT PRIMARY KEY,
        token_hash   TEXT NOT NULL UNIQUE,
        token_suffix TEXT NOT NULL,
        email        TEXT NOT NULL,
        role         TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        status       TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
        created_by   TEXT,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        accepted_at  INTEGER
    );
    CREATE INDEX user_invites_by_email ON user_invites (email, status);
    CREATE TABLE user_invite_vaults (
        invite_id TEXT NOT NULL REFERENCES user_invites(id) ON DELETE CASCADE,
        vault_id  TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        role      TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        PRIMARY KEY (invite_id, vault_id)
    );
    CREATE TABLE services (
        vault_id   TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        host       TEXT NOT NULL,
        port       INTEGER NOT NULL DEFAULT 0,
        path       TEXT NOT NULL DEFAULT '',
        position   INTEGER NOT NULL,
        config     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (vault_id, host, port, path)
    );
    CREATE TABLE vault_settings (
        vault_id   TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (vault_id, key)
    );
    INSERT OR IGNORE INTO instance_settings (key, value, updated_at)
        VALUES ('instance_id', lower(hex(randomblob(16))), CAST(strftime('%s', 'now') AS INTEGER));
    "#,
    // 3: the broker's per-vault request log (metadata only: never values, bodies or queries).
    r#"
    CREATE TABLE request_log (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        vault_id        TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        actor_type      TEXT,
        actor_id        TEXT,
        ingress         TEXT NOT NULL,
        method          TEXT NOT NULL,
        host            TEXT NOT NULL,
        path            TEXT NOT NULL,
        service         TEXT,
        credential_keys TEXT NOT NULL DEFAULT '[]',
        status          INTEGER NOT NULL,
        duration_ms     INTEGER NOT NULL,
        error_code      TEXT,
        created_at      INTEGER NOT NULL
    );
    CREATE INDEX request_log_by_vault ON request_log (vault_id, id DESC);
    CREATE INDEX request_log_by_time ON request_log (created_at);
    "#,
    // 4: agents onboarding and proposals.
    r#"
    CREATE TABLE agent_invites (
        id           TEXT PRIMARY KEY,
        token_hash   TEXT NOT NULL UNIQUE,
        token_suffix TEXT NOT NULL,
        agent_name   TEXT NOT NULL,
        agent_id     TEXT REFERENCES agents(id) ON DELETE CASCADE,
        role         TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        status       TEXT NOT NULL CHECK (status IN ('pending', 'redeemed', 'revoked')),
        created_by   TEXT,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        redeemed_at  INTEGER
    );
    CREATE TABLE agent_invite_vaults (
        invite_id TEXT NOT NULL REFERENCES agent_invites(id) ON DELETE CASCADE,
        vault_id  TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        role      TEXT NOT NULL CHECK (role IN ('proxy', 'member', 'admin')),
        PRIMARY KEY (invite_id, vault_id)
    );
    CREATE TABLE proposals (
        vault_id         TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
        number           INTEGER NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        services         TEXT NOT NULL,
        credentials      TEXT NOT NULL,
        message          TEXT,
        user_message     TEXT,
        created_by_type  TEXT NOT NULL,
        created_by_id    TEXT,
        approval_token_hash TEXT,
        review_note      TEXT,
        reviewed_by      TEXT,
        created_at       INTEGER NOT NULL,
        reviewed_at      INTEGER,
        PRIMARY KEY (vault_id, number)
    );
    "#,
    // 5: who minted the vault-scoped token a proposal was filed with, so an agent cannot
    // approve a proposal it filed through a token of its own.
    r#"
    ALTER TABLE proposals ADD COLUMN minted_by_type TEXT;
    ALTER TABLE proposals ADD COLUMN minted_by_id TEXT;
    "#,
    // 6: leases for `vault run` tokens: a short expiry the run keeps renewing with a key only
    // it holds, up to a hard cap, so a token outlives a killed run by one lease at most.
    r#"
    ALTER TABLE sessions ADD COLUMN lease_hash TEXT;
    ALTER TABLE sessions ADD COLUMN max_expires_at INTEGER;
    CREATE UNIQUE INDEX sessions_by_lease ON sessions (lease_hash) WHERE lease_hash IS NOT NULL;
    "#,
    // 7: whether a verification code went out by email, so the owner is shown only the codes
    // that did not reach an inbox.
    r#"
    ALTER TABLE email_verifications ADD COLUMN delivery TEXT NOT NULL DEFAULT 'none'
        CHECK (delivery IN ('none', 'queued', 'sent', 'failed'));
    "#,
    // 8: the MITM root CA in the database, for instances whose replicas share no disk
    // (PostgreSQL): the certificate, and its private key sealed under the DEK. SQLite
    // instances keep theirs in ~/.agent-vault/ca as before.
    r#"
    CREATE TABLE ca_root (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        cert_pem   TEXT NOT NULL,
        key_sealed BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    "#,
    // 9: no index on the request log's time: maintaining it cost every logged request an
    // insert and, at its trim, a delete; the age trim walks the log in id order instead. The
    // per-vault index ascending: new rows then append at the end of their vault's range
    // (descending, each went in at its start); it is read backwards for newest-first.
    r#"
    DROP INDEX request_log_by_time;
    DROP INDEX request_log_by_vault;
    CREATE INDEX request_log_by_vault ON request_log (vault_id, id);
    "#,
    // 10: whether an account's address was ever proven (a code sent there, an identity
    // provider's word). An account made through an invite link is not: whoever held the link
    // chose its password. Accounts from before are taken as proven.
    r#"
    ALTER TABLE users ADD COLUMN email_proven INTEGER NOT NULL DEFAULT 1;
    "#,
];

pub fn apply(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let current: i64 = conn.query_row("PRAGMA user_version", (), |r| r.get(0))?;
    if current > known {
        return Err(StoreError::TooNew {
            location: path.display().to_string(),
            found: current,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The advisory lock migrations take ("avschema").
const MIGRATION_LOCK: i64 = 0x6176_7363_6865_6d61;

/// Applies the missing steps to a PostgreSQL database, all in one transaction.
pub fn apply_postgres(pg: &PgStore) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    pg.read(|c| {
        c.execute_batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS agent_vault_schema (
                 id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
             INSERT INTO agent_vault_schema (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;"
        ))?;
        let steps = (|| {
            let current: i64 =
                c.query_row("SELECT version FROM agent_vault_schema", params![], |r| {
                    r.get(0)
                })?;
            if current > known {
                return Err(StoreError::TooNew {
                    location: pg.location().to_owned(),
                    found: current,
                    known,
                });
            }
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                c.execute_batch(&postgres_sql(sql))?;
                c.execute(
                    "UPDATE agent_vault_schema SET version = ?1",
                    params![index as i64 + 1],
                )?;
            }
            Ok(())
        })();
        match steps {
            Ok(()) => c.execute_batch("COMMIT").map_err(StoreError::from),
            Err(e) => {
                c.execute_batch("ROLLBACK")?;
                Err(e)
            }
        }
    })
}

/// The schema version a PostgreSQL database is at (0 for an empty one).
pub fn postgres_version(c: &db::Connection<'_>) -> Result<i64> {
    let has: bool = c.query_row(
        "SELECT to_regclass('agent_vault_schema') IS NOT NULL",
        params![],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(0);
    }
    Ok(
        c.query_row("SELECT version FROM agent_vault_schema", params![], |r| {
            r.get(0)
        })?,
    )
}

/// The number of migrations this binary knows.
pub fn known_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// A migration step in PostgreSQL's dialect. SQLite's INTEGER is 64 bits, so it becomes
/// BIGINT; the two seed rows use PostgreSQL's own clock and randomness. (`OR IGNORE` guards a
/// row that an older SQLite file may hold; a PostgreSQL database always migrates from empty.)
pub fn postgres_sql(sqlite: &str) -> String {
    sqlite
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace(" BLOB", " BYTEA")
        .replace("strftime('%s', 'now')", "EXTRACT(EPOCH FROM now())")
        .replace(
            "lower(hex(randomblob(16)))",
            "replace(gen_random_uuid()::text, '-', '')",
        )
        .replace("INSERT OR IGNORE INTO", "INSERT INTO")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_steps_keep_no_sqlite_dialect() {
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let pg = postgres_sql(step);
            for word in [
                "AUTOINCREMENT",
                "strftime",
                "randomblob",
                "BLOB",
                "OR IGNORE",
                "INTEGER",
            ] {
                assert!(!pg.contains(word), "step {} keeps {word}: {pg}", i + 1);
            }
        }
    }
}
