//! The per-vault request log: one row per proxied request, metadata only (method, host, path
//! without query, matched service, credential key *names*, status, duration, error code).

use std::borrow::Cow;
use std::sync::Arc;

use super::db::{Connection, OptionalExtension, ToValue, Value};
use serde::Serialize;

use super::Result;

mod batch;
pub use batch::{Batch, Entry};

/// One row. Shared parts are reference-counted and fixed names are static, so building a
/// record on the request path copies little.
#[derive(Debug, Clone)]
pub struct Record {
    pub vault_id: Arc<str>,
    pub actor_type: Option<&'static str>,
    pub actor_id: Option<Arc<str>>,
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

const COLUMNS: &str = "vault_id, actor_type, actor_id, ingress, method, host, path, service, \
                       credential_keys, status, duration_ms, error_code, created_at";
const PER_ROW: usize = 13;
/// Rows per INSERT on PostgreSQL: one statement (one round trip) carries this many records,
/// well under its limit on placeholders.
const ROWS_PER_INSERT: usize = 200;

pub fn insert_all(conn: &Connection, batch: &Batch) -> Result<()> {
    // A vault deleted while its requests were in flight: nothing to log against, so its rows
    // are skipped (a failed insert would abort a PostgreSQL transaction). Writers are
    // serialised, so the set of vaults cannot change under us.
    let vaults: std::collections::HashSet<String> = conn
        .prepare("SELECT id FROM vaults")?
        .query_map((), |r| r.get(0))?
        .collect::<super::db::Result<_>>()?;
    let kept = batch.entries().filter(|e| vaults.contains(e.vault_id));
    if let Connection::Sqlite(sqlite) = conn {
        return insert_sqlite(sqlite, kept);
    }
    let kept: Vec<Entry> = kept.collect();
    for chunk in kept.chunks(ROWS_PER_INSERT) {
        let args: Vec<Value> = chunk.iter().flat_map(row_values).collect();
        conn.execute(&insert_sql(chunk.len()), args)?;
    }
    Ok(())
}

/// SQLite has no round trip to save: one prepared single-row statement, bound to the batch's
/// own bytes, costs far less than a statement of thousands of placeholders.
fn insert_sqlite<'a>(
    conn: &rusqlite::Connection,
    entries: impl Iterator<Item = Entry<'a>>,
) -> Result<()> {
    // Light traffic writes a record at a time: the statement's text is made once.
    static INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
    let mut statement = conn.prepare_cached(&INSERT_ONE)?;
    for e in entries {
        statement.execute(rusqlite::params![
            e.vault_id,
            e.actor_type,
            e.actor_id,
            e.ingress,
            e.method,
            e.host,
            e.path,
            e.service,
            e.credential_keys,
            e.status,
            e.duration_ms,
            e.error_code,
            e.created_at,
        ])?;
    }
    Ok(())
}

/// `INSERT … VALUES (?1, …, ?13), (?14, …)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = format!("INSERT INTO request_log ({COLUMNS}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 1..=PER_ROW {
            let sep = if column == 1 { "" } else { ", " };
            let _ = write!(sql, "{sep}?{}", row * PER_ROW + column);
        }
        sql.push(')');
    }
    sql
}

fn row_values(e: &Entry) -> [Value; PER_ROW] {
    [
        e.vault_id.to_value(),
        e.actor_type.to_value(),
        e.actor_id.to_value(),
        e.ingress.to_value(),
        e.method.to_value(),
        e.host.to_value(),
        e.path.to_value(),
        e.service.to_value(),
        e.credential_keys.to_value(),
        e.status.to_value(),
        e.duration_ms.to_value(),
        e.error_code.to_value(),
        e.created_at.to_value(),
    ]
}

/// One logged request as the API and the web UI show it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
    pub ingress: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub service: Option<String>,
    pub credential_keys: Vec<String>,
    pub status: i64,
    pub duration_ms: i64,
    pub error_code: Option<String>,
    pub created_at: i64,
}

/// Which status codes a query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    /// A class: `2` keeps 200–299.
    Class(u16),
    /// Requests that got no upstream answer (status 0).
    NoAnswer,
}

/// A query on one vault's log; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub limit: u32,
    /// Rows whose host contains this text.
    pub host: Option<String>,
    pub status: Option<StatusFilter>,
    /// Seconds since the epoch, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Paging towards older rows: ids below this one.
    pub before_id: Option<i64>,
    /// The live tail: ids above this one.
    pub after_id: Option<i64>,
}

/// The rows of a vault matching `query`, newest first.
pub fn query(conn: &Connection, vault_id: &str, query: &Query) -> Result<Vec<Row>> {
    let mut sql = String::from(
        "SELECT id, actor_type, actor_id, ingress, method, host, path, service, credential_keys,
                status, duration_ms, error_code, created_at
         FROM request_log WHERE vault_id = ?",
    );
    let mut args: Vec<super::db::Value> = vec![vault_id.to_owned().into()];
    let mut and = |clause: &str, value: super::db::Value| {
        sql.push_str(" AND ");
        sql.push_str(clause);
        args.push(value);
    };
    if let Some(host) = &query.host {
        // A substring match spelled the same in both engines: LIKE with its wildcards escaped.
        let escaped: String = host
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        and(
            "lower(host) LIKE ? ESCAPE '\\'",
            format!("%{escaped}%").into(),
        );
    }
    match query.status {
        Some(StatusFilter::Exact(code)) => and("status = ?", i64::from(code).into()),
        Some(StatusFilter::Class(class)) => {
            let low = i64::from(class) * 100;
            and("status >= ?", low.into());
            and("status < ?", (low + 100).into());
        }
        Some(StatusFilter::NoAnswer) => and("status = ?", 0i64.into()),
        None => {}
    }
    if let Some(since) = query.since {
        and("created_at >= ?", since.into());
    }
    if let Some(until) = query.until {
        and("created_at <= ?", until.into());
    }
    if let Some(before) = query.before_id {
        and("id < ?", before.into());
    }
    if let Some(after) = query.after_id {
        and("id > ?", after.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(i64::from(query.limit).into());
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(args, |r| {
            let keys: String = r.get(8)?;
            Ok(Row {
                id: r.get(0)?,
                actor_type: r.get(1)?,
                actor_id: r.get(2)?,
                ingress: r.get(3)?,
                method: r.get(4)?,
                host: r.get(5)?,
                path: r.get(6)?,
                service: r.get(7)?,
                credential_keys: serde_json::from_str(&keys).unwrap_or_default(),
                status: r.get(9)?,
                duration_ms: r.get(10)?,
                error_code: r.get(11)?,
                created_at: r.get(12)?,
            })
        })?
        .collect::<super::db::Result<_>>()?;
    Ok(rows)
}

/// The newest rows of a vault, newest first.
pub fn recent(conn: &Connection, vault_id: &str, limit: u32) -> Result<Vec<Row>> {
    query(
        conn,
        vault_id,
        &Query {
            limit,
            ..Query::default()
        },
    )
}

/// Rows deleted per transaction by [`trim`]: the write lock is held for tens of
/// milliseconds at a time, never for the whole pass (millions of rows took seconds).
pub const TRIM_CHUNK: usize = 5_000;

/// What a retention pass removes.
#[derive(Debug, Clone, Copy)]
pub struct Trim<'a> {
    pub now: i64,
    /// Rows older than this go (0: no age limit).
    pub max_age_secs: i64,
    /// Each vault keeps at most this many rows (0: no cap)…
    pub max_rows_per_vault: i64,
    /// …checked for these vaults only (those that logged since the last pass), or all.
    pub vaults: Option<&'a [String]>,
    /// Rows deleted per transaction.
    pub chunk: usize,
}

/// Applies `trim` in transactions of at most `trim.chunk` rows with a pause between them, so
/// other writers (sign-ins, credentials, the log itself) wait for one chunk, not the pass.
/// Returns the number of rows removed.
pub fn trim(store: &super::Store, trim: Trim<'_>) -> Result<usize> {
    let Trim {
        now,
        max_age_secs,
        max_rows_per_vault,
        vaults,
        chunk,
    } = trim;
    let chunk = chunk.max(1);
    let limit = chunk as i64;
    let mut removed = 0;
    // Lets a waiting writer take the lock before the next chunk.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(1));
    if max_age_secs > 0 {
        // There is no index on time (keeping one cost every logged request more than this
        // walk costs a pass): the log is read in windows of `chunk` rows in id order, each
        // window's old rows deleted by their id range. Old rows mostly come first, but a long
        // request's row is written when it ends, after younger ones: every window is checked.
        let cutoff = now - max_age_secs;
        let mut after = 0i64;
        loop {
            let end: Option<i64> = store.read(|c| {
                Ok(c.query_row(
                    "SELECT max(id) FROM (
                         SELECT id FROM request_log WHERE id > ?1 ORDER BY id LIMIT ?2) AS next_rows",
                    vec![after.into(), limit.into()],
                    |r| r.get(0),
                )?)
            })?;
            let Some(end) = end else { break };
            let deleted = store.write(|tx| {
                Ok(tx.execute(
                    "DELETE FROM request_log WHERE id > ?1 AND id <= ?2 AND created_at < ?3",
                    vec![after.into(), end.into(), cutoff.into()],
                )?)
            })?;
            removed += deleted;
            after = end;
            if deleted > 0 {
                pause();
            }
        }
    }
    let mut in_chunks = |sql: &str, args: &dyn Fn() -> Vec<Value>| -> Result<()> {
        loop {
            let deleted = store.write(|tx| Ok(tx.execute(sql, args())?))?;
            removed += deleted;
            if deleted < chunk {
                return Ok(());
            }
            pause();
        }
    };
    if max_rows_per_vault > 0 {
        // Each vault's newest row past the cap, found once through the per-vault index; rows
        // logged meanwhile are newer, so the cut stays right.
        let cuts: Vec<(String, i64)> = store.read(|c| {
            let vaults: Vec<String> = match vaults {
                Some(vaults) => vaults.to_vec(),
                None => c
                    .prepare("SELECT id FROM vaults")?
                    .query_map((), |r| r.get(0))?
                    .collect::<super::db::Result<_>>()?,
            };
            let mut cuts = Vec::new();
            for vault in vaults {
                let cut: Option<i64> = c
                    .query_row(
                        "SELECT id FROM request_log WHERE vault_id = ?1
                         ORDER BY id DESC LIMIT 1 OFFSET ?2",
                        vec![Value::from(vault.clone()), max_rows_per_vault.into()],
                        |r| r.get(0),
                    )
                    .optional()?;
                cuts.extend(cut.map(|cut| (vault, cut)));
            }
            Ok(cuts)
        })?;
        for (vault, cut) in cuts {
            in_chunks(
                "DELETE FROM request_log WHERE id IN (
                     SELECT id FROM request_log WHERE vault_id = ?1 AND id <= ?2
                     ORDER BY id LIMIT ?3)",
                &|| vec![vault.clone().into(), cut.into(), limit.into()],
            )?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::{Store, vaults};

    pub(crate) fn record(vault_id: &str, created_at: i64) -> Record {
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

    crate::on_both_backends!(queries_filter_and_page);
    fn queries_filter_and_page(store: Store) {
        let a = store
            .read(|c| vaults::by_name(c, "default"))
            .unwrap()
            .unwrap();
        let mut rows: Vec<Record> = (0..6).map(|i| record(&a.id, 1000 + i)).collect();
        rows[1].host = "other.example.org".into();
        rows[2].status = 404;
        rows[3].status = 0;
        store
            .write(|tx| insert_all(tx, &rows.iter().collect()))
            .unwrap();
        let run = |q: Query| {
            store
                .read(|c| query(c, &a.id, &Query { limit: 100, ..q }))
                .unwrap()
        };
        assert_eq!(run(Query::default()).len(), 6);
        let other = run(Query {
            host: Some("OTHER".into()),
            ..Query::default()
        });
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].host, "other.example.org");
        assert_eq!(
            run(Query {
                status: Some(StatusFilter::Class(4)),
                ..Query::default()
            })
            .len(),
            1
        );
        assert_eq!(
            run(Query {
                status: Some(StatusFilter::Exact(200)),
                ..Query::default()
            })
            .len(),
            4
        );
        assert_eq!(
            run(Query {
                status: Some(StatusFilter::NoAnswer),
                ..Query::default()
            })
            .len(),
            1
        );
        assert_eq!(
            run(Query {
                since: Some(1004),
                ..Query::default()
            })
            .len(),
            2
        );
        let all = run(Query::default());
        let older = run(Query {
            before_id: Some(all[1].id),
            ..Query::default()
        });
        assert_eq!(older.len(), 4);
        let newer = run(Query {
            after_id: Some(all[1].id),
            ..Query::default()
        });
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].id, all[0].id);
        let page = store
            .read(|c| {
                query(
                    c,
                    &a.id,
                    &Query {
                        limit: 2,
                        ..Query::default()
                    },
                )
            })
            .unwrap();
        assert_eq!(page.len(), 2);
    }

    crate::on_both_backends!(retention_trims_by_age_and_per_vault_count);
    fn retention_trims_by_age_and_per_vault_count(store: Store) {
        let a = store
            .read(|c| vaults::by_name(c, "default"))
            .unwrap()
            .unwrap();
        let b = store.write(|tx| vaults::insert(tx, "b")).unwrap();
        let mut rows: Vec<Record> = (0..5).map(|i| record(&a.id, 1000 + i)).collect();
        rows.push(record(&b.id, 10));
        rows.push(record("no-such-vault", 1000));
        store
            .write(|tx| insert_all(tx, &rows.iter().collect()))
            .unwrap();
        assert_eq!(store.read(|c| recent(c, &a.id, 100)).unwrap().len(), 5);
        let pass = |now, max_age_secs, max_rows_per_vault, vaults: Option<&[String]>, chunk| {
            trim(
                &store,
                Trim {
                    now,
                    max_age_secs,
                    max_rows_per_vault,
                    vaults,
                    chunk,
                },
            )
            .unwrap()
        };
        // Chunks of 1: every row goes in a transaction of its own, and all that should go does.
        let removed = pass(1100, 500, 3, None, 1);
        assert_eq!(
            removed, 3,
            "one too old in b (written after younger rows), two over the cap in a"
        );
        let left = store.read(|c| recent(c, &a.id, 100)).unwrap();
        assert_eq!(left.len(), 3);
        assert_eq!(left[0].created_at, 1004, "newest kept, newest first");
        assert!(store.read(|c| recent(c, &b.id, 100)).unwrap().is_empty());
        assert_eq!(pass(1100, 500, 3, None, 1), 0, "nothing more");
        // Larger chunks than rows, and the cap alone, for the named vaults only.
        let more: Vec<Record> = (0..7).map(|i| record(&a.id, 2000 + i)).collect();
        store
            .write(|tx| insert_all(tx, &more.iter().collect()))
            .unwrap();
        assert_eq!(
            pass(2100, 0, 4, Some(std::slice::from_ref(&b.id)), TRIM_CHUNK),
            0
        );
        assert_eq!(
            pass(2100, 0, 4, Some(std::slice::from_ref(&a.id)), TRIM_CHUNK),
            6
        );
        let left = store.read(|c| recent(c, &a.id, 100)).unwrap();
        let kept: Vec<i64> = left.iter().map(|r| r.created_at).collect();
        assert_eq!(kept, vec![2006, 2005, 2004, 2003]);
    }
}
