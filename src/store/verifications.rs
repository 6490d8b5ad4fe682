//! Email verification codes for accounts registered after the owner.
//!
//! Each registration gets its own code, sealed under the DEK (so the owner can read it when no
//! SMTP server is configured) and bound to the password given *with that registration*:
//! verifying activates the account with that password. Someone who registers a victim's
//! address first therefore cannot end up owning the account the victim verifies.
//!
//! Each code also records whether it went out by email ([`Delivery`]): the owner is shown
//! only codes that did not reach an inbox, so an emailed code stays between the server and
//! the address it was sent to.

use super::db::{Connection, Row, params};

use super::{Result, now};
use crate::crypto::{Key, SecretString, open, seal, six_digit_code};

/// How long a code stays valid; it is relayed by a person when there is no SMTP.
pub const CODE_TTL: i64 = 24 * 3600;
/// Wrong guesses allowed per code before it is voided.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;
/// Codes a pending account may hold at once.
pub const MAX_PENDING: usize = 3;

/// What became of a code's email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// No email was attempted (email was off when the code was made).
    None,
    /// Handed to the mail queue; not delivered yet.
    Queued,
    /// Accepted by the SMTP server.
    Sent,
    /// Every attempt failed, or the queue lost it (a restart).
    Failed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    /// Reads the column; the schema's CHECK constraint rules out other values.
    fn column(text: &str) -> super::db::Result<Self> {
        Ok(match text {
            "none" => Self::None,
            "queued" => Self::Queued,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            other => {
                return Err(super::db::Error::invalid(
                    6,
                    format!("unknown verification delivery state \"{other}\""),
                ));
            }
        })
    }

    /// Whether the code never reached an inbox, so the owner may relay it by hand.
    pub fn undelivered(self) -> bool {
        matches!(self, Self::None | Self::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct Verification {
    pub id: i64,
    pub user_id: String,
    code_sealed: Vec<u8>,
    pub password_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub delivery: Delivery,
}

/// A code just created: its row id (to record its delivery) and the code itself.
pub struct NewCode {
    pub id: i64,
    pub code: SecretString,
}

impl Verification {
    pub fn code(&self, dek: &Key) -> Result<SecretString> {
        let bytes = open(dek, &aad(&self.user_id), &self.code_sealed)?;
        Ok(SecretString::new(
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}

fn aad(user_id: &str) -> Vec<u8> {
    format!("email-verification/{user_id}").into_bytes()
}

fn from_row(r: &Row<'_>) -> super::db::Result<Verification> {
    Ok(Verification {
        id: r.get(0)?,
        user_id: r.get(1)?,
        code_sealed: r.get(2)?,
        password_hash: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        delivery: Delivery::column(&r.get::<_, String>(6)?)?,
    })
}

/// Creates a new code bound to `password_hash`, recording how it is delivered.
pub fn create(
    conn: &Connection,
    dek: &Key,
    user_id: &str,
    password_hash: &str,
    delivery: Delivery,
) -> Result<NewCode> {
    let code = six_digit_code();
    let now = now();
    let id = conn.query_row(
        "INSERT INTO email_verifications (user_id, code_sealed, password_hash, status, created_at, expires_at, delivery)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6) RETURNING id",
        params![
            user_id,
            seal(dek, &aad(user_id), code.expose().as_bytes())?,
            password_hash,
            now,
            now + CODE_TTL,
            delivery.as_str()
        ],
        |r| r.get(0),
    )?;
    Ok(NewCode { id, code })
}

/// Live codes of an account, newest first.
pub fn pending(conn: &Connection, user_id: &str) -> Result<Vec<Verification>> {
    let mut stmt = conn.prepare(
        "SELECT id, user_id, code_sealed, password_hash, created_at, expires_at, delivery
         FROM email_verifications
         WHERE user_id = ?1 AND status = 'pending' AND expires_at > ?2
         ORDER BY id DESC",
    )?;
    let rows = stmt
        .query_map(params![user_id, now()], from_row)?
        .collect::<super::db::Result<_>>()?;
    Ok(rows)
}

/// Records what became of a code's email.
pub fn set_delivery(conn: &Connection, id: i64, delivery: Delivery) -> Result<()> {
    conn.execute(
        "UPDATE email_verifications SET delivery = ?2 WHERE id = ?1",
        params![id, delivery.as_str()],
    )?;
    Ok(())
}

/// At start: codes still queued were lost with the previous process's mail queue.
pub fn fail_queued(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE email_verifications SET delivery = 'failed' WHERE delivery = 'queued'",
        (),
    )?)
}

/// Counts a wrong guess against every live code of the account; voids exhausted codes.
pub fn record_failure(conn: &Connection, user_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE email_verifications SET failed_attempts = failed_attempts + 1
         WHERE user_id = ?1 AND status = 'pending'",
        [user_id],
    )?;
    conn.execute(
        "UPDATE email_verifications SET status = 'void'
         WHERE user_id = ?1 AND status = 'pending' AND failed_attempts >= ?2",
        params![user_id, MAX_FAILED_ATTEMPTS],
    )?;
    Ok(())
}

/// Marks `id` used and voids the account's other codes.
pub fn consume(conn: &Connection, user_id: &str, id: i64) -> Result<()> {
    conn.execute(
        "UPDATE email_verifications SET status = CASE WHEN id = ?2 THEN 'used' ELSE 'void' END
         WHERE user_id = ?1 AND status = 'pending'",
        params![user_id, id],
    )?;
    Ok(())
}

/// Voids every live code of an account (it was activated another way).
pub fn void_all(conn: &Connection, user_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE email_verifications SET status = 'void' WHERE user_id = ?1 AND status = 'pending'",
        [user_id],
    )?;
    Ok(())
}
