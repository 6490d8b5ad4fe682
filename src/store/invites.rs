//! Invites: a link that creates a user account (a *user invite*, for an email) or an agent (an
//! *agent invite*, for an agent name), each with an instance role and vault grants. A
//! rotation invite names an existing agent; redeeming it replaces that agent's sessions.
//!
//! The two kinds live in their own tables (their columns differ a little) but share one
//! implementation here: only the token's SHA-256 is stored, plus its last 12 characters so a
//! pending invite can be named (`… invite revoke <suffix>`) without the full token. The suffix
//! alone cannot be redeemed: 208 secret bits remain.

use super::db::{Connection, OptionalExtension, Row, params};

use super::roles::column;
use super::{InstanceRole, Result, VaultRole, new_id, now};
use crate::crypto::{NewToken, TokenKind, mint_token};

/// User invites are relayed by people; a week is enough without lingering forever.
pub const INVITE_TTL: i64 = 7 * 24 * 3600;
/// Characters of the token kept in clear for naming an invite.
pub const SUFFIX_LEN: usize = 12;

/// Which kind of invite, and so which tables and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteKind {
    /// Creates (or adds grants to) a human account; `subject` is the email.
    User,
    /// Creates an agent, or rotates an existing one's token; `subject` is the agent name.
    Agent,
}

struct Tables {
    invites: &'static str,
    vaults: &'static str,
    subject: &'static str,
    /// `agent_id`, or a NULL literal for user invites.
    agent_id: &'static str,
    used: &'static str,
    used_at: &'static str,
}

impl InviteKind {
    /// The status word of a used invite: `accepted` for users, `redeemed` for agents.
    pub fn used_status(self) -> &'static str {
        self.tables().used
    }

    fn tables(self) -> Tables {
        match self {
            Self::User => Tables {
                invites: "user_invites",
                vaults: "user_invite_vaults",
                subject: "email",
                agent_id: "NULL",
                used: "accepted",
                used_at: "accepted_at",
            },
            Self::Agent => Tables {
                invites: "agent_invites",
                vaults: "agent_invite_vaults",
                subject: "agent_name",
                agent_id: "agent_id",
                used: "redeemed",
                used_at: "redeemed_at",
            },
        }
    }

    fn token_kind(self) -> TokenKind {
        match self {
            Self::User => TokenKind::UserInvite,
            Self::Agent => TokenKind::AgentInvite,
        }
    }

    /// The prefix of this kind's raw tokens.
    pub fn token_prefix(self) -> &'static str {
        self.token_kind().prefix()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    Pending,
    /// Accepted (a user invite) or redeemed (an agent invite).
    Used,
    Revoked,
    Expired,
}

#[derive(Debug, Clone)]
pub struct Invite {
    pub id: String,
    pub kind: InviteKind,
    pub token_suffix: String,
    /// The invited email (user invites) or agent name (agent invites).
    pub subject: String,
    /// Set for an agent rotation invite.
    pub agent_id: Option<String>,
    pub role: InstanceRole,
    pub status: InviteStatus,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Vault pre-assignments: (vault id, vault name, role).
    pub vaults: Vec<(String, String, VaultRole)>,
}

impl Invite {
    /// The status word of the API: `accepted` for users, `redeemed` for agents.
    pub fn status_str(&self) -> &'static str {
        match self.status {
            InviteStatus::Pending => "pending",
            InviteStatus::Used => self.kind.used_status(),
            InviteStatus::Revoked => "revoked",
            InviteStatus::Expired => "expired",
        }
    }
}

fn select(kind: InviteKind) -> String {
    let t = kind.tables();
    format!(
        "SELECT id, token_suffix, {subject}, {agent_id}, role, status, created_by, created_at, expires_at FROM {invites}",
        subject = t.subject,
        agent_id = t.agent_id,
        invites = t.invites
    )
}

fn from_row(kind: InviteKind, r: &Row<'_>) -> super::db::Result<Invite> {
    let expires_at: i64 = r.get(8)?;
    let status = match r.get::<_, String>(5)?.as_str() {
        "accepted" | "redeemed" => InviteStatus::Used,
        "revoked" => InviteStatus::Revoked,
        _ if expires_at <= now() => InviteStatus::Expired,
        _ => InviteStatus::Pending,
    };
    Ok(Invite {
        id: r.get(0)?,
        kind,
        token_suffix: r.get(1)?,
        subject: r.get(2)?,
        agent_id: r.get(3)?,
        role: column(r.get(4)?)?,
        status,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_at,
        vaults: Vec::new(),
    })
}

fn with_vaults(conn: &Connection, mut invite: Invite) -> Result<Invite> {
    let mut stmt = conn.prepare(&format!(
        "SELECT v.id, v.name, iv.role FROM {} iv JOIN vaults v ON v.id = iv.vault_id
         WHERE iv.invite_id = ?1 ORDER BY v.name",
        invite.kind.tables().vaults
    ))?;
    invite.vaults = stmt
        .query_map([&invite.id], |r| {
            Ok((r.get(0)?, r.get(1)?, column(r.get(2)?)?))
        })?
        .collect::<super::db::Result<_>>()?;
    Ok(invite)
}

fn one(
    conn: &Connection,
    kind: InviteKind,
    filter: &str,
    args: impl super::db::Params,
) -> Result<Option<Invite>> {
    let invite = conn
        .query_row(&format!("{} WHERE {filter}", select(kind)), args, |r| {
            from_row(kind, r)
        })
        .optional()?;
    invite.map(|i| with_vaults(conn, i)).transpose()
}

/// What a new invite grants.
pub struct NewInvite<'a> {
    pub kind: InviteKind,
    pub subject: &'a str,
    /// An agent to rotate (agent invites only).
    pub agent_id: Option<&'a str>,
    pub role: InstanceRole,
    pub vaults: &'a [(String, VaultRole)],
    pub created_by: &'a str,
    pub ttl_secs: i64,
}

/// Creates a pending invite with its vault pre-assignments; returns it and the raw token.
pub fn create(conn: &Connection, new: &NewInvite<'_>) -> Result<(Invite, NewToken)> {
    let t = new.kind.tables();
    let token = mint_token(new.kind.token_kind());
    let raw = token.raw.expose();
    let suffix = raw[raw.len().saturating_sub(SUFFIX_LEN)..].to_owned();
    let id = new_id();
    let now = now();
    match new.kind {
        InviteKind::User => conn.execute(
            "INSERT INTO user_invites (id, token_hash, token_suffix, email, role, status,
                 created_by, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8)",
            params![
                id,
                token.hash,
                suffix,
                new.subject,
                new.role.as_str(),
                new.created_by,
                now,
                now + new.ttl_secs
            ],
        )?,
        InviteKind::Agent => conn.execute(
            "INSERT INTO agent_invites (id, token_hash, token_suffix, agent_name, agent_id, role,
                 status, created_by, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)",
            params![
                id,
                token.hash,
                suffix,
                new.subject,
                new.agent_id,
                new.role.as_str(),
                new.created_by,
                now,
                now + new.ttl_secs
            ],
        )?,
    };
    for (vault_id, role) in new.vaults {
        conn.execute(
            &format!(
                "INSERT INTO {} (invite_id, vault_id, role) VALUES (?1, ?2, ?3)
                 ON CONFLICT (invite_id, vault_id) DO UPDATE SET role = excluded.role",
                t.vaults
            ),
            params![id, vault_id, role.as_str()],
        )?;
    }
    let invite = by_id(conn, new.kind, &id)?.ok_or(super::db::Error::QueryReturnedNoRows)?;
    Ok((invite, token))
}

pub fn by_id(conn: &Connection, kind: InviteKind, id: &str) -> Result<Option<Invite>> {
    one(conn, kind, "id = ?1", [id])
}

pub fn by_token_hash(conn: &Connection, kind: InviteKind, hash: &str) -> Result<Option<Invite>> {
    one(conn, kind, "token_hash = ?1", [hash])
}

/// Every invite of a kind, newest first.
pub fn list(conn: &Connection, kind: InviteKind) -> Result<Vec<Invite>> {
    let mut stmt = conn.prepare(&format!(
        "{} ORDER BY created_at DESC, {}",
        select(kind),
        kind.tables().subject
    ))?;
    let invites: Vec<Invite> = stmt
        .query_map((), |r| from_row(kind, r))?
        .collect::<super::db::Result<_>>()?;
    invites.into_iter().map(|i| with_vaults(conn, i)).collect()
}

/// The live (pending, unexpired) invite for an email, or that would create an agent of this
/// name (rotation invites do not count: the agent exists).
pub fn pending_for(conn: &Connection, kind: InviteKind, subject: &str) -> Result<Option<Invite>> {
    let filter = format!(
        "{} = ?1 AND status = 'pending' AND expires_at > ?2{}",
        kind.tables().subject,
        if kind == InviteKind::Agent {
            " AND agent_id IS NULL"
        } else {
            ""
        }
    );
    one(conn, kind, &filter, params![subject, now()])
}

/// How many invites of `kind` that `created_by` made are still pending (and unexpired).
pub fn pending_count_by(conn: &Connection, kind: InviteKind, created_by: &str) -> Result<i64> {
    Ok(conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM {} WHERE created_by = ?1 AND status = 'pending' AND expires_at > ?2",
            kind.tables().invites
        ),
        params![created_by, now()],
        |r| r.get(0),
    )?)
}

/// How many invites of `kind` `created_by` has made since `since` (unix seconds), whatever
/// became of them.
pub fn created_count_since(
    conn: &Connection,
    kind: InviteKind,
    created_by: &str,
    since: i64,
) -> Result<i64> {
    Ok(conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM {} WHERE created_by = ?1 AND created_at > ?2",
            kind.tables().invites
        ),
        params![created_by, since],
        |r| r.get(0),
    )?)
}

/// The latest used invite of `subject`: for a user, the invite their account was made from.
pub fn last_used_for(conn: &Connection, kind: InviteKind, subject: &str) -> Result<Option<Invite>> {
    let t = kind.tables();
    let filter = format!(
        "{} = ?1 AND status = ?2 ORDER BY {} DESC LIMIT 1",
        t.subject, t.used_at
    );
    one(conn, kind, &filter, params![subject, t.used])
}

/// Pending user invites that pre-assign a vault: (email, role) for `vault user list`.
pub fn pending_users_for_vault(
    conn: &Connection,
    vault_id: &str,
) -> Result<Vec<(String, VaultRole)>> {
    let mut stmt = conn.prepare(
        "SELECT i.email, iv.role FROM user_invite_vaults iv JOIN user_invites i ON i.id = iv.invite_id
         WHERE iv.vault_id = ?1 AND i.status = 'pending' AND i.expires_at > ?2 ORDER BY i.email",
    )?;
    let rows = stmt
        .query_map(params![vault_id, now()], |r| {
            Ok((r.get(0)?, column(r.get(1)?)?))
        })?
        .collect::<super::db::Result<_>>()?;
    Ok(rows)
}

/// Moves a pending invite to used (accepted/redeemed) or revoked; false if it was no longer
/// pending.
pub fn finish(conn: &Connection, kind: InviteKind, id: &str, used: bool) -> Result<bool> {
    let t = kind.tables();
    let (status, at) = if used {
        (t.used, Some(now()))
    } else {
        ("revoked", None)
    };
    Ok(conn.execute(
        &format!(
            "UPDATE {} SET status = ?2, {} = ?3 WHERE id = ?1 AND status = 'pending'",
            t.invites, t.used_at
        ),
        params![id, status, at],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, users, vaults};

    crate::on_both_backends!(both_kinds_share_one_lifecycle);
    fn both_kinds_share_one_lifecycle(store: Store) {
        store
            .write(|tx| {
                let owner = users::insert(tx, "o@example.com", InstanceRole::Owner, true, None)?;
                let vault = vaults::by_name(tx, "default")?.unwrap();
                for (kind, subject, role) in [
                    (InviteKind::User, "a@example.com", VaultRole::Member),
                    (InviteKind::Agent, "bot", VaultRole::Proxy),
                ] {
                    let (invite, token) = create(
                        tx,
                        &NewInvite {
                            kind,
                            subject,
                            agent_id: None,
                            role: InstanceRole::Member,
                            vaults: &[(vault.id.clone(), role)],
                            created_by: &owner.id,
                            ttl_secs: 60,
                        },
                    )?;
                    assert!(token.raw.expose().starts_with(kind.token_prefix()));
                    assert!(token.raw.expose().ends_with(&invite.token_suffix));
                    assert_eq!(invite.vaults[0].2, role);
                    let found = by_token_hash(tx, kind, &token.hash)?.unwrap();
                    assert_eq!(found.subject, subject);
                    assert!(pending_for(tx, kind, subject)?.is_some());
                    assert!(finish(tx, kind, &invite.id, true)?);
                    assert!(!finish(tx, kind, &invite.id, false)?, "used only once");
                    let used = by_id(tx, kind, &invite.id)?.unwrap();
                    assert_eq!(used.status, InviteStatus::Used);
                    assert_eq!(
                        used.status_str(),
                        if kind == InviteKind::User {
                            "accepted"
                        } else {
                            "redeemed"
                        }
                    );
                    assert!(pending_for(tx, kind, subject)?.is_none());
                }
                Ok(())
            })
            .unwrap();
    }
}
