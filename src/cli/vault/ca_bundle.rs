//! `~/.agent-vault/mitm-ca.pem`, the file every `vault run` points its agent's CA variables
//! at (the seed fixes the path). Runs against different servers share it, and their agents
//! read it whenever they start a client: overwritten with the newest server's CA alone, it
//! would fail every later connection of a run still going against another server. So it holds
//! the CAs of the last few servers, the newest first. Trusting those together costs nothing in
//! practice: an agent's TLS goes only to its own broker's proxy (or, unproxied, to loopback and
//! the API's host).
//!
//! After them come the roots this machine trusts (the system bundle, `SSL_CERT_FILE`,
//! `SSL_CERT_DIR`): most clients take `SSL_CERT_FILE` and the like *instead of* their usual
//! roots, and the connections that skip the broker (an `https://` API, loopback services)
//! must still verify. Through the broker they change nothing: it presents its own leaves.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context as _;

/// How many servers' CAs the file keeps.
const KEEP: usize = 4;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The line between the servers' roots and this machine's (PEM readers skip such text).
const MACHINE_ROOTS: &str = "# agent-vault: the roots this machine trusts follow";

/// Puts `pem` (one server's root) first in the bundle at `path`, keeping the other servers'
/// roots that were there; a lock beside it keeps concurrent runs from losing each other's.
pub fn add(path: &Path, pem: &str) -> anyhow::Result<()> {
    let lock_path = path.with_extension("pem.lock");
    let lock_file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let existing = read_own(path).unwrap_or_default();
    let servers = existing.split(MACHINE_ROOTS).next().unwrap_or_default();
    let machine: String = crate::roots::trusted_root_certs_once()
        .0
        .iter()
        .map(|der| pem_of(der))
        .collect();
    let merged = format!("{}{MACHINE_ROOTS}\n{machine}", merge(pem, servers));
    if merged != existing {
        crate::paths::write_private(path, merged.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The file's text when it is a regular file of ours (anything else is replaced, not read).
fn read_own(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != nix::unistd::getuid().as_raw() {
        return None;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// A certificate in PEM, its base64 in lines of 64 characters.
fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap_or_default())
        .collect();
    format!("{BEGIN}\n{}\n{END}\n", lines.join("\n"))
}

/// The certificate blocks of a PEM text, each from BEGIN to END.
fn blocks(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        found.push(rest[start..end].trim());
        rest = &rest[end..];
    }
    found
}

/// `newest`'s certificates first, then the others of `existing` not among them, up to
/// [`KEEP`] in all; one block per server root, each followed by a newline.
fn merge(newest: &str, existing: &str) -> String {
    let mut kept: Vec<&str> = blocks(newest);
    for block in blocks(existing) {
        if kept.len() >= KEEP {
            break;
        }
        if !kept.contains(&block) {
            kept.push(block);
        }
    }
    kept.iter().map(|block| format!("{block}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(body: &str) -> String {
        format!("{BEGIN}\n{body}\n{END}\n")
    }

    #[test]
    fn the_newest_root_comes_first_and_the_others_stay_up_to_the_limit() {
        let (a, b) = (cert("AAAA"), cert("BBBB"));
        assert_eq!(merge(&a, ""), a);
        assert_eq!(merge(&a, &a), a, "one server again: unchanged");
        assert_eq!(merge(&b, &a), format!("{b}{a}"));
        assert_eq!(merge(&a, &format!("{b}{a}")), format!("{a}{b}"));
        let many: String = ["1", "2", "3", "4", "5"].map(cert).concat();
        let merged = merge(&a, &many);
        assert_eq!(blocks(&merged).len(), KEEP);
        assert!(merged.starts_with(&a));
        assert!(!merged.contains("\n4\n"), "the oldest go first: {merged}");
        // Stray text and a torn block are dropped.
        assert_eq!(
            merge(&a, &format!("junk\n{b}{BEGIN}\ntorn")),
            format!("{a}{b}")
        );
    }

    #[test]
    fn the_file_collects_roots_and_ignores_what_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mitm-ca.pem");
        let (a, b) = (cert("AAAA"), cert("BBBB"));
        let servers = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap();
            text.split(MACHINE_ROOTS).next().unwrap().to_owned()
        };
        add(&path, &a).unwrap();
        add(&path, &b).unwrap();
        assert_eq!(servers(&path), format!("{b}{a}"));
        // A symlink in its place is not followed for reading; the file replaces it.
        let elsewhere = dir.path().join("elsewhere.pem");
        std::fs::write(&elsewhere, cert("EVIL")).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        add(&path, &a).unwrap();
        assert_eq!(servers(&path), a);
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), cert("EVIL"));
    }

    /// After the servers' roots come this machine's, in PEM that a TLS library reads back
    /// as the same certificates; they never count against the servers' limit.
    #[test]
    fn the_machines_roots_follow_the_servers() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mitm-ca.pem");
        let machine = &crate::roots::trusted_root_certs_once().0;
        for server in ["1", "2", "3", "4", "5", "6"] {
            add(&path, &cert(server)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (servers, rest) = text.split_once(MACHINE_ROOTS).unwrap();
        assert_eq!(blocks(servers).len(), KEEP);
        let read: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(rest.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(&read, machine);
    }
}
