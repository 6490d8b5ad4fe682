//! Secrets handed to a re-executed server process on its stdin, never through argv or the
//! environment.
//!
//! Removing a variable from a running process does not erase it from
//! `/proc/<pid>/environ`, which shows the environment the process was *started* with. So a
//! foreground server that finds `AGENT_VAULT_MASTER_PASSWORD`, `AGENT_VAULT_SMTP_PASSWORD` or
//! `AGENT_VAULT_OAUTH_GOOGLE_CLIENT_SECRET` re-executes itself (same PID) without them and
//! reads them from a pipe instead. A detached server child receives the unlocked DEK and the
//! other secrets the same way.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MASTER_PASSWORD_ENV, ServerError, ServerOptions};
use crate::crypto::{Key, SecretString};
use crate::mail::config::PASSWORD_ENV as SMTP_PASSWORD_ENV;
use crate::web::google::CLIENT_SECRET_ENV as GOOGLE_SECRET_ENV;

/// Variables holding secrets, kept out of the running server's environment.
pub const SECRET_ENVS: [&str; 3] = [MASTER_PASSWORD_ENV, SMTP_PASSWORD_ENV, GOOGLE_SECRET_ENV];

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smtp_password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    google_client_secret: Option<SecretString>,
}

/// Secrets taken out of the environment at start.
pub struct EnvSecrets {
    pub master_password: Option<SecretString>,
    pub smtp_password: Option<SecretString>,
    pub google_client_secret: Option<SecretString>,
}

impl Handoff {
    pub fn is_detached_child(&self) -> bool {
        self.detached
    }

    pub fn for_detached_child(dek: &Key, secrets: EnvSecrets) -> Self {
        Self {
            detached: true,
            master_password: None,
            dek_hex: Some(SecretString::new(dek.to_hex().to_string())),
            smtp_password: secrets.smtp_password,
            google_client_secret: secrets.google_client_secret,
        }
    }

    pub fn dek(&self) -> Option<Key> {
        Key::from_hex(self.dek_hex.as_ref()?.expose())
    }

    /// The secrets handed over to a detached child (the master password never is).
    pub fn secrets(&self) -> EnvSecrets {
        EnvSecrets {
            master_password: None,
            smtp_password: self.smtp_password.clone(),
            google_client_secret: self.google_client_secret.clone(),
        }
    }

    /// The payload line to write on the new process's stdin.
    pub fn to_line(&self) -> Result<Zeroizing<String>, ServerError> {
        let mut line = Zeroizing::new(
            serde_json::to_string(self).map_err(|e| ServerError::Input(e.to_string()))?,
        );
        line.push('\n');
        if line.len() > MAX_PAYLOAD {
            return Err(ServerError::Input(
                "the master password, SMTP password and Google client secret are too long (limit 8 KiB together)".into(),
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

/// Returns the secrets from the environment (or from the hand-off of a re-executed server).
/// In the foreground, finding one in the environment re-executes the process without them;
/// on success that does not return.
pub fn take_env_secrets(
    options: &ServerOptions,
    received: Handoff,
) -> Result<EnvSecrets, ServerError> {
    let from_env = |name: &str| {
        // Text by now: the binary refuses to start with a setting that is not UTF-8.
        std::env::var(name)
            .ok()
            .map(SecretString::new)
            .filter(|secret| !secret.is_empty())
    };
    let secrets = EnvSecrets {
        master_password: received
            .master_password
            .or_else(|| from_env(MASTER_PASSWORD_ENV)),
        smtp_password: received
            .smtp_password
            .or_else(|| from_env(SMTP_PASSWORD_ENV)),
        google_client_secret: received
            .google_client_secret
            .or_else(|| from_env(GOOGLE_SECRET_ENV)),
    };
    let in_environment = SECRET_ENVS
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    // A detached start spawns its child without the variables; this process exits soon.
    if !in_environment || options.detach {
        return Ok(secrets);
    }
    Err(reexec(Handoff {
        detached: false,
        master_password: secrets.master_password,
        dek_hex: None,
        smtp_password: secrets.smtp_password,
        google_client_secret: secrets.google_client_secret,
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
    let mut command = Command::new(exe);
    command.args(std::env::args_os().skip(1));
    for name in SECRET_ENVS {
        command.env_remove(name);
    }
    let err = command.env(MARKER_ENV, "1").stdin(reader).exec();
    ServerError::io(format!(
        "cannot restart the server without {} in its environment",
        SECRET_ENVS.join(", ")
    ))(err)
}
