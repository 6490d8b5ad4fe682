//! The upstream clients: a pooled HTTP/1.1 + HTTP/2 client per vault, dialing
//! through the network guard (resolve, check every address, connect to a checked one) and
//! verifying upstream TLS against the system roots plus `SSL_CERT_FILE` / `SSL_CERT_DIR`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::netguard::{self, GuardError, NetworkPolicy};
use crate::target::Host;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Timeouts of the upstream side. Model responses can take minutes before the first byte,
/// so the response timeout is generous; bodies then stream without a deadline.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Timeouts {
    /// `AGENT_VAULT_UPSTREAM_CONNECT_TIMEOUT` (default 10 s) and
    /// `AGENT_VAULT_UPSTREAM_RESPONSE_TIMEOUT` (default 600 s), in seconds.
    pub fn from_env() -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut read = |name: &str, default: u64| {
            let text = std::env::var(name).ok();
            let default = Duration::from_secs(default);
            crate::ceilings::setting_secs_or(name, text.as_deref(), false, default, &mut warnings)
        };
        let timeouts = Self {
            connect: read("AGENT_VAULT_UPSTREAM_CONNECT_TIMEOUT", 10),
            response: read("AGENT_VAULT_UPSTREAM_RESPONSE_TIMEOUT", 600),
        };
        (timeouts, warnings)
    }
}

/// Trusted roots: the system bundle plus `SSL_CERT_FILE` and every file in `SSL_CERT_DIR`.
pub fn trusted_roots() -> (rustls::RootCertStore, Vec<String>) {
    let (certs, mut warnings) = trusted_root_certs();
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        warnings.push("no trusted root certificates found; upstream HTTPS will fail".into());
    }
    (roots, warnings)
}

pub use crate::roots::trusted_root_certs;

/// Opens TCP connections through the network guard.
#[derive(Clone)]
pub struct GuardedConnector {
    policy: Arc<NetworkPolicy>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (policy, timeout) = (self.policy.clone(), self.timeout);
        Box::pin(async move {
            // The URI was built from a parsed `Target`; reading it back is once per connection.
            let raw = uri.host().ok_or("the upstream URI has no host")?;
            let host = Host::parse(raw).map_err(|_| GuardError::InvalidHost(raw.to_owned()))?;
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let (stream, _) = netguard::connect(&policy, &host, port, timeout).await?;
            let _ = stream.set_nodelay(true);
            Ok(TokioIo::new(stream))
        })
    }
}

pub type UpstreamClient = Client<HttpsConnector<GuardedConnector>, ProxyBody>;

/// The pool that offers HTTP/2 and HTTP/1.1, one per vault. An HTTP/2 connection carries
/// many requests at once, and one agent can hold all of it: responses it never reads fill the
/// connection's flow-control window, uploads it never finishes take every stream the server
/// allows. Shared by vaults, that stalled every other vault's requests to the host (a red
/// team held them past the response timeout); a vault's agents now share only their own.
#[derive(Clone)]
pub struct VaultClients {
    connector: HttpsConnector<GuardedConnector>,
    /// What `last_used` counts seconds from.
    epoch: Instant,
    by_vault: Arc<RwLock<HashMap<Arc<str>, VaultClient, foldhash::fast::RandomState>>>,
}

struct VaultClient {
    client: UpstreamClient,
    /// Seconds after `epoch` of the vault's latest request.
    last_used: AtomicU64,
}

impl VaultClients {
    fn new(connector: HttpsConnector<GuardedConnector>) -> Self {
        Self {
            connector,
            epoch: Instant::now(),
            by_vault: Arc::default(),
        }
    }

    /// The pool of `vault_id`'s requests, made on its first request.
    pub fn of(&self, vault_id: &Arc<str>) -> UpstreamClient {
        self.of_at(vault_id, self.epoch.elapsed().as_secs())
    }

    /// [`Self::of`] at `now` seconds after `epoch`. The map grows only here, so this is
    /// where the pools of vaults idle for longer than [`IDLE_TIMEOUT`] (deleted ones among
    /// them) are dropped; their idle connections close with them, and a request still
    /// running on one keeps its connection until it ends.
    fn of_at(&self, vault_id: &Arc<str>, now: u64) -> UpstreamClient {
        let known = self.by_vault.read().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = known.get(vault_id) {
            known.last_used.store(now, Ordering::Relaxed);
            return known.client.clone();
        }
        drop(known);
        let mut by_vault = self.by_vault.write().unwrap_or_else(|e| e.into_inner());
        by_vault.retain(|_, other| {
            now.saturating_sub(other.last_used.load(Ordering::Relaxed)) < IDLE_TIMEOUT.as_secs()
        });
        let entry = by_vault
            .entry(vault_id.clone())
            .or_insert_with(|| VaultClient {
                client: Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(IDLE_TIMEOUT)
                    .pool_max_idle_per_host(MAX_IDLE_PER_ORIGIN)
                    // Without a timer hyper only drops expired connections when it next looks
                    // for one to the same origin; with it they close once expired.
                    .pool_timer(TokioTimer::new())
                    .build(self.connector.clone()),
                last_used: AtomicU64::new(now),
            });
        entry.last_used.store(now, Ordering::Relaxed);
        entry.client.clone()
    }

    /// How many vaults have a pool.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_vault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Both pools close an idle connection older than this rather than reuse it (servers close
/// theirs after a minute or so; a request must not race that), and keep at most
/// `MAX_IDLE_PER_ORIGIN` idle connections to one origin.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
pub const MAX_IDLE_PER_ORIGIN: usize = 64;
/// Opens connections through the guard; for `https://`, TLS offering only `http/1.1`.
pub type H1Connector = HttpsConnector<GuardedConnector>;

/// The ways upstream: pools that offer HTTP/2 and HTTP/1.1 (the upstream chooses), and
/// HTTP/1.1 without a pool for WebSocket upgrades (an upgraded connection is never reused).
/// `h1_connector` offers only HTTP/1.1: the probe of [`super::http1_hosts`] and the pool of
/// [`super::http1_pool`] for HTTP/1.1 agents use it.
pub struct Clients {
    pub pooled: VaultClients,
    pub upgrade: UpstreamClient,
    pub h1_connector: H1Connector,
}

pub fn clients(
    policy: Arc<NetworkPolicy>,
    roots: rustls::RootCertStore,
    timeouts: Timeouts,
) -> Result<Clients, rustls::Error> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = GuardedConnector {
        policy,
        timeout: timeouts.connect,
    };
    let pooled = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector.clone());
    // Built by hand: for HTTP/1.1 alone hyper-rustls's builder offers no ALPN, and whether the
    // upstream agreed to HTTP/1.1 is what the probe must learn. The HTTP/1.1 pool and
    // WebSocket upgrades use it too.
    let mut http1_tls = tls;
    http1_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let h1_connector = HttpsConnector::from((connector, http1_tls));
    Ok(Clients {
        pooled: VaultClients::new(pooled),
        upgrade: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(h1_connector.clone()),
        h1_connector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_of_vaults_idle_past_the_timeout_are_dropped_when_another_vault_arrives() {
        let clients = clients(
            Arc::new(NetworkPolicy::new(false, Vec::new())),
            rustls::RootCertStore::empty(),
            Timeouts {
                connect: Duration::from_secs(1),
                response: Duration::from_secs(1),
            },
        )
        .expect("clients")
        .pooled;
        let (deleted, busy, new): (Arc<str>, Arc<str>, Arc<str>) =
            ("deleted".into(), "busy".into(), "new".into());
        let idle = IDLE_TIMEOUT.as_secs();
        clients.of_at(&deleted, 0);
        clients.of_at(&busy, 0);
        clients.of_at(&busy, idle);
        assert_eq!(clients.len(), 2, "a known vault's request sweeps nothing");
        clients.of_at(&new, idle);
        assert_eq!(clients.len(), 2, "the idle vault's pool is gone");
        clients.of_at(&deleted, idle);
        assert_eq!(
            clients.len(),
            3,
            "a vault back after its pool went gets a new one"
        );
    }
}
