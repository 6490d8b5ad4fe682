//! Secrets handed to a re-executed server process on its stdin, never through argv or the
//! environment.
//!
//! Removing a variable from a running process does not erase it from
//! `/proc/<pid>/environ`, which shows the environment the process was *started* with. So a
//! foreground server that finds `AGENT_VAULT_MASTER_PASSWORD` re-executes itself (same PID)
//! without the variable and reads the password from a pipe instead. A detached server child
//! receives the unlocked DEK the same way.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MASTER_PASSWORD_ENV, ServerError, ServerOptions};
use crate::crypto::{Key, SecretString};

/// Names the hand-off mode of a re-executed process; holds no secret.
pub const MARKER_ENV: &str = "_AGENT_VAULT_HANDOFF";
/// A pipe holds at least this much without a reader, so the write cannot block.
const MAX_PAYLOAD: usize = 16 * 1024;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Handoff {
    #[serde(default)]
    detached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dek_hex: Option<SecretString>,
}

impl Handoff {
    pub fn is_detached_child(&self) -> bool {
        self.detached
    }

    pub fn for_detached_child(dek: &Key) -> Self {
        Self {
            detached: true,
            master_password: None,
            dek_hex: Some(SecretString::new(dek.to_hex().to_string())),
        }
    }

    pub fn dek(&self) -> Option<Key> {
        Key::from_hex(self.dek_hex.as_ref()?.expose())
    }

    /// The payload line to write on the new process's stdin.
    pub fn to_line(&self) -> Result<Zeroizing<String>, ServerError> {
        let mut line = Zeroizing::new(
            serde_json::to_string(self).map_err(|e| ServerError::Input(e.to_string()))?,
        );
        line.push('\n');
        if line.len() > MAX_PAYLOAD {
            return Err(ServerError::Input(
                "the master password is too long (limit 8 KiB)".into(),
            ));
        }
        Ok(line)
    }
}

/// Reads the hand-off when this process was started by [`reexec`] or as a detached child.
pub fn receive() -> Result<Handoff, ServerError> {
    if std::env::var_os(MARKER_ENV).is_none() {
        return Ok(Handoff::default());
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(ServerError::io(
            "cannot read the server hand-off from stdin",
        ))?;
    serde_json::from_str(&line).map_err(|_| {
        ServerError::Input(format!(
            "{MARKER_ENV} is set but stdin holds no hand-off; unset it"
        ))
    })
}

/// Returns the master password from the environment, if any. In the foreground this
/// re-executes the process without the variable and does not return on success.
pub fn take_env_password(
    options: &ServerOptions,
    received: Handoff,
) -> Result<Option<SecretString>, ServerError> {
    if received.master_password.is_some() {
        return Ok(received.master_password);
    }
    let Some(value) = std::env::var_os(MASTER_PASSWORD_ENV) else {
        return Ok(None);
    };
    let password = SecretString::new(value.to_string_lossy().into_owned());
    if password.is_empty() {
        return Ok(None);
    }
    if options.detach {
        // The background child is spawned without the variable; this process exits soon.
        return Ok(Some(password));
    }
    Err(reexec(Handoff {
        detached: false,
        master_password: Some(password),
        dek_hex: None,
    }))
}

fn reexec(handoff: Handoff) -> ServerError {
    let line = match handoff.to_line() {
        Ok(line) => line,
        Err(e) => return e,
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return ServerError::io("cannot find the agent-vault executable")(e),
    };
    let (reader, mut writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return ServerError::io("cannot create a pipe")(e),
    };
    if let Err(e) = writer.write_all(line.as_bytes()) {
        return ServerError::io("cannot write to a pipe")(e);
    }
    drop(writer);
    let err = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env_remove(MASTER_PASSWORD_ENV)
        .env(MARKER_ENV, "1")
        .stdin(reader)
        .exec();
    ServerError::io(format!(
        "cannot restart the server without {MASTER_PASSWORD_ENV} in its environment"
    ))(err)
}
