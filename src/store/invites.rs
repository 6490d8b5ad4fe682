//! User invites: a link that creates an active account with a role and vault grants.
//!
//! Only the token's SHA-256 is stored, plus its last 12 characters so a pending invite can be
//! named (`user invite revoke <suffix>`) without the full token. The suffix alone cannot be
//! redeemed: 208 secret bits remain.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::roles::column;
use super::{InstanceRole, Result, VaultRole, new_id, now};
use crate::crypto::{NewToken, TokenKind, mint_token};

/// Invites are relayed by people; a week is enough without lingering forever.
pub const INVITE_TTL: i64 = 7 * 24 * 3600;
/// Characters of the token kept in clear for naming an invite.
pub const SUFFIX_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invite {
    pub id: String,
    pub token_suffix: String,
    pub email: String,
    pub role: InstanceRole,
    pub status: InviteStatus,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Vault pre-assignments: (vault id, vault name, role).
    pub vaults: Vec<(String, String, VaultRole)>,
}

const COLUMNS: &str = "id, token_suffix, email, role, status, created_by, created_at, expires_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Invite> {
    let expires_at: i64 = r.get(7)?;
    let status = match r.get::<_, String>(4)?.as_str() {
        "accepted" => InviteStatus::Accepted,
        "revoked" => InviteStatus::Revoked,
        _ if expires_at <= now() => InviteStatus::Expired,
        _ => InviteStatus::Pending,
    };
    Ok(Invite {
        id: r.get(0)?,
        token_suffix: r.get(1)?,
        email: r.get(2)?,
        role: column(r.get(3)?)?,
        status,
        created_by: r.get(5)?,
        created_at: r.get(6)?,
        expires_at,
        vaults: Vec::new(),
    })
}

fn with_vaults(conn: &Connection, mut invite: Invite) -> Result<Invite> {
    let mut stmt = conn.prepare(
        "SELECT v.id, v.name, iv.role FROM user_invite_vaults iv JOIN vaults v ON v.id = iv.vault_id
         WHERE iv.invite_id = ?1 ORDER BY v.name",
    )?;
    invite.vaults = stmt
        .query_map([&invite.id], |r| {
            Ok((r.get(0)?, r.get(1)?, column(r.get(2)?)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(invite)
}

/// Creates a pending invite with its vault pre-assignments; returns it and the raw token.
pub fn create(
    conn: &Connection,
    email: &str,
    role: InstanceRole,
    vaults: &[(String, VaultRole)],
    created_by: &str,
) -> Result<(Invite, NewToken)> {
    let token = mint_token(TokenKind::UserInvite);
    let raw = token.raw.expose();
    let suffix = raw[raw.len() - SUFFIX_LEN..].to_owned();
    let id = new_id();
    let now = now();
    conn.execute(
        "INSERT INTO user_invites (id, token_hash, token_suffix, email, role, status, created_by,
             created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8)",
        params![
            id,
            token.hash,
            suffix,
            email,
            role.as_str(),
            created_by,
            now,
            now + INVITE_TTL
        ],
    )?;
    for (vault_id, vault_role) in vaults {
        conn.execute(
            "INSERT INTO user_invite_vaults (invite_id, vault_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (invite_id, vault_id) DO UPDATE SET role = excluded.role",
            params![id, vault_id, vault_role.as_str()],
        )?;
    }
    let invite = by_id(conn, &id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok((invite, token))
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Invite>> {
    let invite = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM user_invites WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

pub fn by_token_hash(conn: &Connection, hash: &str) -> Result<Option<Invite>> {
    let invite = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM user_invites WHERE token_hash = ?1"),
            [hash],
            from_row,
        )
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

pub fn list(conn: &Connection) -> Result<Vec<Invite>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM user_invites ORDER BY created_at DESC, email"
    ))?;
    let invites: Vec<Invite> = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    invites.into_iter().map(|i| with_vaults(conn, i)).collect()
}

/// The live (pending, unexpired) invite for an email, if any.
pub fn pending_for_email(conn: &Connection, email: &str) -> Result<Option<Invite>> {
    let invite = conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM user_invites
                 WHERE email = ?1 AND status = 'pending' AND expires_at > ?2"
            ),
            params![email, now()],
            from_row,
        )
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

/// Pending invites that pre-assign a vault: (email, role) for `vault user list`.
pub fn pending_for_vault(conn: &Connection, vault_id: &str) -> Result<Vec<(String, VaultRole)>> {
    let mut stmt = conn.prepare(
        "SELECT i.email, iv.role FROM user_invite_vaults iv JOIN user_invites i ON i.id = iv.invite_id
         WHERE iv.vault_id = ?1 AND i.status = 'pending' AND i.expires_at > ?2 ORDER BY i.email",
    )?;
    let rows = stmt
        .query_map(params![vault_id, now()], |r| {
            Ok((r.get(0)?, column(r.get(1)?)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Moves a pending invite to `accepted` or `revoked`; false if it was no longer pending.
pub fn finish(conn: &Connection, id: &str, accepted: bool) -> Result<bool> {
    let (status, accepted_at) = if accepted {
        ("accepted", Some(now()))
    } else {
        ("revoked", None)
    };
    Ok(conn.execute(
        "UPDATE user_invites SET status = ?2, accepted_at = ?3 WHERE id = ?1 AND status = 'pending'",
        params![id, status, accepted_at],
    )? > 0)
}
