//! `agent-vault master-password set | change | remove`: re-wrap the DEK while the server is
//! stopped. No credential is re-encrypted.
//!
//! On a terminal the passwords are prompted for without echo; otherwise they are read from
//! stdin, one per line, in the order the prompts would ask (current first, then new).

use anyhow::{Context as _, bail};
use clap::Subcommand;

use super::{output, prompt};
use crate::api::validate_password;
use crate::crypto::{KdfParams, Key, KeyRecord, SecretString, UnlockError};
use crate::paths::Paths;
use crate::server::pidfile;
use crate::store::{Store, master_key};

#[derive(Subcommand)]
pub enum MasterPasswordCommand {
    /// Set a master password on a passwordless instance. Wraps the existing DEK under a new
    /// KEK derived from the password. No credentials are re-encrypted. Without a terminal,
    /// reads the new password from the first line of stdin
    Set,
    /// Change the master password. Re-wraps the DEK under a new KEK. No credentials are
    /// re-encrypted. Without a terminal, reads the current and new passwords as two lines of stdin
    Change,
    /// Remove the master password, switching to passwordless mode. The DEK is stored in
    /// plaintext — security depends on filesystem access controls. Without a terminal, reads
    /// the current password from stdin
    Remove,
}

fn current_password() -> anyhow::Result<SecretString> {
    if prompt::stdin_is_tty() {
        prompt::hidden("Current master password: ")
    } else {
        prompt::stdin_secret_line("current master password")
    }
}

fn new_password() -> anyhow::Result<SecretString> {
    let password = if prompt::stdin_is_tty() {
        prompt::new_password("New master password")?
    } else {
        prompt::stdin_secret_line("new master password")?
    };
    if password.is_empty() {
        bail!(
            "the new master password is empty; to run without one use `agent-vault master-password remove`"
        );
    }
    validate_password(password.expose()).map_err(anyhow::Error::msg)?;
    Ok(password)
}

fn unlock(record: &KeyRecord) -> anyhow::Result<Key> {
    record
        .unlock(Some(&current_password()?))
        .map_err(|e| match e {
            UnlockError::WrongPassword => {
                anyhow::anyhow!("wrong master password; nothing was changed")
            }
            other => anyhow::anyhow!("{other}"),
        })
}

pub fn run(command: MasterPasswordCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    if let Some(pid) = pidfile::running_server(&paths) {
        bail!("the server is running (PID {pid}); stop it first with `agent-vault server stop`");
    }
    let location = crate::store::Location::from_env(paths.database())?;
    if !location.exists() {
        bail!(
            "no agent-vault data at {}; start the server once with `agent-vault server`",
            location.describe()
        );
    }
    let store = Store::open_at(&location)?;
    let record = store.read(master_key::load)?.context(
        "this instance has no encryption key yet; start the server once with `agent-vault server`",
    )?;
    let params = KdfParams::for_new_secrets();
    match command {
        MasterPasswordCommand::Set => {
            if record.has_password() {
                bail!(
                    "this instance already has a master password; use `agent-vault master-password change`"
                );
            }
            let dek = record.unlock(None)?;
            let password = new_password()?;
            store.write(|tx| {
                master_key::save(tx, &KeyRecord::protect(&dek, Some(&password), params)?)
            })?;
            output::success("Master password set. Start the server with it from now on.");
        }
        MasterPasswordCommand::Change => {
            if !record.has_password() {
                bail!(
                    "this instance has no master password; set one with `agent-vault master-password set`"
                );
            }
            let dek = unlock(&record)?;
            let password = new_password()?;
            store.write(|tx| {
                master_key::save(tx, &KeyRecord::protect(&dek, Some(&password), params)?)
            })?;
            output::success("Master password changed. No credentials were re-encrypted.");
        }
        MasterPasswordCommand::Remove => {
            if !record.has_password() {
                bail!("this instance has no master password to remove");
            }
            let dek = unlock(&record)?;
            store.write(|tx| master_key::save(tx, &KeyRecord::protect(&dek, None, params)?))?;
            output::success("Master password removed; the encryption key is now stored unwrapped.");
            output::warn("security now depends on the file permissions of ~/.agent-vault");
        }
    }
    Ok(())
}
