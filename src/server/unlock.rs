//! Getting the DEK: create it on first start, unlock it on every later one.

use std::io::BufRead;

use zeroize::Zeroizing;

use super::ServerError;
use crate::crypto::{KdfParams, Key, KeyRecord, SecretString, UnlockError};
use crate::paths::Paths;
use crate::store::{Location, Store, master_key};

/// Where the master password comes from, in the seed's order of precedence.
pub enum PasswordSource {
    /// From `AGENT_VAULT_MASTER_PASSWORD` (already removed from the environment).
    Given(SecretString),
    /// `--password-stdin`: the first line of stdin.
    Stdin,
    /// Interactive prompt on the terminal.
    Prompt,
    /// No password anywhere.
    None,
}

const PROMPT_ATTEMPTS: usize = 3;

pub fn read_stdin_line() -> Result<SecretString, ServerError> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(ServerError::io(
            "cannot read the master password from stdin",
        ))?;
    Ok(SecretString::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn prompt(text: &str) -> Result<SecretString, ServerError> {
    rpassword::prompt_password(text)
        .map(SecretString::new)
        .map_err(ServerError::io(
            "cannot read the master password from the terminal",
        ))
}

fn non_empty(password: SecretString) -> Option<SecretString> {
    (!password.is_empty()).then_some(password)
}

/// Opens the store and returns it with the DEK. On a failed first start the new database
/// file is removed again, so nothing half-made stays behind.
pub fn open_and_unlock(paths: &Paths, source: PasswordSource) -> Result<(Store, Key), ServerError> {
    let db = paths.database();
    let location = Location::from_env(db.clone())?;
    let existed = location.exists();
    let store = Store::open_at(&location)?;
    let result = match store.read(master_key::load)? {
        None => first_start(&store, source),
        Some(record) => unlock(&record, source),
    };
    match result {
        Ok(dek) => Ok((store, dek)),
        Err(e) => {
            drop(store);
            if !existed {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
                }
            }
            Err(e)
        }
    }
}

fn first_start(store: &Store, source: PasswordSource) -> Result<Key, ServerError> {
    let password = match source {
        PasswordSource::Given(p) => non_empty(p),
        PasswordSource::Stdin => non_empty(read_stdin_line()?),
        PasswordSource::Prompt => {
            eprintln!("Setting up a new agent-vault instance.");
            let first = prompt("Choose a master password (empty for passwordless mode): ")?;
            match non_empty(first) {
                None => None,
                Some(first) => {
                    let again = prompt("Confirm the master password: ")?;
                    if again != first {
                        return Err(ServerError::Input(
                            "the two master passwords differ; nothing was created, start again"
                                .into(),
                        ));
                    }
                    Some(first)
                }
            }
        }
        PasswordSource::None => None,
    };
    if password.is_none() {
        eprintln!(
            "warning: passwordless mode: the data encryption key is stored unwrapped and protected only by file permissions. Set a master password later with `agent-vault master-password set`."
        );
    }
    let (record, dek) = KeyRecord::create(password.as_ref(), KdfParams::for_new_secrets())
        .map_err(|e| ServerError::Input(format!("cannot create the encryption key: {e}")))?;
    // Replicas sharing one PostgreSQL database may all start on an empty one: the first to
    // commit its key wins, and the others unlock that key with the password they were given.
    let existing = store.write(|tx| match master_key::load(tx)? {
        Some(existing) => Ok(Some(existing)),
        None => master_key::save(tx, &record).map(|()| None),
    })?;
    match existing {
        None => Ok(dek),
        Some(existing) => Ok(existing.unlock(password.as_ref())?),
    }
}

fn unlock(record: &KeyRecord, source: PasswordSource) -> Result<Key, ServerError> {
    if !record.has_password() {
        let given = match source {
            PasswordSource::Given(p) => !p.is_empty(),
            PasswordSource::Stdin => !read_stdin_line()?.is_empty(),
            PasswordSource::Prompt | PasswordSource::None => false,
        };
        if given {
            eprintln!(
                "warning: this instance has no master password, so the one given was not used. Protect the key with `agent-vault master-password set` (server stopped)."
            );
        }
        return Ok(record.unlock(None)?);
    }
    match source {
        PasswordSource::Given(p) => Ok(record.unlock(Some(&p))?),
        PasswordSource::Stdin => Ok(record.unlock(Some(&read_stdin_line()?))?),
        PasswordSource::None => Err(UnlockError::PasswordRequired.into()),
        PasswordSource::Prompt => {
            for attempt in 1..=PROMPT_ATTEMPTS {
                let password = prompt("Master password: ")?;
                match record.unlock(Some(&password)) {
                    Err(UnlockError::WrongPassword) if attempt < PROMPT_ATTEMPTS => {
                        eprintln!(
                            "wrong master password ({} attempts left)",
                            PROMPT_ATTEMPTS - attempt
                        )
                    }
                    other => return Ok(other?),
                }
            }
            Err(UnlockError::WrongPassword.into())
        }
    }
}
