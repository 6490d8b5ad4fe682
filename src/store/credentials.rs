//! Credential values, sealed under the DEK with associated data `credential/<vault id>/<key>`:
//! a ciphertext copied into another vault or key does not decrypt.

use super::db::{Connection, OptionalExtension, params};

use super::{Result, now};
use crate::crypto::{Key, SecretString, open, seal};

fn aad(vault_id: &str, key: &str) -> Vec<u8> {
    format!("credential/{vault_id}/{key}").into_bytes()
}

pub fn upsert(
    conn: &Connection,
    dek: &Key,
    vault_id: &str,
    key: &str,
    value: &SecretString,
) -> Result<()> {
    let sealed = seal(dek, &aad(vault_id, key), value.expose().as_bytes())?;
    let now = now();
    conn.execute(
        "INSERT INTO credentials (vault_id, key, value_sealed, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (vault_id, key) DO UPDATE
             SET value_sealed = excluded.value_sealed, updated_at = excluded.updated_at",
        params![vault_id, key, sealed, now],
    )?;
    Ok(())
}

pub fn get(
    conn: &Connection,
    dek: &Key,
    vault_id: &str,
    key: &str,
) -> Result<Option<SecretString>> {
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value_sealed FROM credentials WHERE vault_id = ?1 AND key = ?2",
            params![vault_id, key],
            |r| r.get(0),
        )
        .optional()?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let bytes = open(dek, &aad(vault_id, key), &sealed)?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| super::StoreError::Corrupt(format!("credential {key} is not UTF-8")))?;
    Ok(Some(SecretString::new(text)))
}

pub fn keys(conn: &Connection, vault_id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT key FROM credentials WHERE vault_id = ?1 ORDER BY key")?;
    let keys = stmt
        .query_map([vault_id], |r| r.get(0))?
        .collect::<super::db::Result<_>>()?;
    Ok(keys)
}

pub fn delete(conn: &Connection, vault_id: &str, key: &str) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM credentials WHERE vault_id = ?1 AND key = ?2",
        params![vault_id, key],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError, vaults};

    crate::on_both_backends!(ciphertext_moved_to_another_row_does_not_decrypt);
    fn ciphertext_moved_to_another_row_does_not_decrypt(store: Store) {
        let dek = Key::generate();
        let other = store.write(|tx| vaults::insert(tx, "other")).unwrap();
        let default = store
            .read(|c| vaults::by_name(c, "default"))
            .unwrap()
            .unwrap();
        store
            .write(|tx| {
                upsert(tx, &dek, &default.id, "API_KEY", &"SENTINEL-A".into())?;
                upsert(tx, &dek, &default.id, "OTHER_KEY", &"SENTINEL-B".into())?;
                upsert(tx, &dek, &other.id, "API_KEY", &"SENTINEL-C".into())
            })
            .unwrap();
        let got = store
            .read(|c| get(c, &dek, &default.id, "API_KEY"))
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), "SENTINEL-A");

        // Copy default/API_KEY's ciphertext over default/OTHER_KEY and over other/API_KEY.
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE credentials SET value_sealed =
                        (SELECT value_sealed FROM credentials WHERE vault_id = ?1 AND key = 'API_KEY')
                     WHERE NOT (vault_id = ?1 AND key = 'API_KEY')",
                    [&default.id],
                )?;
                Ok(())
            })
            .unwrap();
        for (vault, key) in [(&default.id, "OTHER_KEY"), (&other.id, "API_KEY")] {
            let moved = store.read(|c| get(c, &dek, vault, key));
            assert!(
                matches!(moved, Err(StoreError::Crypto(_))),
                "{key} opened after a move"
            );
        }
    }
}
