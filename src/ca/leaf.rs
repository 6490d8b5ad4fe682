//! Leaf certificates for the hosts agents connect to, cached (LRU by host), and the rustls
//! resolver that picks one per TLS handshake from the SNI (or the CONNECT target when the
//! client sends none).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use super::{CaError, CertificateAuthority, random_serial};
use crate::target::Host;

pub const CACHE_CAPACITY: usize = 1024;
const LEAF_VALIDITY: Duration = Duration::hours(24);
/// A cached leaf is replaced once it has less than this left.
const MIN_REMAINING: Duration = Duration::hours(1);

struct Entry {
    key: Arc<CertifiedKey>,
    not_after: OffsetDateTime,
    last_used: u64,
}

/// Leaves by lower-cased host. The lock is held only for map operations: minting happens
/// outside it, so handshakes for different hosts never wait on each other's signing.
pub struct LeafCache {
    entries: Mutex<(HashMap<String, Entry>, u64)>,
    capacity: usize,
}

impl LeafCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new((HashMap::new(), 0)),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let mut guard = self.entries.lock().ok()?;
        let (map, clock) = &mut *guard;
        *clock += 1;
        let entry = map.get_mut(host)?;
        if entry.not_after - OffsetDateTime::now_utc() < MIN_REMAINING {
            return None;
        }
        entry.last_used = *clock;
        Some(entry.key.clone())
    }

    fn put(&self, host: String, key: Arc<CertifiedKey>, not_after: OffsetDateTime) {
        let Ok(mut guard) = self.entries.lock() else {
            return;
        };
        let (map, clock) = &mut *guard;
        *clock += 1;
        if !map.contains_key(&host) && map.len() >= self.capacity {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(h, _)| h.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(
            host,
            Entry {
                key,
                not_after,
                last_used: *clock,
            },
        );
    }
}

/// A canonical host (see [`crate::target::Host`]): a lower-case DNS name or an IP address.
fn validate_host(host: &str) -> Result<(), CaError> {
    match Host::parse(host) {
        Ok(parsed) if parsed.bare() == host => Ok(()),
        _ => Err(CaError::InvalidHost(host.to_owned())),
    }
}

fn mint(
    ca: &CertificateAuthority,
    host: &str,
) -> Result<(Arc<CertifiedKey>, OffsetDateTime), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![host.to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, host);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + LEAF_VALIDITY;
    let cert = params.signed_by(&key, &ca.issuer)?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_ecdsa_type(&private)
        .map_err(|e| CaError::Certificate(e.to_string()))?;
    // The chain includes the root so clients that want the full path get it; it is the
    // certificate they were told to trust anyway.
    let chain = vec![cert.der().clone(), ca.root_der.clone()];
    Ok((
        Arc::new(CertifiedKey::new(chain, signing)),
        params.not_after,
    ))
}

pub fn leaf_for(ca: &Arc<CertificateAuthority>, host: &str) -> Result<Arc<CertifiedKey>, CaError> {
    leaf_in(ca, &ca.leaves, host)
}

fn leaf_in(
    ca: &CertificateAuthority,
    cache: &LeafCache,
    host: &str,
) -> Result<Arc<CertifiedKey>, CaError> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    validate_host(&host)?;
    if let Some(key) = cache.get(&host) {
        return Ok(key);
    }
    let (key, not_after) = mint(ca, &host)?;
    cache.put(host, key.clone(), not_after);
    Ok(key)
}

/// Picks the leaf per handshake: the SNI when present, else the CONNECT target.
#[derive(Clone)]
pub struct LeafResolver {
    ca: Arc<CertificateAuthority>,
    fallback_host: String,
    /// Leaves for the proxy's own TLS port, apart from the tunnels' (see `for_proxy_port`).
    own_cache: Option<Arc<LeafCache>>,
}

impl LeafResolver {
    pub fn for_target(ca: Arc<CertificateAuthority>, connect_host: &str) -> Self {
        Self {
            ca,
            fallback_host: connect_host.to_owned(),
            own_cache: None,
        }
    }

    /// For the proxy's TLS port (`--proxy-tls-port`): any client may ask there for any name
    /// before signing in, so those leaves go into `cache`, never pushing the tunnels' leaves
    /// out of theirs. Without SNI, the leaf is for `local_host`, the address dialled.
    pub fn for_proxy_port(
        ca: Arc<CertificateAuthority>,
        cache: Arc<LeafCache>,
        local_host: &str,
    ) -> Self {
        Self {
            ca,
            fallback_host: local_host.to_owned(),
            own_cache: Some(cache),
        }
    }
}

impl std::fmt::Debug for LeafResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafResolver")
            .field("fallback_host", &self.fallback_host)
            .finish()
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name().unwrap_or(&self.fallback_host);
        let cache = self.own_cache.as_deref().unwrap_or(&self.ca.leaves);
        match leaf_in(&self.ca, cache, host) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::debug!("no leaf certificate for {host}: {e}");
                None
            }
        }
    }
}

/// TLS settings for the agent side of a tunnel: our leaves, ALPN `h2` and `http/1.1`.
pub fn server_config(resolver: LeafResolver) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The ring provider supports the safe default versions, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;
    use rustls::pki_types::ServerName;

    fn ca() -> (tempfile::TempDir, Arc<CertificateAuthority>) {
        let dir = tempfile::tempdir().unwrap();
        let ca =
            CertificateAuthority::load_or_create(&dir.path().join("ca"), &Key::generate()).unwrap();
        (dir, Arc::new(ca))
    }

    fn verifier(ca: &CertificateAuthority) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.root_der().clone()).unwrap();
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    #[test]
    fn leaves_verify_for_names_and_addresses() {
        use rustls::client::danger::ServerCertVerifier;
        let (_dir, ca) = ca();
        let verifier = verifier(&ca);
        for host in [
            "api.example.com",
            "127.0.0.1",
            "::1",
            "under_score.example.com",
        ] {
            let leaf = ca.leaf_for(host).unwrap();
            let name = ServerName::try_from(host.to_owned()).unwrap();
            verifier
                .verify_server_cert(
                    &leaf.cert[0],
                    &leaf.cert[1..],
                    &name,
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{host}: {e}"));
            let other = ServerName::try_from("other.example.com").unwrap();
            assert!(
                verifier
                    .verify_server_cert(
                        &leaf.cert[0],
                        &[],
                        &other,
                        &[],
                        rustls::pki_types::UnixTime::now()
                    )
                    .is_err()
            );
        }
    }

    /// The root signs leaves only (path length 0): a CA certificate it signed cannot issue
    /// certificates that OpenSSL's clients (curl, Python, git) accept. webpki, rustls's
    /// verifier, reads a trust anchor's key and name only, so this is checked with OpenSSL.
    #[test]
    fn a_ca_signed_by_the_root_cannot_issue_trusted_leaves() {
        use rcgen::{BasicConstraints, IsCa, Issuer};
        let (dir, ca) = ca();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let intermediate = params.signed_by(&key, &ca.issuer).unwrap();
        let issuer = Issuer::new(params, key);
        let mut leaf_params = CertificateParams::new(vec!["api.example.com".to_owned()]).unwrap();
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let file = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let root = file("root.pem", ca.root_pem());
        let verify = |leaf: &std::path::Path, untrusted: &[&std::path::Path]| {
            let mut openssl = std::process::Command::new("openssl");
            openssl.arg("verify").arg("-CAfile").arg(&root);
            for path in untrusted {
                openssl.arg("-untrusted").arg(path);
            }
            let out = openssl.arg(leaf).output().expect("openssl runs");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        };
        // A leaf the root signs itself verifies, so the refusal below is the path length's.
        let own = leaf_params.signed_by(&leaf_key, &ca.issuer).unwrap();
        let (ok, text) = verify(&file("own.pem", &own.pem()), &[]);
        assert!(ok, "{text}");
        let intermediate = file("intermediate.pem", &intermediate.pem());
        let leaf = file("leaf.pem", &leaf.pem());
        let (ok, text) = verify(&leaf, &[&intermediate]);
        assert!(!ok, "{text}");
        assert!(text.contains("path length"), "{text}");
    }

    #[test]
    fn cache_reuses_and_evicts_the_least_recently_used() {
        let (_dir, ca) = ca();
        let a = ca.leaf_for("a.example.com").unwrap();
        assert!(
            Arc::ptr_eq(&a, &ca.leaf_for("A.example.com.").unwrap()),
            "case and trailing dot"
        );
        let small = LeafCache::new(2);
        let key = |h: &str| mint(&ca, h).unwrap();
        for host in ["one", "two"] {
            let (k, t) = key(host);
            small.put(host.into(), k, t);
        }
        assert!(small.get("one").is_some());
        let (k, t) = key("three");
        small.put("three".into(), k, t);
        assert!(small.get("two").is_none(), "least recently used is evicted");
        assert!(small.get("one").is_some() && small.get("three").is_some());
    }

    #[test]
    fn invalid_hosts_are_refused() {
        let (_dir, ca) = ca();
        for host in [
            "",
            "a b.com",
            "-a.com",
            "a-.com",
            "a..com",
            "x/y",
            &"a".repeat(64),
        ] {
            assert!(ca.leaf_for(host).is_err(), "{host:?}");
        }
    }

    #[tokio::test]
    async fn the_proxy_ports_names_keep_out_of_the_tunnels_cache() {
        let (_dir, ca) = ca();
        let own = Arc::new(LeafCache::new(2));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.root_der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        for host in ["a.example.com", "b.example.com", "c.example.com"] {
            let resolver = LeafResolver::for_proxy_port(ca.clone(), own.clone(), "127.0.0.1");
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(resolver)));
            let (a, b) = tokio::io::duplex(64 * 1024);
            let name = ServerName::try_from(host).unwrap();
            let (server, client) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
            server.unwrap();
            client.unwrap();
            assert!(own.get(host).is_some(), "{host} in the port's own cache");
            assert!(
                ca.leaves.get(host).is_none(),
                "{host} in the tunnels' cache"
            );
        }
        assert!(
            own.get("a.example.com").is_none(),
            "the own cache keeps its size"
        );
    }

    #[tokio::test]
    async fn handshake_presents_the_leaf_with_alpn() {
        let (_dir, ca) = ca();
        let server = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(
            LeafResolver::for_target(ca.clone(), "fallback.example.com"),
        )));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.root_der().clone()).unwrap();
        let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        client_config.alpn_protocols = vec![b"h2".to_vec()];
        let client = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (server, client) = tokio::join!(
            server.accept(a),
            client.connect(ServerName::try_from("api.example.com").unwrap(), b)
        );
        server.unwrap();
        let client = client.unwrap();
        assert_eq!(client.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    }
}
