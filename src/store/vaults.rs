//! Vaults and vault grants (the membership of users and agents, with their vault role).

use super::db::{Connection, OptionalExtension, Row, params};

use super::roles::column;
use super::{Result, VaultRole, conflict_as, new_id, now};

#[derive(Debug, Clone)]
pub struct Vault {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// Who holds a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorType {
    User,
    Agent,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
        }
    }
}

fn from_row(r: &Row<'_>) -> super::db::Result<Vault> {
    Ok(Vault {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

pub fn insert(conn: &Connection, name: &str) -> Result<Vault> {
    let vault = Vault {
        id: new_id(),
        name: name.to_owned(),
        created_at: now(),
    };
    conn.execute(
        "INSERT INTO vaults (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![vault.id, vault.name, vault.created_at],
    )
    .map_err(conflict_as(&format!("vault \"{name}\"")))?;
    Ok(vault)
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<Vault>> {
    Ok(conn
        .query_row(
            "SELECT id, name, created_at FROM vaults WHERE name = ?1",
            [name],
            from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Vault>> {
    let mut stmt = conn.prepare("SELECT id, name, created_at FROM vaults ORDER BY name")?;
    let vaults = stmt
        .query_map((), from_row)?
        .collect::<super::db::Result<_>>()?;
    Ok(vaults)
}

/// Grants `role` on a vault, replacing any earlier grant of the same actor.
pub fn grant(
    conn: &Connection,
    vault_id: &str,
    actor: ActorType,
    actor_id: &str,
    role: VaultRole,
) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_grants (vault_id, actor_type, actor_id, role, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (vault_id, actor_type, actor_id) DO UPDATE SET role = excluded.role",
        params![vault_id, actor.as_str(), actor_id, role.as_str(), now()],
    )?;
    super::sessions::end_minted_above(conn, vault_id, actor, actor_id, Some(role))?;
    Ok(())
}

pub fn role_of(
    conn: &Connection,
    vault_id: &str,
    actor: ActorType,
    actor_id: &str,
) -> Result<Option<VaultRole>> {
    let role: Option<String> = conn
        .query_row(
            "SELECT role FROM vault_grants WHERE vault_id = ?1 AND actor_type = ?2 AND actor_id = ?3",
            params![vault_id, actor.as_str(), actor_id],
            |r| r.get(0),
        )
        .optional()?;
    role.map(|r| column(r).map_err(Into::into)).transpose()
}

/// The vaults an actor holds a grant on, with the role, ordered by vault name.
pub fn grants_of(
    conn: &Connection,
    actor: ActorType,
    actor_id: &str,
) -> Result<Vec<(Vault, VaultRole)>> {
    let mut stmt = conn.prepare(
        "SELECT v.id, v.name, v.created_at, g.role FROM vault_grants g
         JOIN vaults v ON v.id = g.vault_id
         WHERE g.actor_type = ?1 AND g.actor_id = ?2 ORDER BY v.name",
    )?;
    let rows = stmt
        .query_map(params![actor.as_str(), actor_id], |r| {
            Ok((from_row(r)?, column(r.get(3)?)?))
        })?
        .collect::<super::db::Result<_>>()?;
    Ok(rows)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Vault>> {
    Ok(conn
        .query_row(
            "SELECT id, name, created_at FROM vaults WHERE id = ?1",
            [id],
            from_row,
        )
        .optional()?)
}

pub fn rename(conn: &Connection, id: &str, new_name: &str) -> Result<()> {
    conn.execute(
        "UPDATE vaults SET name = ?2 WHERE id = ?1",
        params![id, new_name],
    )
    .map_err(conflict_as(&format!("vault \"{new_name}\"")))?;
    Ok(())
}

/// Deletes a vault; credentials, services, grants, sessions and settings go with it (cascade).
pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM vaults WHERE id = ?1", [id])?;
    Ok(())
}

pub fn revoke(conn: &Connection, vault_id: &str, actor: ActorType, actor_id: &str) -> Result<bool> {
    super::sessions::end_minted_above(conn, vault_id, actor, actor_id, None)?;
    Ok(conn.execute(
        "DELETE FROM vault_grants WHERE vault_id = ?1 AND actor_type = ?2 AND actor_id = ?3",
        params![vault_id, actor.as_str(), actor_id],
    )? > 0)
}

/// The vaults whose only admin is `actor`: it cannot be deleted while they would be left
/// without one.
pub fn solely_administered_by(
    conn: &Connection,
    actor: ActorType,
    actor_id: &str,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT v.name FROM vault_grants g JOIN vaults v ON v.id = g.vault_id
         WHERE g.actor_type = ?1 AND g.actor_id = ?2 AND g.role = 'admin'
           AND (SELECT COUNT(*) FROM vault_grants o
                WHERE o.vault_id = g.vault_id AND o.role = 'admin') = 1
         ORDER BY v.name",
    )?;
    let names = stmt
        .query_map(params![actor.as_str(), actor_id], |r| r.get(0))?
        .collect::<super::db::Result<_>>()?;
    Ok(names)
}

/// How many admins (users and agents) a vault has: the last one cannot leave or be demoted.
pub fn admin_count(conn: &Connection, vault_id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM vault_grants WHERE vault_id = ?1 AND role = 'admin'",
        [vault_id],
        |r| r.get(0),
    )?)
}

/// The users holding a grant on a vault: (email, role), ordered by email.
pub fn user_members(conn: &Connection, vault_id: &str) -> Result<Vec<(String, VaultRole)>> {
    let mut stmt = conn.prepare(
        "SELECT u.email, g.role FROM vault_grants g JOIN users u ON u.id = g.actor_id
         WHERE g.vault_id = ?1 AND g.actor_type = 'user' ORDER BY u.email",
    )?;
    let rows = stmt
        .query_map([vault_id], |r| Ok((r.get(0)?, column(r.get(1)?)?)))?
        .collect::<super::db::Result<_>>()?;
    Ok(rows)
}

/// The agents holding a grant on a vault: (name, role), ordered by name.
pub fn agent_members(conn: &Connection, vault_id: &str) -> Result<Vec<(String, VaultRole)>> {
    let mut stmt = conn.prepare(
        "SELECT a.name, g.role FROM vault_grants g JOIN agents a ON a.id = g.actor_id
         WHERE g.vault_id = ?1 AND g.actor_type = 'agent' ORDER BY a.name",
    )?;
    let rows = stmt
        .query_map([vault_id], |r| Ok((r.get(0)?, column(r.get(1)?)?)))?
        .collect::<super::db::Result<_>>()?;
    Ok(rows)
}

/// Settings of one vault (`unmatched_host_policy`, …).
pub fn setting(conn: &Connection, vault_id: &str, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM vault_settings WHERE vault_id = ?1 AND key = ?2",
            params![vault_id, key],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn set_setting(conn: &Connection, vault_id: &str, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_settings (vault_id, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (vault_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![vault_id, key, value, now()],
    )?;
    Ok(())
}
