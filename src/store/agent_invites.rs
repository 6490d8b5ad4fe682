//! Agent invites: a short-lived, single-use token an agent redeems over HTTP for its agent
//! token. A rotation invite names an existing agent; redeeming it replaces that agent's
//! sessions. As with user invites, only the hash and the last characters are stored.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::invites::SUFFIX_LEN;
use super::roles::column;
use super::{InstanceRole, Result, VaultRole, new_id, now};
use crate::crypto::{NewToken, TokenKind, mint_token};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentInviteStatus {
    Pending,
    Redeemed,
    Revoked,
    Expired,
}

impl AgentInviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Redeemed => "redeemed",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentInvite {
    pub id: String,
    pub token_suffix: String,
    pub agent_name: String,
    /// Set for a rotation invite.
    pub agent_id: Option<String>,
    pub role: InstanceRole,
    pub status: AgentInviteStatus,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// (vault id, vault name, role).
    pub vaults: Vec<(String, String, VaultRole)>,
}

const COLUMNS: &str =
    "id, token_suffix, agent_name, agent_id, role, status, created_by, created_at, expires_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AgentInvite> {
    let expires_at: i64 = r.get(8)?;
    let status = match r.get::<_, String>(5)?.as_str() {
        "redeemed" => AgentInviteStatus::Redeemed,
        "revoked" => AgentInviteStatus::Revoked,
        _ if expires_at <= now() => AgentInviteStatus::Expired,
        _ => AgentInviteStatus::Pending,
    };
    Ok(AgentInvite {
        id: r.get(0)?,
        token_suffix: r.get(1)?,
        agent_name: r.get(2)?,
        agent_id: r.get(3)?,
        role: column(r.get(4)?)?,
        status,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_at,
        vaults: Vec::new(),
    })
}

fn with_vaults(conn: &Connection, mut invite: AgentInvite) -> Result<AgentInvite> {
    let mut stmt = conn.prepare(
        "SELECT v.id, v.name, iv.role FROM agent_invite_vaults iv JOIN vaults v ON v.id = iv.vault_id
         WHERE iv.invite_id = ?1 ORDER BY v.name",
    )?;
    invite.vaults = stmt
        .query_map([&invite.id], |r| {
            Ok((r.get(0)?, r.get(1)?, column(r.get(2)?)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(invite)
}

pub struct NewAgentInvite<'a> {
    pub agent_name: &'a str,
    pub agent_id: Option<&'a str>,
    pub role: InstanceRole,
    pub vaults: &'a [(String, VaultRole)],
    pub created_by: &'a str,
    pub ttl_secs: i64,
}

pub fn create(conn: &Connection, new: &NewAgentInvite<'_>) -> Result<(AgentInvite, NewToken)> {
    let token = mint_token(TokenKind::AgentInvite);
    let raw = token.raw.expose();
    let suffix = raw[raw.len() - SUFFIX_LEN..].to_owned();
    let id = new_id();
    let now = now();
    conn.execute(
        "INSERT INTO agent_invites (id, token_hash, token_suffix, agent_name, agent_id, role, status,
             created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)",
        params![
            id,
            token.hash,
            suffix,
            new.agent_name,
            new.agent_id,
            new.role.as_str(),
            new.created_by,
            now,
            now + new.ttl_secs
        ],
    )?;
    for (vault_id, role) in new.vaults {
        conn.execute(
            "INSERT INTO agent_invite_vaults (invite_id, vault_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (invite_id, vault_id) DO UPDATE SET role = excluded.role",
            params![id, vault_id, role.as_str()],
        )?;
    }
    let invite = by_id(conn, &id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok((invite, token))
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<AgentInvite>> {
    let invite = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM agent_invites WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

pub fn by_token_hash(conn: &Connection, hash: &str) -> Result<Option<AgentInvite>> {
    let invite = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM agent_invites WHERE token_hash = ?1"),
            [hash],
            from_row,
        )
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

pub fn list(conn: &Connection) -> Result<Vec<AgentInvite>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM agent_invites ORDER BY created_at DESC"
    ))?;
    let invites: Vec<AgentInvite> = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    invites.into_iter().map(|i| with_vaults(conn, i)).collect()
}

/// A live invite that would create an agent of this name.
pub fn pending_for_name(conn: &Connection, name: &str) -> Result<Option<AgentInvite>> {
    let invite = conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM agent_invites
                 WHERE agent_name = ?1 AND agent_id IS NULL AND status = 'pending' AND expires_at > ?2"
            ),
            params![name, now()],
            from_row,
        )
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

/// Moves a pending invite to `redeemed` or `revoked`; false if it was no longer pending.
pub fn finish(conn: &Connection, id: &str, redeemed: bool) -> Result<bool> {
    let (status, at) = if redeemed {
        ("redeemed", Some(now()))
    } else {
        ("revoked", None)
    };
    Ok(conn.execute(
        "UPDATE agent_invites SET status = ?2, redeemed_at = ?3 WHERE id = ?1 AND status = 'pending'",
        params![id, status, at],
    )? > 0)
}
