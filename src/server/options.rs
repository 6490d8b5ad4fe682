//! Server options from flags and environment, and the derived base URL.

use std::net::TcpListener;

use super::ServerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

/// `--mitm-port` and `--proxy-tls-port`: a port, `0` (the seed's "disabled"), or `auto` (any
/// free port, reported on stdout; an addition to the seed so tests and scripts never race for
/// a free port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MitmPort {
    Disabled,
    Fixed(u16),
    Ephemeral,
}

impl MitmPort {
    /// The spelling for an ephemeral port (`--port 0` already means one for the API).
    pub const EPHEMERAL: &'static str = "auto";

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case(Self::EPHEMERAL) {
            return Ok(Self::Ephemeral);
        }
        match text.parse::<u16>() {
            Ok(0) => Ok(Self::Disabled),
            Ok(port) => Ok(Self::Fixed(port)),
            Err(_) => Err(format!(
                "\"{}\" is not a port: give 1-65535, 0 to disable the listener, or `{}` for any free port",
                crate::ceilings::excerpt(text, 32),
                Self::EPHEMERAL
            )),
        }
    }

    /// The port to bind (0 asks the OS for any), or `None` when disabled.
    pub fn bind_port(self) -> Option<u16> {
        match self {
            Self::Disabled => None,
            Self::Fixed(port) => Some(port),
            Self::Ephemeral => Some(0),
        }
    }
}

impl std::fmt::Display for MitmPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("0"),
            Self::Fixed(port) => write!(f, "{port}"),
            Self::Ephemeral => f.write_str(Self::EPHEMERAL),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub host: String,
    pub port: u16,
    pub mitm_port: MitmPort,
    /// The same proxy behind TLS, for agents reaching the broker over a network.
    pub proxy_tls_port: MitmPort,
    pub log_level: LogLevel,
    pub detach: bool,
    pub password_stdin: bool,
}

impl ServerOptions {
    /// Refuses early, before any state is written, when a port is taken. Port 0 (any free
    /// port) needs no check. The MITM port is only warned about later: it is not fatal.
    pub fn check_ports_free(&self) -> Result<(), ServerError> {
        if self.port == 0 {
            return Ok(());
        }
        TcpListener::bind((self.host.as_str(), self.port))
            .map(drop)
            .map_err(|e| bind_error(Listener::Api, &self.host, self.port, &e))
    }
}

/// Which listener a bind failure is about, so the hint names the flag that moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    Mitm,
    ProxyTls,
}

pub fn bind_error(listener: Listener, host: &str, port: u16, err: &std::io::Error) -> ServerError {
    let hint = match (err.kind(), listener) {
        (std::io::ErrorKind::AddrInUse, Listener::Api) => {
            "another process uses this port: stop it, or choose another with --port (or PORT)"
        }
        (std::io::ErrorKind::AddrInUse, Listener::Mitm) => {
            "another process uses this port: stop it, choose another with --mitm-port (`--mitm-port auto` takes any free one), or disable the proxy with --mitm-port 0"
        }
        (std::io::ErrorKind::PermissionDenied, Listener::Api) => {
            "ports below 1024 need privileges: choose a port above 1024 with --port"
        }
        (std::io::ErrorKind::AddrInUse, Listener::ProxyTls) => {
            "another process uses this port: stop it, choose another with --proxy-tls-port (`auto` takes any free one), or leave the TLS proxy off with --proxy-tls-port 0"
        }
        (std::io::ErrorKind::PermissionDenied, Listener::Mitm) => {
            "ports below 1024 need privileges: choose a port above 1024 with --mitm-port"
        }
        (std::io::ErrorKind::PermissionDenied, Listener::ProxyTls) => {
            "ports below 1024 need privileges: choose a port above 1024 with --proxy-tls-port"
        }
        (_, Listener::Api) => "check --host and --port",
        (_, Listener::Mitm) => "check --host and --mitm-port",
        (_, Listener::ProxyTls) => "check --host and --proxy-tls-port",
    };
    ServerError::Bind {
        addr: format!("{host}:{port}"),
        reason: err.to_string(),
        hint,
    }
}

/// The externally reachable base URL: `AGENT_VAULT_ADDR`, else `https://<FLY_APP_NAME>.fly.dev`,
/// else `http://<host>:<port>` (a wildcard bind address is shown as loopback, which works).
pub fn base_url(addr_env: Option<&str>, fly_app: Option<&str>, host: &str, port: u16) -> String {
    if let Some(addr) = addr_env.map(str::trim).filter(|a| !a.is_empty()) {
        return addr.trim_end_matches('/').to_owned();
    }
    if let Some(app) = fly_app.map(str::trim).filter(|a| !a.is_empty()) {
        return format!("https://{app}.fly.dev");
    }
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_owned(),
    };
    format!("http://{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_precedence() {
        assert_eq!(
            base_url(Some("https://vault.example.com/"), Some("app"), "h", 1),
            "https://vault.example.com"
        );
        assert_eq!(
            base_url(None, Some("myapp"), "h", 1),
            "https://myapp.fly.dev"
        );
        assert_eq!(
            base_url(Some(" "), None, "127.0.0.1", 14321),
            "http://127.0.0.1:14321"
        );
        assert_eq!(
            base_url(None, None, "0.0.0.0", 8080),
            "http://127.0.0.1:8080"
        );
        assert_eq!(base_url(None, None, "::1", 8080), "http://[::1]:8080");
    }

    #[test]
    fn a_taken_port_is_refused_with_a_hint() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let options = ServerOptions {
            host: "127.0.0.1".into(),
            port: taken.local_addr().unwrap().port(),
            mitm_port: MitmPort::Disabled,
            proxy_tls_port: MitmPort::Disabled,
            log_level: LogLevel::Info,
            detach: false,
            password_stdin: false,
        };
        let err = options.check_ports_free().unwrap_err().to_string();
        assert!(err.contains("--port"), "{err}");
    }

    #[test]
    fn mitm_port_spellings() {
        assert_eq!(MitmPort::parse("0"), Ok(MitmPort::Disabled));
        assert_eq!(MitmPort::parse("14322"), Ok(MitmPort::Fixed(14322)));
        assert_eq!(MitmPort::parse("AUTO"), Ok(MitmPort::Ephemeral));
        let err = MitmPort::parse("70000").unwrap_err();
        assert!(err.contains("auto"), "{err}");
        for spelling in ["0", "14322", "auto"] {
            assert_eq!(MitmPort::parse(spelling).unwrap().to_string(), spelling);
        }
    }

    #[test]
    fn a_mitm_bind_failure_names_the_mitm_flag() {
        let err = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let text = bind_error(Listener::Mitm, "127.0.0.1", 14322, &err).to_string();
        assert!(text.contains("--mitm-port"), "{text}");
        assert!(!text.contains("--port (or PORT)"), "{text}");
    }
}
