//! The singleton master-key row: the DEK, wrapped or plain, and its check value.

use super::db::{Connection, OptionalExtension, params};

use super::{Result, StoreError, now};
use crate::crypto::{KdfParams, Key, KeyRecord, Protection};

pub fn load(conn: &Connection) -> Result<Option<KeyRecord>> {
    let row = conn
        .query_row(
            "SELECT dek_plain, dek_wrapped, kdf_salt, kdf_memory_kib, kdf_iterations,
                    kdf_parallelism, dek_check
             FROM master_key WHERE id = 1",
            (),
            |r| {
                Ok((
                    r.get::<_, Option<Vec<u8>>>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, Option<u32>>(3)?,
                    r.get::<_, Option<u32>>(4)?,
                    r.get::<_, Option<u32>>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((plain, wrapped, salt, memory, iterations, parallelism, check)) = row else {
        return Ok(None);
    };
    let corrupt = || StoreError::Corrupt("master key record".into());
    let protection = match (plain, wrapped) {
        (Some(plain), None) => Protection::Plain(Key::from_slice(&plain).ok_or_else(corrupt)?),
        (None, Some(wrapped_dek)) => Protection::Wrapped {
            salt: salt.and_then(|s| s.try_into().ok()).ok_or_else(corrupt)?,
            params: KdfParams {
                memory_kib: memory.ok_or_else(corrupt)?,
                iterations: iterations.ok_or_else(corrupt)?,
                parallelism: parallelism.ok_or_else(corrupt)?,
            },
            wrapped_dek,
        },
        _ => return Err(corrupt()),
    };
    Ok(Some(KeyRecord { protection, check }))
}

/// Inserts or replaces the record (one row; the DEK itself never changes).
pub fn save(conn: &Connection, record: &KeyRecord) -> Result<()> {
    let (plain, wrapped, salt, params) = match &record.protection {
        Protection::Plain(dek) => (Some(dek.as_bytes().to_vec()), None, None, None),
        Protection::Wrapped {
            salt,
            params,
            wrapped_dek,
        } => (
            None,
            Some(wrapped_dek.clone()),
            Some(salt.to_vec()),
            Some(*params),
        ),
    };
    let mut plain = plain;
    let result = conn.execute(
        "INSERT INTO master_key (id, dek_plain, dek_wrapped, kdf_salt, kdf_memory_kib,
             kdf_iterations, kdf_parallelism, dek_check, updated_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET dek_plain = excluded.dek_plain,
             dek_wrapped = excluded.dek_wrapped, kdf_salt = excluded.kdf_salt,
             kdf_memory_kib = excluded.kdf_memory_kib, kdf_iterations = excluded.kdf_iterations,
             kdf_parallelism = excluded.kdf_parallelism, dek_check = excluded.dek_check,
             updated_at = excluded.updated_at",
        params![
            plain,
            wrapped,
            salt,
            params.map(|p| p.memory_kib),
            params.map(|p| p.iterations),
            params.map(|p| p.parallelism),
            record.check,
            now()
        ],
    );
    if let Some(bytes) = plain.as_mut() {
        zeroize::Zeroize::zeroize(bytes);
    }
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretString;
    use crate::store::Store;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    crate::on_both_backends!(records_round_trip_in_both_modes);
    fn records_round_trip_in_both_modes(store: Store) {
        assert!(store.read(load).unwrap().is_none());
        let pw = SecretString::from("pw");
        let (record, dek) = KeyRecord::create(Some(&pw), FAST).unwrap();
        store.write(|tx| save(tx, &record)).unwrap();
        let loaded = store.read(load).unwrap().unwrap();
        assert_eq!(loaded.unlock(Some(&pw)).unwrap().as_bytes(), dek.as_bytes());

        let plain = KeyRecord::protect(&dek, None, FAST).unwrap();
        store.write(|tx| save(tx, &plain)).unwrap();
        let loaded = store.read(load).unwrap().unwrap();
        assert!(!loaded.has_password());
        assert_eq!(loaded.unlock(None).unwrap().as_bytes(), dek.as_bytes());
    }
}
