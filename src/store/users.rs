//! Human accounts. Emails are stored trimmed and lower-cased so one address is one account.

use super::db::{Connection, OptionalExtension, Row, params};

use super::roles::column;
use super::{InstanceRole, Result, conflict_as, new_id, now};

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: InstanceRole,
    pub active: bool,
    /// PHC string; `None` until the account is verified.
    pub password_hash: Option<String>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, email, role, is_active, password_hash, created_at";

fn from_row(r: &Row<'_>) -> super::db::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        role: column(r.get(2)?)?,
        active: r.get(3)?,
        password_hash: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// Normalises an email for storage and lookup.
pub fn normalize_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // Composed after lower-casing too: `renée` typed precomposed or decomposed is one address
    // (it prints the same), never two accounts.
    let email: String = email
        .trim()
        .nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect();
    // A domain in Punycode (`xn--bcher-kva.de`) is the Unicode name it encodes: one mailbox,
    // one account, and the lookalike rules see what the name really shows.
    match email.rsplit_once('@') {
        Some((local, domain)) if domain.split('.').any(|label| label.starts_with("xn--")) => {
            match idna::domain_to_unicode(domain) {
                (unicode, Ok(())) => format!("{local}@{unicode}"),
                _ => email,
            }
        }
        _ => email,
    }
}

pub fn insert(
    conn: &Connection,
    email: &str,
    role: InstanceRole,
    active: bool,
    password_hash: Option<&str>,
) -> Result<User> {
    let user = User {
        id: new_id(),
        email: normalize_email(email),
        role,
        active,
        password_hash: password_hash.map(str::to_owned),
        created_at: now(),
    };
    conn.execute(
        "INSERT INTO users (id, email, role, is_active, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            user.id,
            user.email,
            role.as_str(),
            active,
            user.password_hash,
            user.created_at
        ],
    )
    .map_err(conflict_as("an account with this email"))?;
    Ok(user)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM users", (), |r| r.get(0))?)
}

pub fn by_email(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE email = ?1"),
            [normalize_email(email)],
            from_row,
        )
        .optional()?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY created_at, email"
    ))?;
    let users = stmt
        .query_map((), from_row)?
        .collect::<super::db::Result<_>>()?;
    Ok(users)
}

pub fn set_password(conn: &Connection, id: &str, password_hash: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, password_hash, now()],
    )?;
    Ok(())
}

/// Marks a verified account active with the password bound to its verification.
pub fn activate(conn: &Connection, id: &str, password_hash: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET is_active = 1, password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, password_hash, now()],
    )?;
    Ok(())
}

/// Records whether the account's address was proven (see migration 10).
pub fn set_email_proven(conn: &Connection, id: &str, proven: bool) -> Result<()> {
    conn.execute(
        "UPDATE users SET email_proven = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, i64::from(proven), now()],
    )?;
    Ok(())
}

pub fn email_proven(conn: &Connection, id: &str) -> Result<bool> {
    let proven: i64 = conn.query_row(
        "SELECT email_proven FROM users WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    Ok(proven != 0)
}

/// Marks an account active without a password (its address was verified by an identity
/// provider; the person signs in there, or sets a password later).
pub fn activate_without_password(conn: &Connection, id: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET is_active = 1, password_hash = NULL, updated_at = ?2 WHERE id = ?1",
        params![id, now()],
    )?;
    Ok(())
}

pub fn set_role(conn: &Connection, id: &str, role: InstanceRole) -> Result<()> {
    conn.execute(
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, role.as_str(), now()],
    )?;
    Ok(())
}

/// Deletes the account with its sessions (cascade) and vault grants.
pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM vault_grants WHERE actor_type = 'user' AND actor_id = ?1",
        [id],
    )?;
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

/// Active owners, users and agents together: the last one may not be demoted or removed.
pub fn count_active_owners(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM users WHERE role = 'owner' AND is_active = 1)
              + (SELECT COUNT(*) FROM agents WHERE role = 'owner' AND status = 'active')",
        (),
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError};

    #[test]
    fn an_address_has_one_form_however_its_accents_were_typed() {
        let composed = normalize_email("Ren\u{e9}e@X.com");
        assert_eq!(normalize_email(" RENE\u{301}E@x.com "), composed);
        assert_eq!(composed, "ren\u{e9}e@x.com");
        // Three spellings of ẹ́ (marks in either order, or one precomposed).
        let forms = [
            "e\u{301}\u{323}@x.io",
            "e\u{323}\u{301}@x.io",
            "\u{1eb9}\u{301}@x.io",
        ];
        assert!(
            forms
                .iter()
                .all(|f| normalize_email(f) == normalize_email(forms[0]))
        );
        // A Punycode domain is the name it encodes.
        assert_eq!(
            normalize_email("Bob@XN--BCHER-KVA.de"),
            "bob@b\u{fc}cher.de"
        );
        assert_eq!(normalize_email("bob@xn--.de"), "bob@xn--.de");
    }

    crate::on_both_backends!(emails_are_case_insensitive_and_unique);
    fn emails_are_case_insensitive_and_unique(store: Store) {
        store
            .write(|tx| {
                insert(
                    tx,
                    " Alice@Example.com ",
                    InstanceRole::Owner,
                    true,
                    Some("h"),
                )
            })
            .unwrap();
        let found = store
            .read(|c| by_email(c, "ALICE@example.COM"))
            .unwrap()
            .unwrap();
        assert_eq!(found.email, "alice@example.com");
        let dup =
            store.write(|tx| insert(tx, "alice@example.com", InstanceRole::Member, false, None));
        assert!(matches!(dup, Err(StoreError::Conflict(_))));
        assert_eq!(store.read(count_active_owners).unwrap(), 1);
    }
}
