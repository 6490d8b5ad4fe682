//! Which names the API port answers to. A web page in the user's browser can point a name of
//! its own at this server (DNS rebinding) and then read it as its own origin, past the
//! browser's cross-origin rules; its requests carry that name as `Host`. So a name is
//! answered only if it is the server's own (the host of its base URL, `AGENT_VAULT_ADDR`) or
//! `localhost`. An IP address, or no `Host` at all, is always answered: rebinding needs a
//! name. `/health` answers any name (a load balancer's check; it tells nothing).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::target::Host;

#[derive(Clone)]
pub struct KnownHosts {
    names: Arc<[String]>,
    base_url: Arc<str>,
}

impl KnownHosts {
    pub fn new(base_url: &str) -> Self {
        let own = url::Url::parse(base_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .and_then(|host| match Host::parse(&host) {
                Ok(Host::Name(name)) => Some(name),
                _ => None,
            });
        Self {
            names: std::iter::once("localhost".to_owned()).chain(own).collect(),
            base_url: base_url.into(),
        }
    }

    /// Whether a request naming `authority` (`host[:port]`) is answered.
    fn allows(&self, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        match Host::parse(authority.host()) {
            Ok(Host::Ip(_)) => true,
            Ok(Host::Name(name)) => self.names.contains(&name),
            Err(_) => false,
        }
    }
}

/// Refuses (421) a request that names the server by a name it does not know.
pub async fn check(State(known): State<KnownHosts>, request: Request, next: Next) -> Response {
    let named = match request.headers().get(header::HOST) {
        Some(host) => Some(host.to_str().map(|h| known.allows(h)).unwrap_or(false)),
        // HTTP/2 names it in `:authority`.
        None => request.uri().authority().map(|a| known.allows(a.as_str())),
    };
    if named != Some(false) || request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let message = format!(
        "this server does not answer to the name this request used; reach it at {} or by IP address (an operator whose server has another name sets AGENT_VAULT_ADDR to the URL people use)",
        known.base_url
    );
    let body = json!({ "error": "unknown_host", "message": message });
    (StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_names_and_addresses_are_answered() {
        let known = KnownHosts::new("https://Vault.Example.com/");
        for ok in [
            "vault.example.com",
            "VAULT.example.com.:443",
            "localhost:14321",
            "127.0.0.1:14321",
            "[::1]:14321",
            "10.0.0.7",
        ] {
            assert!(known.allows(ok), "{ok}");
        }
        for refused in [
            "attacker.example",
            "vault.example.com.evil",
            "localhost.evil:80",
            "",
            "a b",
        ] {
            assert!(!known.allows(refused), "{refused}");
        }
        let local = KnownHosts::new("http://127.0.0.1:14321");
        assert!(local.allows("localhost") && !local.allows("rebound.example:14321"));
    }
}
