//! The SMTP connection: lettre on tokio with rustls (ring), set up from [`SmtpConfig`], and
//! failures turned into sentences that quote the server's exact answer.
//!
//! Stance: certificates are checked against the system roots plus `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` (as for upstream HTTPS) unless `AGENT_VAULT_SMTP_TLS_SKIP_VERIFY` says
//! otherwise; `required` never falls back to plain text. lettre's own logging stays off: it
//! would write the SMTP dialogue, AUTH line included, at debug level.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{SmtpConfig, TLS_MODE_ENV, TLS_SKIP_VERIFY_ENV, TlsMode};
use super::{Email, MailError};

/// lettre's own timeout, for connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// One whole attempt (connect, TLS, login, message): lettre's timeout does not cover a server
/// that stops answering half-way, so this one does.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(45);

/// Why a send failed, in words, and whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendFailure {
    pub message: String,
    /// A 5xx answer, a TLS or protocol problem: retrying will not change it.
    pub permanent: bool,
}

pub(super) struct Transport {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    config: SmtpConfig,
    attempt_timeout: Duration,
}

impl Transport {
    /// Builds the client; nothing connects until the first send. Returns warnings about the
    /// trust store.
    pub fn new(config: &SmtpConfig) -> Result<(Self, Vec<String>), MailError> {
        let mut warnings = Vec::new();
        let tls = match config.tls_mode {
            TlsMode::None => Tls::None,
            mode => {
                let mut builder = TlsParameters::builder(config.host.clone())
                    .certificate_store(CertificateStore::None)
                    .dangerous_accept_invalid_certs(config.tls_skip_verify);
                let (roots, more) = crate::proxy::upstream::trusted_root_certs();
                warnings.extend(more.into_iter().map(|w| format!("email: {w}")));
                // A certificate rustls cannot use as a root would fail the whole set.
                let usable = roots
                    .into_iter()
                    .filter(|der| rustls::RootCertStore::empty().add(der.clone()).is_ok())
                    .filter_map(|der| Certificate::from_der(der.to_vec()).ok());
                let mut count = 0;
                for root in usable {
                    builder = builder.add_root_certificate(root);
                    count += 1;
                }
                if count == 0 && !config.tls_skip_verify {
                    warnings.push("email: no trusted root certificates found; TLS to the SMTP server will fail (install ca-certificates or set SSL_CERT_FILE)".into());
                }
                let params = builder.build().map_err(|e| MailError::Tls(e.to_string()))?;
                match (mode, config.implicit_tls()) {
                    (_, true) => Tls::Wrapper(params),
                    (TlsMode::Required, false) => Tls::Required(params),
                    _ => Tls::Opportunistic(params),
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(CONNECT_TIMEOUT))
            .tls(tls);
        if let Some(user) = &config.username {
            let password = config
                .password()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok((
            Self {
                smtp: builder.build(),
                config: config.clone(),
                attempt_timeout: ATTEMPT_TIMEOUT,
            },
            warnings,
        ))
    }

    /// Sends one message; on success returns the server's answer to the data
    /// (e.g. `250 2.0.0 Ok: queued as 4F2…`).
    pub async fn send(&self, email: &Email) -> Result<String, SendFailure> {
        let message = email
            .to_lettre(&self.config.from)
            .map_err(|e| SendFailure {
                message: e.to_string(),
                permanent: true,
            })?;
        match tokio::time::timeout(self.attempt_timeout, self.smtp.send(message)).await {
            Ok(Ok(response)) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(err)) => Err(self.explain(&err)),
            Err(_) => Err(SendFailure {
                message: format!(
                    "the SMTP server {}:{} stopped answering (no reply within {} s)",
                    self.config.host,
                    self.config.port,
                    self.attempt_timeout.as_secs()
                ),
                permanent: false,
            }),
        }
    }

    /// A sentence for a lettre error: the server's exact answer, or what failed on the way.
    fn explain(&self, err: &lettre::transport::smtp::Error) -> SendFailure {
        let server = format!("{}:{}", self.config.host, self.config.port);
        let detail = source_chain(err);
        if let Some(code) = err.status() {
            return SendFailure {
                message: format!("the SMTP server {server} answered: {code} {detail}"),
                permanent: err.is_permanent(),
            };
        }
        if err.is_tls() || tls_failure(err) {
            let hint = if self.config.tls_skip_verify {
                String::new()
            } else {
                format!(
                    "; if the server uses a self-signed certificate, add it to SSL_CERT_FILE (or, on a trusted network, set {TLS_SKIP_VERIFY_ENV}=true)"
                )
            };
            return SendFailure {
                message: format!("TLS with the SMTP server {server} failed: {detail}{hint}"),
                permanent: true,
            };
        }
        if err.is_client() && detail.contains("STARTTLS") {
            return SendFailure {
                message: format!(
                    "the SMTP server {server} does not offer STARTTLS, and {TLS_MODE_ENV}=required refuses to send without TLS; use a server or port with TLS (465 for implicit TLS)"
                ),
                permanent: true,
            };
        }
        if err.is_client() || err.is_response() {
            return SendFailure {
                message: format!("sending through the SMTP server {server} failed: {detail}"),
                permanent: true,
            };
        }
        SendFailure {
            message: format!("cannot reach the SMTP server {server}: {detail}"),
            permanent: false,
        }
    }
}

/// The error's causes joined, without lettre's own category word when a cause says more.
fn source_chain(err: &lettre::transport::smtp::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// Whether a rustls error is among the causes: lettre reports a failed handshake as a
/// connection error, but unlike a refused connection it will not heal by retrying.
fn tls_failure(err: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|e| e as &(dyn std::error::Error + 'static));
        if cause.is::<rustls::Error>() || inner.is_some_and(|e| e.is::<rustls::Error>()) {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::message;

    fn config_for(port: u16) -> SmtpConfig {
        let vars = [
            ("AGENT_VAULT_SMTP_HOST", "127.0.0.1".to_owned()),
            ("AGENT_VAULT_SMTP_PORT", port.to_string()),
            ("AGENT_VAULT_SMTP_FROM", "av@example.com".to_owned()),
            ("AGENT_VAULT_SMTP_TLS_MODE", "none".to_owned()),
        ];
        SmtpConfig::from_lookup(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            },
            None,
        )
        .unwrap()
        .unwrap()
    }

    /// A server that accepts the connection and never says a word: the attempt ends anyway.
    #[tokio::test]
    async fn a_silent_server_fails_the_attempt_instead_of_hanging() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let (mut transport, _) = Transport::new(&config_for(port)).unwrap();
        transport.attempt_timeout = Duration::from_millis(300);
        let email = message::test("o@example.com", "o@example.com", "http://x").unwrap();
        let failure = transport.send(&email).await.unwrap_err();
        assert!(failure.message.contains("stopped answering"), "{failure}");
        assert!(!failure.permanent);
        held.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_worth_a_retry() {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let (transport, _) = Transport::new(&config_for(port)).unwrap();
        let email = message::test("o@example.com", "o@example.com", "http://x").unwrap();
        let failure = transport.send(&email).await.unwrap_err();
        assert!(
            failure
                .message
                .starts_with(&format!("cannot reach the SMTP server 127.0.0.1:{port}")),
            "{failure}"
        );
        assert!(!failure.permanent);
    }
}
