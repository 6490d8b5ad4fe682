//! Trusted TLS roots for the broker's own TLS clients (upstreams, email, PostgreSQL): the
//! system bundle plus `SSL_CERT_FILE` and every file in `SSL_CERT_DIR`, as OpenSSL reads them;
//! and the TLS error inside a failure of those clients, to say what to fix.
//!
//! Stance: read-only; a file named by the environment that cannot be read is reported as a
//! warning by the caller, never silently trusted or dropped.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Bundles the usual Linux distributions keep their trusted roots in.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system bundle's certificates plus those of `SSL_CERT_FILE` and `SSL_CERT_DIR`, with a
/// warning for each file named by the environment that cannot be read.
pub fn trusted_root_certs() -> (Vec<CertificateDer<'static>>, Vec<String>) {
    let mut certs = Vec::new();
    let mut warnings = Vec::new();
    let mut add_file = |path: &Path, required: bool| {
        let Ok(iter) = CertificateDer::pem_file_iter(path) else {
            if required {
                warnings.push(format!("cannot read certificates from {}", path.display()));
            }
            return;
        };
        certs.extend(iter.flatten());
    };
    if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        add_file(bundle, false);
    }
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        add_file(Path::new(&file), true);
    }
    if let Some(dirs) = std::env::var_os("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_file() {
                    add_file(&entry.path(), false);
                }
            }
        }
    }
    (certs, warnings)
}

/// [`trusted_root_certs`] read once per process, each certificate once. A CLI command may
/// build several API clients and write the agent's CA file, and the files do not change
/// meanwhile; inside `vault run`, `SSL_CERT_FILE` names that CA file, which already repeats
/// the system's roots.
pub fn trusted_root_certs_once() -> &'static (Vec<CertificateDer<'static>>, Vec<String>) {
    static ONCE: std::sync::OnceLock<(Vec<CertificateDer<'static>>, Vec<String>)> =
        std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let (mut certs, warnings) = trusted_root_certs();
        let mut seen = std::collections::HashSet::new();
        certs.retain(|der| seen.insert(der.to_vec()));
        (certs, warnings)
    })
}

/// The rustls error in `e`, also inside I/O errors wrapping I/O errors (hyper-rustls and
/// tokio-postgres wrap tokio-rustls's, whose inner error is the rustls one).
pub fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = e;
    for _ in 0..4 {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
    None
}
