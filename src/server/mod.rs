//! Server lifecycle: take the master password out of the environment, unlock or create the
//! DEK, start the API and proxy listeners, keep the pid file, detach, shut down gracefully.
//!
//! Stance: the master password and the DEK never appear in argv, in the environment of the
//! running server (`/proc/<pid>/environ`), or in a log line. A wrong password is refused
//! before anything listens; a port in use is refused before anything is written.

mod detach;
mod handoff;
mod housekeeping;
mod open_files;
mod options;
pub mod pidfile;
mod run;
mod unlock;
mod workers;

use std::io::IsTerminal;
use std::path::PathBuf;

pub use options::{LogLevel, MitmPort, ServerOptions, base_url};

use crate::crypto::UnlockError;
use crate::paths::{Paths, PathsError};
use crate::store::StoreError;

/// The environment variable holding the master password; removed before the server runs.
pub const MASTER_PASSWORD_ENV: &str = "AGENT_VAULT_MASTER_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Paths(#[from] PathsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unlock(String),
    #[error(
        "the server is already running (PID {0}); stop it first with `agent-vault server stop`"
    )]
    AlreadyRunning(i32),
    #[error("cannot listen on {addr}: {reason}; {hint}")]
    Bind {
        addr: String,
        reason: String,
        hint: &'static str,
    },
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Email(#[from] crate::mail::ConfigError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "the background server exited during start-up ({status}); its log {log} ends with:\n{tail}"
    )]
    DetachedStartFailed {
        status: String,
        log: PathBuf,
        tail: String,
    },
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

impl From<UnlockError> for ServerError {
    fn from(err: UnlockError) -> Self {
        Self::Unlock(match err {
            UnlockError::WrongPassword => {
                "wrong master password; the server was not started".into()
            }
            UnlockError::PasswordRequired => format!(
                "this instance is protected by a master password; provide it with {MASTER_PASSWORD_ENV}, --password-stdin, or run in a terminal to be prompted"
            ),
            UnlockError::Damaged(e) => format!("the stored master key cannot be used: {e}"),
        })
    }
}

/// `agent-vault server`: runs in the foreground or, with `--detach`, in the background.
pub fn start(options: ServerOptions) -> Result<(), ServerError> {
    let handoff = handoff::receive()?;
    let paths = Paths::from_env()?;
    if handoff.is_detached_child() {
        let integrations = Integrations::from_env(&handoff.secrets())?;
        return detach::run_child(&paths, &options, handoff, integrations);
    }
    // Foreground starts move the passwords from the environment to a pipe and re-execute,
    // so the running server's environment never held them.
    let mut secrets = handoff::take_env_secrets(&options, handoff)?;
    let integrations = Integrations::from_env(&secrets)?;
    // A bad AGENT_VAULT_RATELIMIT_* value or worker count stops the start here, before
    // anything is written.
    run::rate_limit_env()?;
    workers::from_env()?;

    if let Some(pid) = pidfile::running_server(&paths) {
        return Err(ServerError::AlreadyRunning(pid));
    }
    options.check_ports_free()?;
    paths.ensure_root()?;
    let source = match secrets.master_password.take() {
        Some(password) => unlock::PasswordSource::Given(password),
        None if options.password_stdin => unlock::PasswordSource::Stdin,
        None if std::io::stdin().is_terminal() => unlock::PasswordSource::Prompt,
        None => unlock::PasswordSource::None,
    };
    let (store, dek) = unlock::open_and_unlock(&paths, source)?;
    if options.detach {
        drop(store);
        return detach::spawn(&paths, &options, &dek, secrets);
    }
    run::serve(&paths, &options, store, dek, integrations)
}

/// Mail (`AGENT_VAULT_SMTP_*`) and Google sign-in (`AGENT_VAULT_OAUTH_GOOGLE_*`), their
/// secrets taken from the hand-off; a bad setting stops the start here, before anything runs.
pub struct Integrations {
    pub smtp: Option<crate::mail::SmtpConfig>,
    pub google: Option<crate::ops::GoogleConfig>,
}

impl Integrations {
    fn from_env(secrets: &handoff::EnvSecrets) -> Result<Self, ServerError> {
        use crate::web::google;
        let var = |name: &str| std::env::var(name).ok();
        let smtp = crate::mail::SmtpConfig::from_lookup(var, secrets.smtp_password.clone())?;
        let google = google::config_from_env(
            var(google::CLIENT_ID_ENV),
            secrets
                .google_client_secret
                .as_ref()
                .map(|secret| secret.expose().to_owned()),
            var(google::ISSUER_ENV),
        )
        .map_err(ServerError::Input)?;
        Ok(Self { smtp, google })
    }
}

/// `agent-vault server stop`: SIGTERM to the server named by the pid file.
pub fn stop() -> Result<i32, ServerError> {
    let paths = Paths::from_env()?;
    pidfile::stop(&paths)
}
