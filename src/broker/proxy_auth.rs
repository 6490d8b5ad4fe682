//! Reading the agent's proxy credentials: `Proxy-Authorization: Basic base64(token[:vault])`
//! — what every client sends for `HTTPS_PROXY=http://TOKEN:VAULT@host:port` — or
//! `Bearer token`. The explicit endpoint takes `Authorization: Bearer` and `X-Vault` instead.

use base64::Engine;
use http::HeaderMap;

use super::BrokerError;
use crate::crypto::SecretString;

#[derive(Debug)]
pub struct ProxyCredentials {
    pub token: SecretString,
    /// The vault named by the client, if any.
    pub vault: Option<String>,
    /// `sha256-hex(token)` and the vault: the broker's cache key, computed once per
    /// connection rather than on each request inside it.
    pub(super) cache_key: String,
}

impl ProxyCredentials {
    pub fn new(token: SecretString, vault: Option<String>) -> Self {
        let mut cache_key = crate::crypto::hash_token(token.expose());
        if let Some(vault) = &vault {
            cache_key.push('/');
            cache_key.push_str(vault);
        }
        Self {
            token,
            vault,
            cache_key,
        }
    }

    /// The token's hash (the start of the cache key).
    pub(super) fn token_hash(&self) -> &str {
        self.cache_key
            .split_once('/')
            .map_or(self.cache_key.as_str(), |(hash, _)| hash)
    }
}

const HOW: &str = "set HTTPS_PROXY=http://<token>:<vault>@<host>:<port> (the token from `agent-vault vault token` or an agent token)";

/// From `Proxy-Authorization` (forward proxy).
pub fn from_proxy_headers(headers: &HeaderMap) -> Result<ProxyCredentials, BrokerError> {
    let value = headers
        .get(http::header::PROXY_AUTHORIZATION)
        .ok_or_else(|| {
            BrokerError::auth_required(format!("proxy credentials are missing; {HOW}"))
        })?;
    let value = value.to_str().map_err(|_| {
        BrokerError::auth_required("the Proxy-Authorization header is not valid text")
    })?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(ProxyCredentials::new(SecretString::from(rest), None));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BrokerError::auth_required(format!(
            "unsupported Proxy-Authorization scheme; use Basic or Bearer: {HOW}"
        )));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            BrokerError::auth_required("the Basic proxy credentials are not valid base64 text")
        })?;
    let decoded = SecretString::new(decoded);
    let (token, vault) = match decoded.expose().split_once(':') {
        Some((token, vault)) => (token, Some(percent_decode(vault)).filter(|v| !v.is_empty())),
        None => (decoded.expose(), None),
    };
    if token.is_empty() {
        return Err(BrokerError::auth_required(format!(
            "the proxy token is empty; {HOW}"
        )));
    }
    Ok(ProxyCredentials::new(SecretString::from(token), vault))
}

/// From `Authorization: Bearer` and `X-Vault` (explicit endpoint).
pub fn from_api_headers(headers: &HeaderMap) -> Result<ProxyCredentials, BrokerError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| SecretString::from(token.trim()))
        .ok_or_else(|| {
            BrokerError::auth_required(
                "send `Authorization: Bearer <token>` (and `X-Vault: <vault>` for agent tokens)",
            )
        })?;
    let vault = headers
        .get("x-vault")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    Ok(ProxyCredentials::new(token, vault))
}

/// Clients percent-encode userinfo in proxy URLs; vault names are slugs, but decode anyway.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, value.parse().unwrap());
        map
    }

    fn basic(text: &str) -> HeaderMap {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        headers("proxy-authorization", &format!("Basic {encoded}"))
    }

    #[test]
    fn accepted_forms() {
        let c = from_proxy_headers(&basic("av_sess_x:payments")).unwrap();
        assert_eq!(
            (c.token.expose(), c.vault.as_deref()),
            ("av_sess_x", Some("payments"))
        );
        let c = from_proxy_headers(&basic("av_sess_x")).unwrap();
        assert_eq!((c.token.expose(), c.vault), ("av_sess_x", None));
        let c = from_proxy_headers(&basic("av_sess_x:")).unwrap();
        assert_eq!(c.vault, None);
        let c = from_proxy_headers(&headers("proxy-authorization", "bearer av_agt_y")).unwrap();
        assert_eq!(c.token.expose(), "av_agt_y");
        let c = from_api_headers(&{
            let mut h = headers("authorization", "Bearer av_sess_z");
            h.insert("x-vault", "default".parse().unwrap());
            h
        })
        .unwrap();
        assert_eq!(
            (c.token.expose(), c.vault.as_deref()),
            ("av_sess_z", Some("default"))
        );
    }

    #[test]
    fn refused_forms_are_407_and_never_echo_the_token() {
        for h in [
            HeaderMap::new(),
            headers("proxy-authorization", "Digest abc"),
            headers("proxy-authorization", "Basic !!!notbase64"),
            basic(":vault"),
            headers("proxy-authorization", "Bearer "),
        ] {
            let err = from_proxy_headers(&h).unwrap_err();
            assert_eq!(err.status, 407, "{err}");
            assert!(!err.message.contains("abc"));
        }
        assert_eq!(from_api_headers(&HeaderMap::new()).unwrap_err().status, 407);
    }
}
