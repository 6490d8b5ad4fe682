//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` read from the database URL, and a
//! rustls (ring) connector for tokio-postgres that the pool, the LISTEN connection and
//! `migrate-db` all use.
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers it, else plain | not checked |
//! | `require` | always | not checked (checked like `verify-ca` when `sslrootcert` names a file, as libpq does) |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and naming the host connected to |
//!
//! Trusted CAs: the PEM file `sslrootcert` names, else (or with `sslrootcert=system`) the
//! system bundle plus `SSL_CERT_FILE` / `SSL_CERT_DIR`.
//!
//! Stance: `prefer` and `require` encrypt but do not authenticate the server, so they resist
//! only a passive listener; `verify-full` is the mode for a network one does not own. An
//! unknown mode or an unreadable CA file stops the start with the parameter named.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::StoreError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [Self; 5] = [
        Self::Disable,
        Self::Prefer,
        Self::Require,
        Self::VerifyCa,
        Self::VerifyFull,
    ];

    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == value)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres itself knows: whether TLS is off, tried or required.
    fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            Self::Disable => Driver::Disable,
            Self::Prefer => Driver::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Driver::Require,
        }
    }
}

/// A parsed `AGENT_VAULT_DATABASE_URL`: the driver's configuration and the TLS connector
/// matching its `sslmode`.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustls,
    pub mode: SslMode,
}

/// Parses `url`, taking `sslmode` and `sslrootcert` out of its query (tokio-postgres knows
/// neither `verify-*` nor `sslrootcert`); `location` is the redacted URL for messages.
pub fn parse(url: &str, location: &str) -> Result<Target, StoreError> {
    let config_err =
        |what: String| StoreError::Config(format!("AGENT_VAULT_DATABASE_URL ({location}): {what}"));
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = SslMode::Prefer;
    let mut rootcert: Option<String> = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| config_err(format!("the value of {key} is not UTF-8")))?;
        match key {
            "sslmode" => {
                mode = SslMode::parse(&value).ok_or_else(|| {
                    config_err(format!(
                        "sslmode={value} is not a mode; use one of disable, prefer, require, verify-ca, verify-full"
                    ))
                })?;
            }
            "sslrootcert" => rootcert = Some(value.into_owned()),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(config_err(format!(
                    "{key} is not supported (no client certificates or revocation lists); remove it and authenticate with a password"
                )));
            }
            _ => kept.push(pair),
        }
    }
    if rootcert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
        return Err(config_err(format!(
            "sslrootcert=system needs sslmode=verify-full (it is {}); set sslmode=verify-full",
            mode.name()
        )));
    }
    if mode == SslMode::Require && rootcert.is_some() {
        // libpq: with a root certificate given, `require` checks the chain like `verify-ca`.
        mode = SslMode::VerifyCa;
    }
    let mut driver_url = base.to_owned();
    if !kept.is_empty() {
        driver_url.push('?');
        driver_url.push_str(&kept.join("&"));
    }
    let mut config: tokio_postgres::Config = driver_url.parse().map_err(|e| {
        config_err(format!(
            "not a usable PostgreSQL URL ({e}); write it like postgres://user:password@host:5432/dbname?sslmode=verify-full"
        ))
    })?;
    config.ssl_mode(mode.driver_mode());
    let tls = MakeRustls::new(mode, rootcert.as_deref()).map_err(config_err)?;
    Ok(Target { config, tls, mode })
}

/// The CAs a `verify-*` mode trusts.
fn roots(rootcert: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = match rootcert {
        Some(path) if path != "system" => {
            let fix = "point sslrootcert at the PEM file of the CA that signed the PostgreSQL server's certificate";
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert={path} cannot be read ({e}); {fix}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert={path} holds no PEM certificate; {fix}"
                ));
            }
            certs
        }
        _ => crate::roots::trusted_root_certs().0,
    };
    let mut store = rustls::RootCertStore::empty();
    let (_, ignored) = store.add_parsable_certificates(certs);
    if store.is_empty() {
        return Err(match rootcert {
            Some(path) if path != "system" => format!(
                "sslrootcert={path} holds no usable CA certificate ({ignored} unparsable); give the CA's PEM certificate"
            ),
            _ => "no trusted root certificates found for sslmode=verify-*; install ca-certificates or set sslrootcert=/path/ca.pem".to_owned(),
        });
    }
    Ok(store)
}

/// Makes rustls connections to PostgreSQL, checking the server as the mode says.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
}

impl MakeRustls {
    fn new(mode: SslMode, rootcert: Option<&str>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(Unverified(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots(rootcert)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("TLS setup failed: {e}"))?;
                if mode == SslMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17+ checks it on direct TLS; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding (`SCRAM-SHA-256`), which every server accepts.
        ChannelBinding::none()
    }
}

/// `prefer` / `require`: any certificate, but the handshake's signatures are still checked
/// against it.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name only after the chain, so a name error means the chain passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What to do about a failed connection, when TLS is the cause: appended to its message.
pub fn hint(err: &tokio_postgres::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(rustls::Error::InvalidCertificate(cert)) = crate::roots::rustls_error(e) {
            return match cert {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "; the server's certificate does not name the host in AGENT_VAULT_DATABASE_URL: connect by a name the certificate holds, or use sslmode=verify-ca"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "; the server's certificate has expired: renew it"
                }
                _ => {
                    "; the server's certificate is not signed by a trusted CA: set sslrootcert=/path/ca.pem in AGENT_VAULT_DATABASE_URL to the CA that signed it"
                }
            };
        }
        if e.to_string().contains("server does not support TLS") {
            return "; the server does not offer TLS: turn ssl on in PostgreSQL, or use sslmode=prefer or sslmode=disable in AGENT_VAULT_DATABASE_URL";
        }
        source = e.source();
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match parse(url, "redacted") {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn modes_map_onto_the_driver() {
        use tokio_postgres::config::SslMode as Driver;
        for (query, mode, driver) in [
            ("", SslMode::Prefer, Driver::Prefer),
            ("?sslmode=disable", SslMode::Disable, Driver::Disable),
            ("?sslmode=require", SslMode::Require, Driver::Require),
            ("?sslmode=verify-full", SslMode::VerifyFull, Driver::Require),
            (
                "?application_name=x&sslmode=verify-ca",
                SslMode::VerifyCa,
                Driver::Require,
            ),
        ] {
            let target = parse(&format!("postgres://u:p@db:5432/v{query}"), "r").unwrap();
            assert_eq!(target.mode, mode, "{query}");
            assert_eq!(target.config.get_ssl_mode(), driver, "{query}");
            assert_eq!(target.config.get_dbname(), Some("v"));
        }
        let target = parse("postgres://db/v?application_name=broker%20a", "r").unwrap();
        assert_eq!(target.config.get_application_name(), Some("broker a"));
    }

    #[test]
    fn bad_parameters_are_named_with_the_fix() {
        let e = err("postgres://db/v?sslmode=verify");
        assert!(
            e.contains("sslmode=verify is not a mode") && e.contains("verify-full"),
            "{e}"
        );
        let e = err("postgres://db/v?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(
            e.contains("sslrootcert=/nonexistent/ca.pem cannot be read"),
            "{e}"
        );
        let e = err("postgres://db/v?sslmode=require&sslrootcert=system");
        assert!(e.contains("sslmode=verify-full"), "{e}");
        let e = err("postgres://db/v?sslcert=/c.pem");
        assert!(e.contains("sslcert is not supported"), "{e}");
        assert!(!err("postgres://u:hunter2@db/v?sslmode=bad").contains("hunter2"));
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain() {
        let dir = std::env::temp_dir().join(format!("av-pgtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        let target = parse(
            &format!(
                "postgres://db/v?sslmode=require&sslrootcert={}",
                path.display()
            ),
            "r",
        )
        .unwrap();
        assert_eq!(target.mode, SslMode::VerifyCa);
        std::fs::write(&path, "not a certificate").unwrap();
        let e = err(&format!(
            "postgres://db/v?sslmode=verify-ca&sslrootcert={}",
            path.display()
        ));
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
