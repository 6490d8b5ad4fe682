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

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub host: String,
    pub port: u16,
    /// 0 disables the MITM proxy.
    pub mitm_port: u16,
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
            .map_err(|e| bind_error(&self.host, self.port, &e))
    }
}

pub fn bind_error(host: &str, port: u16, err: &std::io::Error) -> ServerError {
    let hint = match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process uses this port: stop it, or choose another with --port (or PORT)"
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: choose a port above 1024 with --port"
        }
        _ => "check --host and --port",
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
            mitm_port: 0,
            log_level: LogLevel::Info,
            detach: false,
            password_stdin: false,
        };
        let err = options.check_ports_free().unwrap_err().to_string();
        assert!(err.contains("--port"), "{err}");
    }
}
