//! The MITM certificate authority: a root CA made on first start and leaf certificates
//! minted on demand for each host an agent connects to.
//!
//! Stance: the root's private key never touches disk in the clear — it is sealed under the
//! DEK (`ca/ca.key.sealed`, 0600) with associated data naming it; the certificate
//! (`ca/ca.crt.pem`) is public. The root may only sign end-entity certificates (path length
//! 0). Leaves are short-lived (24 h, backdated 5 minutes for clock skew) and cached per host,
//! so a warm handshake mints nothing.

mod leaf;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

pub use leaf::{LeafCache, LeafResolver, server_config};

use crate::crypto::{Key, open, random_bytes, seal};
use crate::paths::write_private;
use crate::store::{Store, StoreError, ca_root};

const KEY_AAD: &[u8] = b"agent-vault/ca/root-key";
const CERT_FILE: &str = "ca.crt.pem";
const KEY_FILE: &str = "ca.key.sealed";
const ROOT_VALIDITY_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "the CA in {dir} is incomplete ({missing} is missing); move the ca directory aside to create a new CA (clients must then fetch it again)"
    )]
    Incomplete { dir: String, missing: &'static str },
    #[error(
        "the CA key in {0} does not open with this instance's key; it was made by another instance or damaged"
    )]
    WrongKey(String),
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("certificate error: {0}")]
    Certificate(String),
    #[error("\"{0}\" is not a host name a certificate can be made for")]
    InvalidHost(String),
}

impl From<rcgen::Error> for CaError {
    fn from(err: rcgen::Error) -> Self {
        Self::Certificate(err.to_string())
    }
}

pub struct CertificateAuthority {
    root_pem: String,
    root_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaves: leaf::LeafCache,
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = random_bytes();
    bytes[0] &= 0x7f; // positive
    rcgen::SerialNumber::from_slice(&bytes)
}

/// A new root: its certificate (PEM) and its private key sealed under the DEK.
fn new_root(dek: &Key) -> Result<(String, Vec<u8>), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = root_params()?;
    params.serial_number = Some(random_serial());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(ROOT_VALIDITY_DAYS);
    let cert = params.self_signed(&key)?;
    let sealed = seal(dek, KEY_AAD, &key.serialize_der())
        .map_err(|e| CaError::Certificate(e.to_string()))?;
    Ok((cert.pem(), sealed))
}

/// The root as an SQLite instance keeps it in `dir`: (certificate PEM, sealed key), both as
/// stored, or `None` when the instance has made no CA yet (`migrate-db`).
pub fn files_in(dir: &Path) -> Result<Option<(String, Vec<u8>)>, CaError> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if !cert_path.exists() && !key_path.exists() {
        return Ok(None);
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| CaError::Io { path, source }
    };
    let pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let sealed = std::fs::read(&key_path).map_err(io(&key_path))?;
    Ok(Some((pem, sealed)))
}

/// The root's subject, constraints and usages (validity and serial are set when it is made).
fn root_params() -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "agent-vault root CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "agent-vault");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

impl CertificateAuthority {
    /// Loads the CA from the store's `ca_root` row, creating it on first use (in one write
    /// transaction, so replicas starting together agree on one root).
    pub fn load_or_create_in_store(store: &Store, dek: &Key) -> Result<Self, CaError> {
        let store_err = |e: StoreError| CaError::Certificate(format!("cannot load the CA: {e}"));
        let (pem, sealed) = store
            .write(|tx| {
                if let Some(found) = ca_root::load(tx)? {
                    return Ok(found);
                }
                let (pem, sealed) =
                    new_root(dek).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                ca_root::insert(tx, &pem, &sealed)?;
                Ok((pem, sealed))
            })
            .map_err(store_err)?;
        let der = open(dek, KEY_AAD, &sealed)
            .map_err(|_| CaError::WrongKey("the database's ca_root row".into()))?;
        let key = KeyPair::try_from(der.as_slice())?;
        Self::from_parts(pem, key)
    }

    /// Loads the CA from `dir`, creating it (and `dir`, 0700) on first use.
    pub fn load_or_create(dir: &Path, dek: &Key) -> Result<Self, CaError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CaError::Io { path, source }
        };
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
                let sealed = std::fs::read(&key_path).map_err(io(&key_path))?;
                let der = open(dek, KEY_AAD, &sealed)
                    .map_err(|_| CaError::WrongKey(key_path.display().to_string()))?;
                let key = KeyPair::try_from(der.as_slice())?;
                Self::from_parts(pem, key)
            }
            (false, false) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io(dir))?;
                let (pem, sealed) = new_root(dek)?;
                write_private(&key_path, &sealed).map_err(io(&key_path))?;
                write_private(&cert_path, pem.as_bytes()).map_err(io(&cert_path))?;
                // The certificate is public: clients read it with `ca fetch` or a copy.
                std::fs::set_permissions(&cert_path, std::fs::Permissions::from_mode(0o644))
                    .map_err(io(&cert_path))?;
                let der = open(dek, KEY_AAD, &sealed)
                    .map_err(|_| CaError::WrongKey(key_path.display().to_string()))?;
                Self::from_parts(pem, KeyPair::try_from(der.as_slice())?)
            }
            (cert, _) => Err(CaError::Incomplete {
                dir: dir.display().to_string(),
                missing: if cert { KEY_FILE } else { CERT_FILE },
            }),
        }
    }

    fn from_parts(root_pem: String, key: KeyPair) -> Result<Self, CaError> {
        let root_der = CertificateDer::from_pem_slice(root_pem.as_bytes()).map_err(|e| {
            CaError::Certificate(format!("the stored CA certificate is not valid PEM: {e}"))
        })?;
        // The issuer needs only the root's subject and key usages, which are fixed.
        let issuer = Issuer::new(root_params()?, key);
        Ok(Self {
            root_pem,
            root_der,
            issuer,
            leaves: leaf::LeafCache::new(leaf::CACHE_CAPACITY),
        })
    }

    /// The root certificate in PEM form (what `ca fetch` prints).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    /// A leaf for `host`, from the cache when it has more than an hour of validity left.
    pub fn leaf_for(
        self: &Arc<Self>,
        host: &str,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, CaError> {
        leaf::leaf_for(self, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_created_once_with_private_key_and_public_cert() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let dek = Key::generate();
        let first = CertificateAuthority::load_or_create(&ca_dir, &dek).unwrap();
        let mode = |f: &str| {
            std::fs::metadata(ca_dir.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        assert_eq!(
            std::fs::metadata(&ca_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let sealed = std::fs::read(ca_dir.join(KEY_FILE)).unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"PRIVATE KE"));
        let again = CertificateAuthority::load_or_create(&ca_dir, &dek).unwrap();
        assert_eq!(first.root_pem(), again.root_pem());
        assert!(matches!(
            CertificateAuthority::load_or_create(&ca_dir, &Key::generate()),
            Err(CaError::WrongKey(_))
        ));
        std::fs::remove_file(ca_dir.join(KEY_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::load_or_create(&ca_dir, &dek),
            Err(CaError::Incomplete { .. })
        ));
    }
}
