//! The per-vault request log: one row per proxied request, metadata only (method, host, path
//! without query, matched service, credential key *names*, status, duration, error code).

use rusqlite::{Connection, params};
use std::borrow::Cow;
use std::sync::Arc;

use super::Result;

/// One row. Shared parts are reference-counted and fixed names are static, so building a
/// record on the request path copies little.
#[derive(Debug, Clone)]
pub struct Record {
    pub vault_id: Arc<str>,
    pub actor_type: Option<&'static str>,
    pub actor_id: Option<String>,
    /// `mitm` (the forward proxy) or `explicit` (`/proxy/{host}/…` on the API port).
    pub ingress: &'static str,
    pub method: Cow<'static, str>,
    pub host: Arc<str>,
    pub path: String,
    pub service: Option<Arc<str>>,
    pub credential_keys: Arc<[String]>,
    /// Upstream status, or the broker's own when it refused; 0 if nothing was answered.
    pub status: u16,
    pub duration_ms: u64,
    pub error_code: Option<&'static str>,
    pub created_at: i64,
}

pub fn insert_all(conn: &Connection, records: &[Record]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO request_log (vault_id, actor_type, actor_id, ingress, method, host, path, service,
             credential_keys, status, duration_ms, error_code, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for r in records {
        let keys = serde_json::to_string(&*r.credential_keys).unwrap_or_else(|_| "[]".into());
        // A vault deleted while its requests were in flight: nothing to log against.
        let inserted = stmt.execute(params![
            &*r.vault_id,
            r.actor_type,
            r.actor_id,
            r.ingress,
            &*r.method,
            &*r.host,
            r.path,
            r.service.as_deref(),
            keys,
            r.status,
            r.duration_ms as i64,
            r.error_code,
            r.created_at
        ]);
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// The newest rows of a vault, newest first.
pub fn recent(conn: &Connection, vault_id: &str, limit: u32) -> Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare(
        "SELECT id, actor_type, actor_id, ingress, method, host, path, service, credential_keys,
                status, duration_ms, error_code, created_at
         FROM request_log WHERE vault_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![vault_id, limit], |r| {
            let keys: String = r.get(8)?;
            Ok(serde_json::json!({
                "id": r.get::<_, i64>(0)?,
                "actor_type": r.get::<_, Option<String>>(1)?,
                "actor_id": r.get::<_, Option<String>>(2)?,
                "ingress": r.get::<_, String>(3)?,
                "method": r.get::<_, String>(4)?,
                "host": r.get::<_, String>(5)?,
                "path": r.get::<_, String>(6)?,
                "service": r.get::<_, Option<String>>(7)?,
                "credential_keys": serde_json::from_str::<serde_json::Value>(&keys).unwrap_or_default(),
                "status": r.get::<_, i64>(9)?,
                "duration_ms": r.get::<_, i64>(10)?,
                "error_code": r.get::<_, Option<String>>(11)?,
                "created_at": r.get::<_, i64>(12)?,
            }))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Deletes rows older than `max_age_secs` (0: no age limit) and keeps at most
/// `max_rows_per_vault` per vault (0: no cap). Returns the number of rows removed.
pub fn trim(
    conn: &Connection,
    now: i64,
    max_age_secs: i64,
    max_rows_per_vault: i64,
) -> Result<usize> {
    let mut removed = 0;
    if max_age_secs > 0 {
        removed += conn.execute(
            "DELETE FROM request_log WHERE created_at < ?1",
            [now - max_age_secs],
        )?;
    }
    if max_rows_per_vault > 0 {
        removed += conn.execute(
            "DELETE FROM request_log WHERE id IN (
                 SELECT id FROM (
                     SELECT id, ROW_NUMBER() OVER (PARTITION BY vault_id ORDER BY id DESC) AS n
                     FROM request_log)
                 WHERE n > ?1)",
            [max_rows_per_vault],
        )?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, vaults};

    fn record(vault_id: &str, created_at: i64) -> Record {
        Record {
            vault_id: vault_id.into(),
            actor_type: Some("scoped"),
            actor_id: None,
            ingress: "mitm",
            method: "GET".into(),
            host: "api.example.com".into(),
            path: "/v1".into(),
            service: Some("api.example.com".into()),
            credential_keys: vec!["API_KEY".to_owned()].into(),
            status: 200,
            duration_ms: 3,
            error_code: None,
            created_at,
        }
    }

    #[test]
    fn retention_trims_by_age_and_per_vault_count() {
        let store = Store::open_in_memory().unwrap();
        let a = store
            .read(|c| vaults::by_name(c, "default"))
            .unwrap()
            .unwrap();
        let b = store.write(|tx| vaults::insert(tx, "b")).unwrap();
        let mut rows: Vec<Record> = (0..5).map(|i| record(&a.id, 1000 + i)).collect();
        rows.push(record(&b.id, 10));
        rows.push(record("no-such-vault", 1000));
        store.write(|tx| insert_all(tx, &rows)).unwrap();
        assert_eq!(store.read(|c| recent(c, &a.id, 100)).unwrap().len(), 5);
        let removed = store.write(|tx| trim(tx, 1100, 500, 3)).unwrap();
        assert_eq!(removed, 3, "one too old in b, two over the cap in a");
        let left = store.read(|c| recent(c, &a.id, 100)).unwrap();
        assert_eq!(left.len(), 3);
        assert_eq!(left[0]["created_at"], 1004, "newest kept, newest first");
    }
}
