//! Agents: named, non-human principals holding an instance role, vault grants and (once their
//! invite is redeemed) a long-lived agent token. Deleting an agent removes its sessions
//! (cascade) and grants.

use super::db::{Connection, OptionalExtension, Row, params};

use super::roles::column;
use super::{InstanceRole, Result, conflict_as, new_id, now};

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub role: InstanceRole,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, role, created_by, created_at, updated_at";

fn from_row(r: &Row<'_>) -> super::db::Result<Agent> {
    Ok(Agent {
        id: r.get(0)?,
        name: r.get(1)?,
        role: column(r.get(2)?)?,
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

pub fn insert(
    conn: &Connection,
    name: &str,
    role: InstanceRole,
    created_by: Option<&str>,
) -> Result<Agent> {
    let now = now();
    let agent = Agent {
        id: new_id(),
        name: name.to_owned(),
        role,
        created_by: created_by.map(str::to_owned),
        created_at: now,
        updated_at: now,
    };
    conn.execute(
        "INSERT INTO agents (id, name, role, status, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?5)",
        params![agent.id, agent.name, role.as_str(), agent.created_by, now],
    )
    .map_err(conflict_as(&format!("an agent named \"{name}\"")))?;
    Ok(agent)
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<Agent>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM agents WHERE name = ?1"),
            [name],
            from_row,
        )
        .optional()?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Agent>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Agent>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM agents ORDER BY name"))?;
    let agents = stmt
        .query_map((), from_row)?
        .collect::<super::db::Result<_>>()?;
    Ok(agents)
}

pub fn rename(conn: &Connection, id: &str, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE agents SET name = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, name, now()],
    )
    .map_err(conflict_as(&format!("an agent named \"{name}\"")))?;
    Ok(())
}

/// Makes `user_id` the agent's inviter: whose rights its vault roles follow.
pub fn set_created_by(conn: &Connection, id: &str, user_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE agents SET created_by = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, user_id, now()],
    )?;
    Ok(())
}

pub fn set_role(conn: &Connection, id: &str, role: InstanceRole) -> Result<()> {
    conn.execute(
        "UPDATE agents SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, role.as_str(), now()],
    )?;
    Ok(())
}

/// Deletes the agent with its sessions (cascade), grants and the scoped tokens it minted.
pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    end_sessions(conn, id)?;
    conn.execute(
        "DELETE FROM vault_grants WHERE actor_type = 'agent' AND actor_id = ?1",
        [id],
    )?;
    conn.execute("DELETE FROM agents WHERE id = ?1", [id])?;
    Ok(())
}

/// Ends every session of the agent and every scoped token it minted.
pub fn end_sessions(conn: &Connection, id: &str) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE agent_id = ?1 OR (created_by_type = 'agent' AND created_by_id = ?1)",
        [id],
    )?)
}

/// Live sessions of the agent (its token and scoped tokens it minted).
pub fn session_count(conn: &Connection, id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM sessions WHERE (agent_id = ?1 OR (created_by_type = 'agent' AND created_by_id = ?1))
             AND (expires_at IS NULL OR expires_at > ?2)",
        params![id, now()],
        |r| r.get(0),
    )?)
}
