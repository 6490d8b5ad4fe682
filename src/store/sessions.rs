//! Bearer sessions: user logins, vault-scoped tokens and agent tokens share one table, keyed
//! by the SHA-256 of the raw token (the raw token is never stored).

use super::db::{Connection, OptionalExtension, Row, params};

use super::roles::column;
use super::{Result, VaultRole, now};
use crate::crypto::{NewToken, TokenKind, mint_token, random_bytes};

/// A user login lasts at most a year and ends after 30 days without use.
pub const USER_SESSION_TTL: i64 = 365 * 24 * 3600;
pub const USER_SESSION_IDLE: i64 = 30 * 24 * 3600;
/// A browser login lasts a working day; the cookie carries the same expiry.
pub const BROWSER_SESSION_TTL: i64 = 12 * 3600;
/// `last_used_at` is written at most this often, to keep reads cheap.
const TOUCH_INTERVAL: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    User,
    Scoped,
    Agent,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Scoped => "scoped",
            Self::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    /// A short public handle for listing and revoking without the token.
    pub public_id: String,
    pub kind: SessionKind,
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    pub vault_id: Option<String>,
    pub vault_role: Option<VaultRole>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: i64,
}

impl Session {
    pub fn is_expired(&self, now: i64) -> bool {
        let past_expiry = self.expires_at.is_some_and(|at| now >= at);
        let idle = self.kind == SessionKind::User && now - self.last_used_at > USER_SESSION_IDLE;
        past_expiry || idle
    }
}

fn from_row(r: &Row<'_>) -> super::db::Result<Session> {
    let kind = match r.get::<_, String>(2)?.as_str() {
        "user" => SessionKind::User,
        "scoped" => SessionKind::Scoped,
        _ => SessionKind::Agent,
    };
    Ok(Session {
        token_hash: r.get(0)?,
        public_id: r.get(1)?,
        kind,
        user_id: r.get(3)?,
        agent_id: r.get(4)?,
        vault_id: r.get(5)?,
        vault_role: r.get::<_, Option<String>>(6)?.map(column).transpose()?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        last_used_at: r.get(9)?,
    })
}

/// Creates a login session for a user and returns the raw token (shown once).
pub fn create_for_user(conn: &Connection, user_id: &str) -> Result<(NewToken, Session)> {
    create_user_session(conn, user_id, USER_SESSION_TTL)
}

/// A login session for the web UI's cookie: the same kind, a shorter life.
pub fn create_browser_session(conn: &Connection, user_id: &str) -> Result<(NewToken, Session)> {
    create_user_session(conn, user_id, BROWSER_SESSION_TTL)
}

fn create_user_session(conn: &Connection, user_id: &str, ttl: i64) -> Result<(NewToken, Session)> {
    let token = mint_token(TokenKind::Session);
    let now = now();
    let session = Session {
        token_hash: token.hash.clone(),
        public_id: hex::encode(random_bytes::<10>()),
        kind: SessionKind::User,
        user_id: Some(user_id.to_owned()),
        agent_id: None,
        vault_id: None,
        vault_role: None,
        created_at: now,
        expires_at: Some(now + ttl),
        last_used_at: now,
    };
    insert(conn, &session)?;
    Ok((token, session))
}

pub fn insert(conn: &Connection, s: &Session) -> Result<()> {
    conn.execute(
        "INSERT INTO sessions (token_hash, public_id, kind, user_id, agent_id, vault_id,
             vault_role, created_at, expires_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            s.token_hash,
            s.public_id,
            s.kind.as_str(),
            s.user_id,
            s.agent_id,
            s.vault_id,
            s.vault_role.map(VaultRole::as_str),
            s.created_at,
            s.expires_at,
            s.last_used_at
        ],
    )?;
    Ok(())
}

pub fn by_token_hash(conn: &Connection, token_hash: &str) -> Result<Option<Session>> {
    Ok(conn
        .query_row(
            "SELECT token_hash, public_id, kind, user_id, agent_id, vault_id, vault_role,
                    created_at, expires_at, last_used_at
             FROM sessions WHERE token_hash = ?1",
            [token_hash],
            from_row,
        )
        .optional()?)
}

/// Records use of a session (throttled), which keeps an active login from going idle.
pub fn touch(conn: &Connection, session: &Session, now: i64) -> Result<()> {
    if now - session.last_used_at >= TOUCH_INTERVAL {
        conn.execute(
            "UPDATE sessions SET last_used_at = ?2 WHERE token_hash = ?1",
            params![session.token_hash, now],
        )?;
    }
    Ok(())
}

pub fn delete(conn: &Connection, token_hash: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])? > 0)
}

/// Ends every session of a user, and every scoped token the user minted.
pub fn delete_all_for_user(conn: &Connection, user_id: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1
            OR (created_by_type = 'user' AND created_by_id = ?1)",
        [user_id],
    )?;
    Ok(())
}

/// Deletes ended sessions. A leased token whose lease lapsed may still be renewed by its
/// run (after a laptop's sleep, say) until its hard cap, so it stays until then.
pub fn purge_expired(conn: &Connection) -> Result<usize> {
    let now = now();
    Ok(conn.execute(
        "DELETE FROM sessions
         WHERE (COALESCE(max_expires_at, expires_at) IS NOT NULL
                AND COALESCE(max_expires_at, expires_at) <= ?1)
            OR (kind = 'user' AND last_used_at < ?2)",
        params![now, now - USER_SESSION_IDLE],
    )?)
}

/// Who minted a scoped session: `("user" | "agent", id)`.
pub fn minted_by(conn: &Connection, token_hash: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .query_row(
            "SELECT created_by_type, created_by_id FROM sessions
             WHERE token_hash = ?1 AND created_by_type IS NOT NULL AND created_by_id IS NOT NULL",
            [token_hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Ends the vault-scoped tokens `actor` minted on `vault_id` with a role above `role` (all of
/// them for `None`): a token never outlives, nor outranks, the grant it was minted under.
pub fn end_minted_above(
    conn: &Connection,
    vault_id: &str,
    actor: super::vaults::ActorType,
    actor_id: &str,
    role: Option<VaultRole>,
) -> Result<usize> {
    let mut ended = 0;
    for above in [VaultRole::Proxy, VaultRole::Member, VaultRole::Admin]
        .into_iter()
        .filter(|r| role.is_none_or(|kept| *r > kept))
    {
        ended += conn.execute(
            "DELETE FROM sessions WHERE vault_id = ?1 AND vault_role = ?2
                AND created_by_type = ?3 AND created_by_id = ?4",
            params![vault_id, above.as_str(), actor.as_str(), actor_id],
        )?;
    }
    Ok(ended)
}

/// Inserts a scoped session recording who minted it (so it ends when they are removed).
pub fn insert_created_by(
    conn: &Connection,
    s: &Session,
    creator_type: &str,
    creator_id: &str,
) -> Result<()> {
    insert(conn, s)?;
    conn.execute(
        "UPDATE sessions SET created_by_type = ?2, created_by_id = ?3 WHERE token_hash = ?1",
        params![s.token_hash, creator_type, creator_id],
    )?;
    Ok(())
}

/// Puts a fresh scoped session on a lease: it expires `lease` seconds from `now` unless
/// renewed with the key whose hash is `lease_hash`, and never lives past `max_expires_at`.
pub fn set_lease(
    conn: &Connection,
    token_hash: &str,
    lease_hash: &str,
    expires_at: i64,
    max_expires_at: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET lease_hash = ?2, expires_at = ?3, max_expires_at = ?4
         WHERE token_hash = ?1",
        params![token_hash, lease_hash, expires_at, max_expires_at],
    )?;
    Ok(())
}

/// Extends the lease keyed by `lease_hash` to `now + lease` (capped); returns the new expiry
/// and the token hash, or `None` when no such lease exists or its hard cap has passed.
pub fn renew_lease(
    conn: &Connection,
    lease_hash: &str,
    now: i64,
    lease: i64,
) -> Result<Option<(String, i64)>> {
    Ok(conn
        .query_row(
            "UPDATE sessions SET expires_at = CASE
                 WHEN CAST(?2 AS BIGINT) + CAST(?3 AS BIGINT) < max_expires_at
                 THEN CAST(?2 AS BIGINT) + CAST(?3 AS BIGINT) ELSE max_expires_at END
             WHERE lease_hash = ?1 AND max_expires_at > ?2
             RETURNING token_hash, expires_at",
            params![lease_hash, now, lease],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}
