//! The services of a vault, one row each, keyed by (host, port, path) — the identity used to
//! upsert, enable, disable and remove them — with the whole definition as JSON. Rows keep
//! the order they were given in (`position`), which is the order `service list` prints.

use super::db::{Connection, params};

use super::{Result, StoreError, now};
use crate::services::Service;

fn key(service: &Service) -> (String, i64, String) {
    (
        service.host.clone(),
        service.port.map_or(0, i64::from),
        service.path.clone().unwrap_or_default(),
    )
}

fn encode(service: &Service) -> Result<String> {
    serde_json::to_string(service)
        .map_err(|e| StoreError::Corrupt(format!("service encoding: {e}")))
}

pub fn list(conn: &Connection, vault_id: &str) -> Result<Vec<Service>> {
    let mut stmt = conn.prepare(
        "SELECT config FROM services WHERE vault_id = ?1 ORDER BY position, host, port, path",
    )?;
    let rows: Vec<String> = stmt
        .query_map([vault_id], |r| r.get(0))?
        .collect::<super::db::Result<_>>()?;
    rows.iter()
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| StoreError::Corrupt(format!("stored service: {e}")))
        })
        .collect()
}

/// Replaces every service of the vault with `services`.
pub fn replace_all(conn: &Connection, vault_id: &str, services: &[Service]) -> Result<()> {
    conn.execute("DELETE FROM services WHERE vault_id = ?1", [vault_id])?;
    upsert(conn, vault_id, services)
}

/// Inserts or replaces each service by (host, port, path); new ones go to the end.
pub fn upsert(conn: &Connection, vault_id: &str, services: &[Service]) -> Result<()> {
    let now = now();
    for service in services {
        let (host, port, path) = key(service);
        let next: i64 = conn.query_row(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM services WHERE vault_id = ?1",
            [vault_id],
            |r| r.get(0),
        )?;
        conn.execute(
            "INSERT INTO services (vault_id, host, port, path, position, config, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (vault_id, host, port, path)
                 DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
            params![vault_id, host, port, path, next, encode(service)?, now],
        )?;
    }
    Ok(())
}

/// Removes one service; false if it was not there.
pub fn remove(conn: &Connection, vault_id: &str, service: &Service) -> Result<bool> {
    let (host, port, path) = key(service);
    Ok(conn.execute(
        "DELETE FROM services WHERE vault_id = ?1 AND host = ?2 AND port = ?3 AND path = ?4",
        params![vault_id, host, port, path],
    )? > 0)
}

pub fn clear(conn: &Connection, vault_id: &str) -> Result<usize> {
    Ok(conn.execute("DELETE FROM services WHERE vault_id = ?1", [vault_id])?)
}
