//! The environment of an agent run, shared by process and container mode: the three
//! `AGENT_VAULT_*` variables, and — when the MITM proxy is used — the proxy variables (upper
//! and lower case: curl ignores upper-case `HTTP_PROXY`) and the CA trust variables of the
//! common runtimes. Stale copies in an inherited environment are removed, never duplicated;
//! server secrets are never passed on.

use std::path::Path;

pub const ADDR_ENV: &str = "AGENT_VAULT_ADDR";
pub const SESSION_TOKEN_ENV: &str = "AGENT_VAULT_SESSION_TOKEN";
pub const VAULT_ENV: &str = "AGENT_VAULT_VAULT";

/// Variables `vault run` owns: stale copies in the parent environment are removed, never
/// duplicated; secrets of the server are never passed on.
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];
const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];
pub const CA_VARS: [&str; 6] = [
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "DENO_CERT",
];
/// The server's secrets, which an agent started from the same shell must not inherit (a
/// PostgreSQL URL may carry its password).
const NEVER_INHERITED: [&str; 4] = [
    "AGENT_VAULT_MASTER_PASSWORD",
    "AGENT_VAULT_SMTP_PASSWORD",
    "AGENT_VAULT_OAUTH_GOOGLE_CLIENT_SECRET",
    crate::store::DATABASE_URL_ENV,
];

/// The host part of a base URL (`http://h:1/` → `h`, keeping IPv6 brackets); the text
/// itself if it is no URL.
pub fn url_host(base: &str) -> String {
    url::Url::parse(base.trim())
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| base.trim().to_owned())
}

/// Where the agent finds the broker's proxy, and the CA file it trusts.
#[derive(Debug, Clone, Copy)]
pub struct ProxyAt<'a> {
    /// The proxy's host (IPv6 in brackets); `None`: the API's.
    pub host: Option<&'a str>,
    pub port: u16,
    pub ca: &'a Path,
}

/// Everything the child's environment gets, in order (`key`, `value`).
pub fn child_env(
    address: &str,
    token: &str,
    vault: &str,
    proxy: Option<ProxyAt<'_>>,
) -> Vec<(String, String)> {
    let mut env = vec![
        (ADDR_ENV.to_owned(), address.to_owned()),
        (SESSION_TOKEN_ENV.to_owned(), token.to_owned()),
        (VAULT_ENV.to_owned(), vault.to_owned()),
    ];
    if let Some(ProxyAt {
        host: proxy_host,
        port,
        ca,
    }) = proxy
    {
        let host = url_host(address);
        let proxy_host = proxy_host.unwrap_or(&host);
        let url = format!("http://{token}:{vault}@{proxy_host}:{port}");
        for var in &PROXY_VARS[..4] {
            env.push(((*var).to_owned(), url.clone()));
        }
        let mut exempt = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if !exempt.contains(&host) {
            exempt.push(host.trim_matches(['[', ']']).to_owned());
        }
        for var in NO_PROXY_VARS {
            env.push((var.to_owned(), exempt.join(",")));
        }
        env.push(("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned()));
        for var in CA_VARS {
            env.push((var.to_owned(), ca.display().to_string()));
        }
    }
    env
}

/// The broker's host when it is off this machine: the proxy port speaks plain HTTP, so the
/// run's token then crosses the network in the clear (in `Proxy-Authorization`).
pub fn remote_broker(address: &str) -> Option<String> {
    let host = url_host(address);
    let bare = host.trim_matches(['[', ']']);
    let local = bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!local).then_some(host)
}

/// The server's secrets among the variables a child never inherits.
pub fn server_secrets() -> impl Iterator<Item = &'static str> {
    NEVER_INHERITED.into_iter()
}

/// Every variable `vault run` removes from the inherited environment before adding its own.
pub fn managed_vars() -> impl Iterator<Item = &'static str> {
    [ADDR_ENV, SESSION_TOKEN_ENV, VAULT_ENV, "NODE_USE_ENV_PROXY"]
        .into_iter()
        .chain(PROXY_VARS)
        .chain(NO_PROXY_VARS)
        .chain(CA_VARS)
        .chain(NEVER_INHERITED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_off_this_machine_is_named() {
        assert_eq!(remote_broker("http://127.0.0.1:14321"), None);
        assert_eq!(remote_broker("http://[::1]:14321"), None);
        assert_eq!(remote_broker("http://localhost:14321"), None);
        assert_eq!(
            remote_broker("https://vault.example.com"),
            Some("vault.example.com".to_owned())
        );
        assert_eq!(
            remote_broker("http://10.0.0.5:14321"),
            Some("10.0.0.5".to_owned())
        );
    }

    #[test]
    fn child_environment_is_complete_and_unique() {
        let ca = Path::new("/home/u/.agent-vault/mitm-ca.pem");
        let env = child_env(
            "http://127.0.0.1:14321",
            "av_sess_t",
            "default",
            Some(ProxyAt {
                host: None,
                port: 14322,
                ca,
            }),
        );
        let get = |k: &str| {
            env.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            assert_eq!(
                get(var),
                vec!["http://av_sess_t:default@127.0.0.1:14322"],
                "{var}"
            );
        }
        assert_eq!(get("NO_PROXY"), vec!["localhost,127.0.0.1,::1"]);
        for var in CA_VARS {
            assert_eq!(get(var), vec![ca.display().to_string()]);
        }
        assert_eq!(get("NODE_USE_ENV_PROXY"), vec!["1"]);
        let names: Vec<&String> = env.iter().map(|(n, _)| n).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        let bare = child_env("https://vault.example.com", "t", "v", None);
        assert_eq!(bare.len(), 3, "no proxy variables without the MITM proxy");
        let remote = child_env(
            "https://vault.example.com:8443/",
            "t",
            "v",
            Some(ProxyAt {
                host: None,
                port: 14322,
                ca,
            }),
        );
        assert!(
            remote
                .iter()
                .any(|(k, v)| k == "NO_PROXY" && v.ends_with(",vault.example.com"))
        );
        assert!(
            remote
                .iter()
                .any(|(k, v)| k == "HTTPS_PROXY" && v == "http://t:v@vault.example.com:14322")
        );
        // Through a local hop to the broker's TLS port: the proxy is here, the API is not.
        let hopped = child_env(
            "https://vault.example.com:8443/",
            "t",
            "v",
            Some(ProxyAt {
                host: Some("127.0.0.1"),
                port: 40000,
                ca,
            }),
        );
        assert!(
            hopped
                .iter()
                .any(|(k, v)| k == "NO_PROXY" && v.ends_with(",vault.example.com"))
        );
        assert!(
            hopped
                .iter()
                .any(|(k, v)| k == "HTTPS_PROXY" && v == "http://t:v@127.0.0.1:40000")
        );
    }
}
