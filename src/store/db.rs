//! The one connection type the repository functions speak, over either back-end: an SQLite
//! connection (rusqlite) or a pooled PostgreSQL client (tokio-postgres through deadpool).
//!
//! Its surface is deliberately rusqlite-shaped (`execute`, `query_row`, `prepare` +
//! `query_map`, `params!`, `optional()`), so the aggregates keep one copy of their SQL. That
//! SQL is written in the dialect both engines share, with `?N` placeholders; PostgreSQL gets
//! them rewritten to `$N`. Values cross the boundary as [`Value`] (null, integer, real, text,
//! bytes), so a column reads the same from either engine.
//!
//! PostgreSQL calls block the calling thread, as SQLite's do: the client's futures are driven
//! with a plain executor while the connection tasks run on the store's own runtime
//! (see [`super::pg`]), so this works from synchronous code and inside async handlers alike.

use std::sync::Arc;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// One value bound to a placeholder or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("query returned no rows")]
    QueryReturnedNoRows,
    #[error("column {column}: {message}")]
    Conversion { column: usize, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// tokio-postgres' own Display says only "db error"; the server's message is what helps.
fn postgres_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => err.to_string(),
    }
}

impl Error {
    /// A stored value that does not have the shape its column promises.
    pub fn invalid(column: usize, message: impl Into<String>) -> Self {
        Self::Conversion {
            column,
            message: message.into(),
        }
    }

    /// A UNIQUE, PRIMARY KEY, FOREIGN KEY or CHECK constraint refused the change.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            // SQLSTATE class 23: integrity constraint violation.
            Self::Postgres(e) => e.code().is_some_and(|code| code.code().starts_with("23")),
            _ => false,
        }
    }
}

/// `.optional()` on a single-row result, as rusqlite spells it.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::QueryReturnedNoRows)
            | Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binding values

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Integer(n)
    }
}

/// A Rust value that can be bound to a placeholder.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Saturates: no stored integer (timestamps, counts, ports) comes near 2^63.
                Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

/// The placeholders' values of one statement.
pub trait Params {
    fn into_values(self) -> Vec<Value>;
}
impl Params for &[&dyn ToValue] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}
impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

/// `params![a, b, c]`: values of any [`ToValue`] type, as rusqlite's macro of the same name.
#[macro_export]
macro_rules! db_params {
    () => { &[] as &[&dyn $crate::store::db::ToValue] };
    ($($x:expr),+ $(,)?) => { &[$(&$x as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue] };
}
pub use crate::db_params as params;

// ---------------------------------------------------------------------------------------------
// Reading values

/// A Rust value that can be read from a column.
pub trait FromValue: Sized {
    fn from_value(value: Value) -> std::result::Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        Ok(value)
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}
impl FromValue for String {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(format!("expected text, found {}", kind(&other))),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(format!("expected bytes, found {}", kind(&other))),
        }
    }
}
impl FromValue for bool {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        i64::from_value(value).map(|n| n != 0)
    }
}
impl FromValue for f64 {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        match value {
            Value::Real(f) => Ok(f),
            #[allow(clippy::cast_precision_loss)] // counts and timestamps: far below 2^52
            Value::Integer(n) => Ok(n as f64),
            other => Err(format!("expected a number, found {}", kind(&other))),
        }
    }
}
macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> std::result::Result<Self, String> {
                match value {
                    Value::Integer(n) => <$t>::try_from(n)
                        .map_err(|_| format!("{n} is out of range for {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {}", kind(&other))),
                }
            }
        }
    )*};
}
int_from_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

/// A column named by position or by name.
pub trait RowIndex {
    fn index(&self, columns: &[String]) -> Option<usize>;
}
impl RowIndex for usize {
    fn index(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}
impl RowIndex for &str {
    fn index(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c.eq_ignore_ascii_case(self))
    }
}

/// One result row, already read off the wire.
pub struct Row<'a> {
    values: Vec<Value>,
    columns: &'a [String],
}

impl Row<'_> {
    pub fn get<I: RowIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let at = idx
            .index(self.columns)
            .ok_or_else(|| Error::invalid(self.values.len(), "no such column"))?;
        let value = self.values.get(at).cloned().unwrap_or(Value::Null);
        T::from_value(value).map_err(|message| Error::invalid(at, message))
    }
}

// ---------------------------------------------------------------------------------------------
// The connection

/// A connection (inside or outside a transaction) to whichever engine this store runs on.
pub enum Connection<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(&'a deadpool_postgres::Client),
}

/// A connection inside a [`super::Store::write`] transaction: the same type.
pub type Transaction<'a> = Connection<'a>;

struct Rows {
    columns: Vec<String>,
    values: Vec<Vec<Value>>,
}

impl Connection<'_> {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let values = params.into_values();
        match self {
            Self::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Self::Postgres(client) => {
                let stmt = block(client.prepare_cached(&placeholders(sql)))?;
                let refs = pg_refs(&values);
                let n = block(client.execute(&stmt, &refs))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs several statements without placeholders (schema steps).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Self::Postgres(client) => Ok(block(client.batch_execute(sql))?),
        }
    }

    /// The first row mapped by `f`; [`Error::QueryReturnedNoRows`] when there is none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let mut rows = self.rows(sql, params.into_values())?;
        if rows.values.is_empty() {
            return Err(Error::QueryReturnedNoRows);
        }
        let values = rows.values.swap_remove(0);
        f(&Row {
            values,
            columns: &rows.columns,
        })
    }

    /// Every row of `sql`, with the column names (for copying whole tables).
    pub fn query_all(&self, sql: &str) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        let rows = self.rows(sql, Vec::new())?;
        Ok((rows.columns, rows.values))
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare(sql)
    }

    fn rows(&self, sql: &str, values: Vec<Value>) -> Result<Rows> {
        match self {
            Self::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let columns: Vec<String> = stmt
                    .column_names()
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                let width = columns.len();
                let mut out = Vec::new();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(row) = rows.next()? {
                    let mut vals = Vec::with_capacity(width);
                    for i in 0..width {
                        vals.push(from_sqlite(row.get_ref(i)?));
                    }
                    out.push(vals);
                }
                Ok(Rows {
                    columns,
                    values: out,
                })
            }
            Self::Postgres(client) => {
                let stmt = block(client.prepare_cached(&placeholders(sql)))?;
                let refs = pg_refs(&values);
                let rows = block(client.query(&stmt, &refs))?;
                let columns: Vec<String> =
                    stmt.columns().iter().map(|c| c.name().to_owned()).collect();
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut vals = Vec::with_capacity(columns.len());
                    for i in 0..columns.len() {
                        vals.push(row.try_get::<_, Value>(i)?);
                    }
                    out.push(vals);
                }
                Ok(Rows {
                    columns,
                    values: out,
                })
            }
        }
    }
}

/// A statement to run once or map over its rows.
pub struct Statement<'c> {
    conn: &'c Connection<'c>,
    sql: String,
}

impl Statement<'_> {
    /// Every row mapped by `f`, as an iterator of results (collect into `Result<Vec<_>>`).
    pub fn query_map<T, P, F>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let rows = self.conn.rows(&self.sql, params.into_values())?;
        let mapped: Vec<Result<T>> = rows
            .values
            .into_iter()
            .map(|values| {
                f(&Row {
                    values,
                    columns: &rows.columns,
                })
            })
            .collect();
        Ok(mapped.into_iter())
    }

    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.conn.execute(&self.sql, params)
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite glue

fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL glue

/// Drives a client future to completion on this thread; the connection's I/O runs on the
/// store's runtime, so nothing here needs (or conflicts with) a runtime on the caller's thread.
pub(super) fn block<F: std::future::Future>(fut: F) -> F::Output {
    futures_executor::block_on(fut)
}

fn pg_refs(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Rewrites `?N` (and bare `?`) placeholders to PostgreSQL's `$N`, leaving string literals
/// and quoted identifiers alone.
pub fn placeholders(sql: &str) -> Arc<str> {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut next_bare = 1;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    out.push_str(&next_bare.to_string());
                    next_bare += 1;
                }
            }
            None => out.push(c),
        }
    }
    out.into()
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                #[allow(clippy::cast_precision_loss)]
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    n.to_string().to_sql(&Type::TEXT, out)
                }
                _ => Err(format!("cannot send an integer as {ty}").into()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                _ => Err(format!("cannot send a real as {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(format!("cannot send bytes as {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            _ => return Err(format!("unsupported column type {ty}").into()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_literals() {
        assert_eq!(
            &*placeholders("SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12 OR c = ?"),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b = $12 OR c = $1"
        );
    }

    /// `.cargo/config.toml` builds SQLite without its process-wide mutexes (memory statistics,
    /// a page cache shared by connections); a build that lost the setting would bring them
    /// back onto the request log's path.
    #[test]
    fn sqlite_is_built_without_process_wide_mutexes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let used = |option: &str| -> bool {
            conn.query_row("SELECT sqlite_compileoption_used(?1)", [option], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert!(!used("ENABLE_MEMORY_MANAGEMENT"));
        assert!(used("DEFAULT_MEMSTATUS=0"));
        assert!(
            used("THREADSAFE=1"),
            "the option names are read as expected"
        );
    }
}
