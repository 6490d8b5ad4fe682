//! Instance-wide settings as key/value rows (`invite_only`, `allowed_email_domains`, …).

use super::db::{Connection, OptionalExtension, params};

use super::{Result, now};

pub fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM instance_settings WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO instance_settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now()],
    )?;
    Ok(())
}

/// The random id of this instance, made by the schema migration. `owner reset` uses it to
/// check that the server it talks to owns the local data directory.
pub fn instance_id(conn: &Connection) -> Result<String> {
    Ok(get(conn, "instance_id")?.unwrap_or_default())
}

/// Email domains allowed to register or be invited; empty means any.
pub fn allowed_domains(conn: &Connection) -> Result<Vec<String>> {
    Ok(get(conn, "allowed_email_domains")?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

pub fn invite_only(conn: &Connection) -> Result<bool> {
    Ok(get(conn, "invite_only")?.as_deref() == Some("true"))
}
