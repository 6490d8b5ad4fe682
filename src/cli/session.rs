//! The CLI's logins: `~/.agent-vault/session.json` (0600), one login per server. Each holds
//! the session token, the server it belongs to and the account's email; a token is only
//! ever sent to the server that issued it. `--address` picks the server (and its login);
//! without it, the login made last is used.
//!
//! The file keeps the current login's fields at the top level (the format of earlier
//! versions, which still read it) and every login under `logins`, keyed by origin.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::crypto::SecretString;
use crate::paths::{Paths, write_private};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSession {
    pub token: SecretString,
    pub address: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<SecretString>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    email: String,
    #[serde(default)]
    logins: BTreeMap<String, SavedSession>,
}

impl Stored {
    fn current(&self) -> Option<SavedSession> {
        let token = self.token.clone()?;
        Some(SavedSession {
            token,
            address: self.address.clone(),
            email: self.email.clone(),
        })
    }

    fn set_current(&mut self, session: Option<SavedSession>) {
        let (token, address, email) = match session {
            Some(s) => (Some(s.token), s.address, s.email),
            None => (None, String::new(), String::new()),
        };
        self.token = token;
        self.address = address;
        self.email = email;
    }
}

/// `scheme://host:port` with the default port spelled out: what tells two servers apart.
pub fn origin(address: &str) -> String {
    let trimmed = address.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(url) => format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default().to_ascii_lowercase(),
            url.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => trimmed.to_owned(),
    }
}

fn read(paths: &Paths) -> anyhow::Result<Stored> {
    let file = paths.session_file();
    let mut stored: Stored = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is damaged; log in again with `agent-vault auth login`",
                file.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    // A file of an earlier version holds only the current login.
    if let Some(current) = stored.current() {
        stored
            .logins
            .entry(origin(&current.address))
            .or_insert(current);
    }
    Ok(stored)
}

fn write(paths: &Paths, stored: &Stored) -> anyhow::Result<()> {
    let file = paths.session_file();
    if stored.logins.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", file.display()))
            }
            _ => Ok(()),
        };
    }
    paths.ensure_root()?;
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec_pretty(stored)?);
    write_private(&file, &bytes).with_context(|| format!("cannot write {}", file.display()))
}

/// The login for `address`, or the current one when `address` is `None`.
pub fn load_for(paths: &Paths, address: Option<&str>) -> anyhow::Result<Option<SavedSession>> {
    let stored = read(paths)?;
    Ok(match address {
        Some(address) => stored.logins.get(&origin(address)).cloned(),
        None => stored.current(),
    })
}

/// The current login (the one made last).
pub fn load(paths: &Paths) -> anyhow::Result<Option<SavedSession>> {
    load_for(paths, None)
}

/// Saves a login for its server and makes it the current one.
pub fn save(paths: &Paths, session: &SavedSession) -> anyhow::Result<()> {
    let mut stored = read(paths)?;
    stored
        .logins
        .insert(origin(&session.address), session.clone());
    stored.set_current(Some(session.clone()));
    write(paths, &stored)
}

/// Forgets the login for `address`; if it was the current one, another (if any) becomes
/// current. Returns whether there was one.
pub fn remove(paths: &Paths, address: &str) -> anyhow::Result<bool> {
    let mut stored = read(paths)?;
    let key = origin(address);
    let had = stored.logins.remove(&key).is_some();
    if stored
        .current()
        .is_none_or(|current| origin(&current.address) == key)
    {
        let next = stored.logins.values().next().cloned();
        stored.set_current(next);
    }
    write(paths, &stored)?;
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(address: &str, token: &str) -> SavedSession {
        SavedSession {
            token: SecretString::from(token),
            address: address.into(),
            email: "me@example.com".into(),
        }
    }

    #[test]
    fn origins_tell_servers_apart() {
        assert_eq!(origin("http://127.0.0.1:14321/"), "http://127.0.0.1:14321");
        assert_eq!(
            origin("https://Vault.Example.com"),
            "https://vault.example.com:443"
        );
        assert_ne!(
            origin("http://localhost:14321"),
            origin("http://127.0.0.1:14321")
        );
        assert_ne!(origin("http://h:1"), origin("https://h:1"));
    }

    #[test]
    fn one_login_per_server() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join(".agent-vault"));
        save(&paths, &login("http://127.0.0.1:14321", "a")).unwrap();
        save(&paths, &login("http://localhost:14321/", "b")).unwrap();
        assert_eq!(load(&paths).unwrap().unwrap().token.expose(), "b");
        let a = load_for(&paths, Some("http://127.0.0.1:14321/"))
            .unwrap()
            .unwrap();
        assert_eq!(a.token.expose(), "a");
        assert!(load_for(&paths, Some("http://other:1")).unwrap().is_none());
        // Logging out of the current server falls back to the other login.
        assert!(remove(&paths, "http://localhost:14321").unwrap());
        assert_eq!(load(&paths).unwrap().unwrap().token.expose(), "a");
        assert!(remove(&paths, "http://127.0.0.1:14321").unwrap());
        assert!(load(&paths).unwrap().is_none());
        assert!(!paths.session_file().exists());
    }

    #[test]
    fn files_of_earlier_versions_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join(".agent-vault"));
        paths.ensure_root().unwrap();
        std::fs::write(
            paths.session_file(),
            r#"{"token":"old","address":"http://127.0.0.1:14321","email":"e@x.io"}"#,
        )
        .unwrap();
        let found = load_for(&paths, Some("http://127.0.0.1:14321"))
            .unwrap()
            .unwrap();
        assert_eq!(found.token.expose(), "old");
        save(&paths, &login("http://h:2", "new")).unwrap();
        let text = std::fs::read_to_string(paths.session_file()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["token"], "new", "the top level is the current login");
        assert_eq!(json["logins"].as_object().unwrap().len(), 2);
    }
}
