//! The CLI's login: `~/.agent-vault/session.json` (0600) holding the session token, the
//! server it belongs to and the account's email.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::crypto::SecretString;
use crate::paths::{Paths, write_private};

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedSession {
    pub token: SecretString,
    pub address: String,
    #[serde(default)]
    pub email: String,
}

pub fn load(paths: &Paths) -> anyhow::Result<Option<SavedSession>> {
    let file = paths.session_file();
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is damaged; log in again with `agent-vault auth login`",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

pub fn save(paths: &Paths, session: &SavedSession) -> anyhow::Result<()> {
    paths.ensure_root()?;
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec_pretty(session)?);
    write_private(&paths.session_file(), &bytes)
        .with_context(|| format!("cannot write {}", paths.session_file().display()))
}

pub fn clear(paths: &Paths) -> anyhow::Result<()> {
    match std::fs::remove_file(paths.session_file()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", paths.session_file().display()))
        }
        _ => Ok(()),
    }
}
