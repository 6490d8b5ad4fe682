//! The hop from this machine to the broker's proxy. The proxy port speaks plain HTTP, so to a
//! broker across a network the run's token would travel in the clear (`Proxy-Authorization`).
//! A server started with `--proxy-tls-port` also serves the proxy behind TLS, with a leaf of
//! its MITM CA: `vault run` then gives the agent a plain-HTTP proxy on this machine (or on the
//! sandbox's relay) and carries each connection to the broker inside TLS, verified against
//! that CA alone (fetched from the API, so as trustworthy as the API's own transport).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The response header of `GET /v1/mitm/ca.pem` naming the proxy's TLS port.
pub const TLS_PORT_HEADER: &str = "x-proxy-tls-port";

/// A byte stream to the broker, plain or inside TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// TLS to the broker: the connector and the name its certificate must carry.
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// TLS to the proxy's TLS port on `host` (a name or an address), trusting only the
    /// server's CA, `ca_pem`.
    pub fn new(host: &str, ca_pem: &str) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let root = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the server's CA certificate does not parse: {e}"))?;
        roots.add(root)?;
        Self::with_roots(host, roots)
    }

    /// TLS to an `https://` API on `host`, trusting the system's roots and those of
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`, as the CLI does there (see `cli::client`).
    pub fn to_api(host: &str) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(crate::roots::trusted_root_certs_once().0.clone());
        Self::with_roots(host, roots)
    }

    fn with_roots(host: &str, roots: rustls::RootCertStore) -> anyhow::Result<Self> {
        // A DNS name, or an address (checked against the certificate's IP entries).
        let bare = host.trim_matches(['[', ']']);
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|e| anyhow::anyhow!("{bare} is not a server name for TLS: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// Wraps a connection to the broker's TLS port or API.
    pub async fn wrap(&self, tcp: TcpStream) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(
            self.connector.connect(self.name.clone(), tcp).await?,
        ))
    }
}

/// Where a relay's connections go: one of the broker's ports, inside TLS with `tls` (the
/// proxy's TLS port, or an `https://` API).
#[derive(Clone)]
pub struct Hop {
    /// A name or an address, without brackets.
    pub host: String,
    pub port: u16,
    pub tls: Option<Tls>,
    /// Set once a failure was reported (one warning per run, not per connection).
    warned: Arc<AtomicBool>,
}

impl Hop {
    pub fn new(host: &str, port: u16, tls: Option<Tls>) -> Self {
        Self {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            tls,
            warned: Arc::default(),
        }
    }

    /// Wraps `tcp` (already connected to `host:port`) as the hop needs. A failed TLS
    /// handshake (a certificate not from the server's CA, say) is reported once.
    pub async fn over(&self, tcp: TcpStream) -> Option<Box<dyn Stream>> {
        let Some(tls) = &self.tls else {
            return Some(Box::new(tcp));
        };
        tls.wrap(tcp).await.map_err(|e| self.unreachable(&e)).ok()
    }

    /// Says once per run why the agent's connections through this hop are closed: the
    /// agent itself only sees them end.
    pub fn unreachable(&self, err: &std::io::Error) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            let what = if self.tls.is_some() {
                "TLS port"
            } else {
                "port"
            };
            crate::cli::output::warn(format!(
                "cannot reach the broker's {what} at {}:{}: {err}",
                self.host, self.port
            ));
        }
    }
}

/// A plain-HTTP proxy on this machine's loopback for a process-mode agent, relaying each
/// connection to a hop; it stops when dropped (the run's end).
pub struct LocalProxy {
    pub port: u16,
    task: JoinHandle<()>,
}

impl LocalProxy {
    /// Where it listens (with `port`).
    pub const HOST: &str = "127.0.0.1";

    pub async fn start(hop: Hop) -> std::io::Result<Self> {
        const LOOPBACK: ipnet::IpNet =
            ipnet::IpNet::new_assert(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), 8);
        let listener = TcpListener::bind((Self::HOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let source = super::relay::run_source();
        let task = tokio::spawn(super::relay::forward_loop(listener, LOOPBACK, hop, source));
        Ok(Self { port, task })
    }
}

impl Drop for LocalProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::ca::CertificateAuthority;

    /// A TLS server with a leaf of `ca` that echoes what it reads, behind a forwarder that
    /// records every byte on the wire; returns the forwarder's port and the recording.
    async fn tls_echo_behind_a_tap(
        ca: Arc<CertificateAuthority>,
    ) -> (u16, Arc<std::sync::Mutex<Vec<u8>>>) {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_port = server.local_addr().unwrap().port();
        let config = crate::ca::server_config(crate::ca::LeafResolver::for_target(ca, "127.0.0.1"));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = server.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut tls = acceptor.accept(tcp).await.unwrap();
                    let mut buf = [0u8; 64];
                    let n = tls.read(&mut buf).await.unwrap();
                    tls.write_all(&buf[..n]).await.unwrap();
                    tls.flush().await.unwrap();
                });
            }
        });
        let tap = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tap_port = tap.local_addr().unwrap().port();
        let wire = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = wire.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = tap.accept().await {
                let wire = recorded.clone();
                tokio::spawn(async move {
                    let outbound = TcpStream::connect(("127.0.0.1", server_port))
                        .await
                        .unwrap();
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    });
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = from_client.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        wire.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (tap_port, wire)
    }

    #[tokio::test]
    async fn the_local_proxy_carries_the_token_inside_tls_verified_against_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(
            CertificateAuthority::load_or_create(
                &dir.path().join("ca"),
                &crate::crypto::Key::generate(),
            )
            .unwrap(),
        );
        let (port, wire) = tls_echo_behind_a_tap(ca.clone()).await;
        let tls = Tls::new("127.0.0.1", ca.root_pem()).unwrap();
        let relay = LocalProxy::start(Hop::new("127.0.0.1", port, Some(tls)))
            .await
            .unwrap();
        let sentinel = b"Proxy-Authorization: Basic c2VudGluZWwtdG9rZW4=";
        let mut agent = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        agent.write_all(sentinel).await.unwrap();
        let mut echoed = vec![0u8; sentinel.len()];
        agent.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, sentinel, "the broker got the request");
        let wire = wire.lock().unwrap().clone();
        assert_eq!(
            wire.first(),
            Some(&0x16),
            "the hop begins with a TLS handshake"
        );
        assert!(
            !wire.windows(sentinel.len()).any(|w| w == sentinel),
            "the token crossed the wire in the clear"
        );
        drop(relay);

        // A server whose certificate is not from the server's CA gets nothing.
        let other = Arc::new(
            CertificateAuthority::load_or_create(
                &dir.path().join("other"),
                &crate::crypto::Key::generate(),
            )
            .unwrap(),
        );
        let (port, wire) = tls_echo_behind_a_tap(other).await;
        let tls = Tls::new("127.0.0.1", ca.root_pem()).unwrap();
        let relay = LocalProxy::start(Hop::new("127.0.0.1", port, Some(tls)))
            .await
            .unwrap();
        let mut agent = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        agent.write_all(sentinel).await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            agent.read(&mut buf).await.unwrap_or(0),
            0,
            "the agent is hung up on"
        );
        let wire = wire.lock().unwrap().clone();
        assert!(!wire.windows(sentinel.len()).any(|w| w == sentinel));
        drop(relay);
    }
}
