//! Versioned schema migrations, keyed on SQLite's `user_version`. Each step runs in its own
//! transaction together with the version bump, so a crash never leaves half a migration.
//! Append new steps; never edit a released one.

use std::path::Path;

use rusqlite::Connection;

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
];

pub fn apply(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
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
