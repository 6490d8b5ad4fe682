//! Email: SMTP settings ([`config`]), the messages the server sends ([`message`]: verification
//! codes, invites, proposal notices, the owner's test email), an SMTP client on rustls
//! ([`transport`]) and a queue that delivers in the background with bounded retries
//! ([`queue`]).
//!
//! Callers build a message and hand it to [`Mailer::send_later`], which never waits and never
//! fails the caller's request; the owner sees delivery status and the last error through
//! [`Mailer::status`]. With no `AGENT_VAULT_SMTP_HOST` the mailer is [`Mailer::disabled`] and
//! everything works as without email.
//!
//! Stance: the SMTP password lives in a zeroizing string, redacted in `Debug`, and is never
//! logged; lettre's SMTP-dialogue logging is compiled out. Message bodies (which may hold a
//! verification code or an invite token) are never logged; only kind, recipient and the
//! server's answer are.

pub mod config;
pub mod message;
mod queue;
mod transport;

pub use config::{ConfigError, SmtpConfig, TlsMode};
pub use message::{Email, Kind};
pub use queue::{LastError, Mailer, Outcome, Report, Status};
pub use transport::SendFailure;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("\"{address}\" is not an email address the server can send to: {reason}")]
    BadAddress { address: String, reason: String },
    #[error(
        "email is not configured on this server; set AGENT_VAULT_SMTP_HOST and AGENT_VAULT_SMTP_FROM (see docs/email.md) and restart it"
    )]
    Disabled,
    #[error("cannot set up TLS for the SMTP server: {0}")]
    Tls(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error(transparent)]
    Send(#[from] SendFailure),
}
