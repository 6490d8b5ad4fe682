//! The MITM root CA as one row: its public certificate and its private key, sealed under the
//! DEK by the `ca` module (which owns the associated data). Used where replicas share a
//! database but no disk.

use super::db::{Connection, OptionalExtension, params};
use super::{Result, now};

/// The stored root: (certificate PEM, sealed key).
pub fn load(conn: &Connection) -> Result<Option<(String, Vec<u8>)>> {
    Ok(conn
        .query_row(
            "SELECT cert_pem, key_sealed FROM ca_root WHERE id = 1",
            (),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Stores the root; a root already there is kept (the first replica to start wins).
pub fn insert(conn: &Connection, cert_pem: &str, key_sealed: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO ca_root (id, cert_pem, key_sealed, created_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO NOTHING",
        params![cert_pem, key_sealed, now()],
    )?;
    Ok(())
}
