//! The API client: JSON over HTTP to the management API, errors turned into messages that
//! say what to do. It never goes through `HTTP(S)_PROXY`: the control plane is reached
//! directly even from inside `vault run`.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crypto::SecretString;

/// A refusal from the server: its HTTP status, stable code and message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

pub struct Client {
    base: String,
    token: Option<SecretString>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<SecretString>) -> anyhow::Result<Self> {
        let base = server_address(base)?;
        super::listener::check(&base)?;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(format!("agent-vault-cli/{}", crate::VERSION));
        if base.starts_with("https://") {
            for root in system_roots() {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Self { base, token, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::DELETE, path, None::<&()>).await
    }

    /// A GET whose successful answer is text (e.g. a PEM file), with its headers.
    pub async fn get_text(
        &self,
        path: &str,
    ) -> anyhow::Result<(reqwest::header::HeaderMap, String)> {
        check_path(path)?;
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .with_context(|| format!("the response from {} was cut off", self.base))?;
        if status.is_success() {
            return Ok((headers, text));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = body["message"].as_str().map(str::to_owned);
        Err(Refusal {
            status,
            code: body["error"].as_str().unwrap_or_default().to_owned(),
            message: message.unwrap_or_else(|| format!("the server answered {status}")),
        }
        .into())
    }

    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        check_path(path)?;
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("the response from {} was cut off", self.base))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).with_context(|| {
                format!("unexpected response from {url}; is it an agent-vault server of the same version?")
            });
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        Err(Refusal {
            status,
            code: text("error").unwrap_or_else(|| status.as_u16().to_string()),
            message: text("message")
                .or_else(|| text("error"))
                .unwrap_or_else(|| format!("the server answered {status}")),
        }
        .into())
    }

    fn transport_error(&self, err: reqwest::Error) -> anyhow::Error {
        if err.is_connect() {
            anyhow::anyhow!(
                "cannot reach the agent-vault server at {}; start it with `agent-vault server`, or point to another one with --address",
                self.base
            )
        } else if err.is_timeout() {
            anyhow::anyhow!(
                "the agent-vault server at {} did not answer in time",
                self.base
            )
        } else {
            anyhow::anyhow!("request to {} failed: {err}", self.base)
        }
    }
}

/// The roots the system trusts, with `SSL_CERT_FILE` and `SSL_CERT_DIR` (as curl and git
/// read them), on top of the built-in ones: a server behind a company's own CA is reached
/// like any other. A file the environment names but that cannot be read is said once.
fn system_roots() -> impl Iterator<Item = reqwest::Certificate> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let (roots, warnings) = crate::roots::trusted_root_certs_once();
    WARNED.call_once(|| warnings.iter().for_each(super::output::warn));
    // One certificate rustls cannot take as a root would fail the whole client.
    roots
        .iter()
        .filter(|der| rustls::RootCertStore::empty().add((*der).clone()).is_ok())
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
}

/// A server address as the client uses it (no trailing slash), or an error naming the form
/// it must take.
pub fn server_address(given: &str) -> anyhow::Result<String> {
    let base = given.trim().trim_end_matches('/').to_owned();
    if crate::target::Target::from_url(&base).is_err() {
        anyhow::bail!(
            "server address \"{base}\" is not a valid http:// or https:// URL (for example http://127.0.0.1:14321)"
        );
    }
    Ok(base)
}

/// The longest path segment or query value a request carries: every name, key, email and
/// token is far shorter.
const MAX_ARGUMENT: usize = 1024;

/// Refuses a request built from an empty, dot or oversized command-line argument. An empty
/// or dot one would reach another route (`/v1/vaults/` for a vault named "" or ".."),
/// answered "no such API route"; an oversized one would fail as an unbuildable URL.
fn check_path(path: &str) -> anyhow::Result<()> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if route.contains("//") || route.ends_with('/') || query.ends_with('=') {
        anyhow::bail!("a name, key, email or token given is empty; pass a value");
    }
    // A URL's `.` and `..` segments are resolved away before sending: another route.
    if route
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        anyhow::bail!("a name, key, email or token given is \".\" or \"..\"; none can be");
    }
    let mut parts = route.split('/').chain(query.split('&'));
    if let Some(long) = parts.find(|p| p.len() > MAX_ARGUMENT) {
        let start: String = long.chars().take(24).collect();
        anyhow::bail!(
            "an argument is {} bytes long (it starts {start:?}); no name, key, email or token is longer than {MAX_ARGUMENT}",
            long.len()
        );
    }
    Ok(())
}

/// Percent-encodes one URL path segment.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_from_an_empty_or_oversized_argument_is_refused_before_sending() {
        for fine in [
            "/v1/vaults/default/credentials/KEY",
            "/v1/discover?vault=default",
            "/v1/status",
        ] {
            assert!(check_path(fine).is_ok(), "{fine}");
        }
        for empty in [
            "/v1/vaults//rename",
            "/v1/agents/",
            "/v1/users/invites?status=",
        ] {
            let err = check_path(empty).unwrap_err().to_string();
            assert!(err.contains("is empty"), "{empty}: {err}");
        }
        for dots in ["/v1/vaults/..", "/v1/agents/./rotate"] {
            let err = check_path(dots).unwrap_err().to_string();
            assert!(err.contains("none can be"), "{dots}: {err}");
        }
        let long = format!("/v1/vaults/{}", "x".repeat(MAX_ARGUMENT + 1));
        let err = check_path(&long).unwrap_err().to_string();
        assert!(err.contains("1025 bytes long") && err.len() < 200, "{err}");
    }
}
