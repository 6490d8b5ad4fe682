//! SMTP settings from the seed's `AGENT_VAULT_SMTP_*` variables, checked once at start.
//!
//! Stance: an unset host disables email without a word (the seed's contract); any other bad
//! value stops the server with a message naming the variable and the fix. The password is
//! never read here from the environment: the server takes it out at start (see
//! `server::handoff`) and passes it in, and `Debug` never shows it.

use std::fmt;

use lettre::message::Mailbox;

use crate::crypto::SecretString;

pub const HOST_ENV: &str = "AGENT_VAULT_SMTP_HOST";
pub const PORT_ENV: &str = "AGENT_VAULT_SMTP_PORT";
pub const USERNAME_ENV: &str = "AGENT_VAULT_SMTP_USERNAME";
pub const PASSWORD_ENV: &str = "AGENT_VAULT_SMTP_PASSWORD";
pub const FROM_ENV: &str = "AGENT_VAULT_SMTP_FROM";
pub const FROM_NAME_ENV: &str = "AGENT_VAULT_SMTP_FROM_NAME";
pub const TLS_MODE_ENV: &str = "AGENT_VAULT_SMTP_TLS_MODE";
pub const TLS_SKIP_VERIFY_ENV: &str = "AGENT_VAULT_SMTP_TLS_SKIP_VERIFY";

pub const DEFAULT_PORT: u16 = 587;
pub const DEFAULT_FROM_NAME: &str = "Agent Vault";
/// The port of implicit TLS ("SMTPS", RFC 8314): TLS from the first byte, no STARTTLS.
pub const IMPLICIT_TLS_PORT: u16 = 465;

/// How the connection to the SMTP server is protected (`AGENT_VAULT_SMTP_TLS_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when the server offers it, plain text otherwise (the default).
    Opportunistic,
    /// STARTTLS, or implicit TLS on port 465; a server without TLS is refused.
    Required,
    /// Plain text always (a trusted relay on the same host or network).
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opportunistic => "opportunistic",
            Self::Required => "required",
            Self::None => "none",
        }
    }
}

/// A bad `AGENT_VAULT_SMTP_*` value: the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}=\"{value}\" is not valid: {problem}")]
    Invalid {
        var: &'static str,
        value: String,
        problem: String,
    },
    #[error("{var} is not set but {HOST_ENV} is: {fix}")]
    Missing {
        var: &'static str,
        fix: &'static str,
    },
    #[error("{PASSWORD_ENV} is set but {USERNAME_ENV} is not: set the SMTP login name too")]
    PasswordWithoutUsername,
}

/// The checked SMTP settings.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    password: Option<SecretString>,
    pub from: Mailbox,
    pub tls_mode: TlsMode,
    pub tls_skip_verify: bool,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from.to_string())
            .field("tls_mode", &self.tls_mode)
            .field("tls_skip_verify", &self.tls_skip_verify)
            .finish()
    }
}

impl SmtpConfig {
    /// Reads the settings through `lookup` (the environment in the server). `password` is
    /// `AGENT_VAULT_SMTP_PASSWORD`, already taken out of the environment. `Ok(None)`: no
    /// host, email is off.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        password: Option<SecretString>,
    ) -> Result<Option<Self>, ConfigError> {
        let read = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(host) = read(HOST_ENV) else {
            return Ok(None);
        };
        if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
            || host.contains("://")
        {
            return Err(ConfigError::Invalid {
                var: HOST_ENV,
                value: host,
                problem: "give a host name or address only, such as smtp.example.com (the port goes in AGENT_VAULT_SMTP_PORT)".into(),
            });
        }
        let port = match read(PORT_ENV) {
            None => DEFAULT_PORT,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: PORT_ENV,
                        value: text,
                        problem: "expected a port number from 1 to 65535 (587 for STARTTLS, 465 for implicit TLS)".into(),
                    });
                }
            },
        };
        let tls_mode = match read(TLS_MODE_ENV) {
            None => TlsMode::Opportunistic,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "opportunistic" => TlsMode::Opportunistic,
                "required" => TlsMode::Required,
                "none" => TlsMode::None,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: TLS_MODE_ENV,
                        value: text,
                        problem: "expected opportunistic, required or none".into(),
                    });
                }
            },
        };
        let tls_skip_verify = match read(TLS_SKIP_VERIFY_ENV) {
            None => false,
            Some(text) => parse_bool(&text).ok_or_else(|| ConfigError::Invalid {
                var: TLS_SKIP_VERIFY_ENV,
                value: text,
                problem: "expected true or false".into(),
            })?,
        };
        let from_address = read(FROM_ENV).ok_or(ConfigError::Missing {
            var: FROM_ENV,
            fix: "give the sender address, such as AGENT_VAULT_SMTP_FROM=agent-vault@example.com",
        })?;
        let address =
            from_address
                .parse::<lettre::Address>()
                .map_err(|e| ConfigError::Invalid {
                    var: FROM_ENV,
                    value: from_address.clone(),
                    problem: format!("{e}; give a bare address such as agent-vault@example.com"),
                })?;
        let from_name = lookup(FROM_NAME_ENV)
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_FROM_NAME.to_owned());
        if from_name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                var: FROM_NAME_ENV,
                value: from_name.escape_default().to_string(),
                problem: "use one line of text".into(),
            });
        }
        let username = read(USERNAME_ENV);
        let password = password.filter(|p| !p.is_empty());
        if password.is_some() && username.is_none() {
            return Err(ConfigError::PasswordWithoutUsername);
        }
        Ok(Some(Self {
            host,
            port,
            username,
            password,
            from: Mailbox::new((!from_name.is_empty()).then_some(from_name), address),
            tls_mode,
            tls_skip_verify,
        }))
    }

    pub(super) fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// Whether the connection starts with TLS (port 465) instead of upgrading with STARTTLS.
    pub fn implicit_tls(&self) -> bool {
        self.port == IMPLICIT_TLS_PORT && self.tls_mode != TlsMode::None
    }

    /// Warnings worth a log line at start: settings that weaken the connection.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.tls_mode == TlsMode::None && self.username.is_some() {
            out.push(format!(
                "{TLS_MODE_ENV}=none: the SMTP login crosses the network unencrypted; use opportunistic or required unless the server is on this host"
            ));
        }
        if self.tls_skip_verify && self.tls_mode != TlsMode::None {
            out.push(format!(
                "{TLS_SKIP_VERIFY_ENV}=true: the SMTP server's certificate is not checked, so anyone on the path can read the mail and the login"
            ));
        }
        out
    }

    /// One line for the start-up log, without the password.
    pub fn describe(&self) -> String {
        let security = match (self.tls_mode, self.implicit_tls()) {
            (_, true) => "implicit TLS",
            (TlsMode::Opportunistic, false) => "STARTTLS when offered",
            (TlsMode::Required, false) => "STARTTLS required",
            (TlsMode::None, false) => "no TLS",
        };
        let login = match &self.username {
            Some(user) => format!(", login {user}"),
            None => String::new(),
        };
        format!(
            "{}:{} ({security}{login}), from {}",
            self.host, self.port, self.from
        )
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<SmtpConfig>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SmtpConfig::from_lookup(
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            None,
        )
    }

    const BASE: [(&str, &str); 2] = [(HOST_ENV, "smtp.example.com"), (FROM_ENV, "av@example.com")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars = BASE.to_vec();
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn no_host_means_email_off() {
        assert!(config(&[]).unwrap().is_none());
        assert!(
            config(&[(HOST_ENV, "  "), (PORT_ENV, "nonsense")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn defaults() {
        let c = config(&BASE).unwrap().unwrap();
        assert_eq!(c.port, 587);
        assert_eq!(c.tls_mode, TlsMode::Opportunistic);
        assert!(!c.tls_skip_verify);
        assert_eq!(c.from.to_string(), "Agent Vault <av@example.com>");
        assert!(c.username.is_none() && c.password().is_none());
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (vars, var) in [
            (with(&[(PORT_ENV, "abc")]), PORT_ENV),
            (with(&[(PORT_ENV, "0")]), PORT_ENV),
            (with(&[(PORT_ENV, "70000")]), PORT_ENV),
            (with(&[(TLS_MODE_ENV, "starttls")]), TLS_MODE_ENV),
            (with(&[(TLS_SKIP_VERIFY_ENV, "maybe")]), TLS_SKIP_VERIFY_ENV),
            (vec![(HOST_ENV, "smtp.example.com")], FROM_ENV),
            (
                vec![(HOST_ENV, "smtp.example.com"), (FROM_ENV, "not an address")],
                FROM_ENV,
            ),
            (
                vec![(HOST_ENV, "smtp://smtp.example.com"), (FROM_ENV, "a@b.co")],
                HOST_ENV,
            ),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn a_password_needs_a_username() {
        let vars = BASE;
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let err = SmtpConfig::from_lookup(lookup, Some(SecretString::new("pw".into())))
            .unwrap_err()
            .to_string();
        assert!(err.contains(USERNAME_ENV), "{err}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let vars = with(&[(USERNAME_ENV, "mailer")]);
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let c = SmtpConfig::from_lookup(lookup, Some(SecretString::new("hunter2-sentinel".into())))
            .unwrap()
            .unwrap();
        let shown = format!("{c:?} {}", c.describe());
        assert!(!shown.contains("hunter2-sentinel"), "{shown}");
        assert!(shown.contains("mailer"), "{shown}");
    }

    #[test]
    fn modes_and_implicit_tls() {
        let c = config(&with(&[(TLS_MODE_ENV, "Required"), (PORT_ENV, "465")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.tls_mode, TlsMode::Required);
        assert!(c.implicit_tls());
        let c = config(&with(&[(TLS_MODE_ENV, "none"), (PORT_ENV, "465")]))
            .unwrap()
            .unwrap();
        assert!(!c.implicit_tls());
        let c = config(&with(&[(TLS_SKIP_VERIFY_ENV, "TRUE")]))
            .unwrap()
            .unwrap();
        assert!(c.tls_skip_verify);
        assert_eq!(c.warnings().len(), 1);
    }
}
