//! Picking the service for a proxied request.
//!
//! The most specific rule wins: an exact host over a wildcard (and a longer wildcard suffix
//! over a shorter one), then a service with a port over a port-less one, then the longest
//! path prefix. Disabled services match like any other; the broker refuses their traffic.
//!
//! Security stance: a path prefix scopes a credential, so a request path with dot segments
//! (`/v1/../admin`, also percent-encoded or with backslashes) could escape the prefix once
//! the upstream resolves it. Such a request matches only services without a path, whose
//! credential was granted for the whole host anyway.

use super::Service;

/// The service for a request to `host:port` with `path` (which may carry a query), or `None`.
/// Ties (only possible in a list that failed validation) go to the earlier service.
pub fn select<'a>(
    services: &'a [Service],
    host: &str,
    port: u16,
    path: &str,
) -> Option<&'a Service> {
    select_index(services, host, port, path).and_then(|i| services.get(i))
}

/// Like [`select`], the position of the service in `services`.
pub fn select_index(services: &[Service], host: &str, port: u16, path: &str) -> Option<usize> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let path = path
        .split(['?', '#'])
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let dotted = has_dot_segment(path);
    let mut best: Option<(Rank, usize)> = None;
    for (index, service) in services.iter().enumerate() {
        let Some(rank) = rank(service, host, port, path, dotted) else {
            continue;
        };
        if best.as_ref().is_none_or(|(top, _)| rank > *top) {
            best = Some((rank, index));
        }
    }
    best.map(|(_, index)| index)
}

/// Specificity, compared field by field: exact host, wildcard suffix length, port given,
/// path prefix length.
type Rank = (bool, usize, bool, usize);

fn rank(service: &Service, host: &str, port: u16, path: &str, dotted: bool) -> Option<Rank> {
    // Byte-wise comparisons: no allocation per candidate, and no slicing inside a character.
    let (exact, suffix) = match service.host.strip_prefix('*') {
        // `suffix` keeps its leading dot, so `*.example.com` needs a label before it.
        Some(suffix) if ends_with_ignore_case(host, suffix) => (false, suffix.len()),
        Some(_) => return None,
        None if service.host.eq_ignore_ascii_case(host) => (true, 0),
        None => return None,
    };
    if service.port.is_some_and(|p| p != port) {
        return None;
    }
    let prefix = match service.path.as_deref() {
        None | Some("/") => 0,
        Some(_) if dotted => return None,
        Some(prefix) if path_matches(prefix, path) => prefix.len(),
        Some(_) => return None,
    };
    Some((exact, suffix, service.port.is_some(), prefix))
}

/// Whether `host` is at least one character longer than `suffix` and ends with it.
fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
    host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// `/v1` matches `/v1` and `/v1/x`, not `/v10`.
fn path_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` has a `.` or `..` segment once `%2e`, `%2f` and `\` are read the way some
/// servers read them.
fn has_dot_segment(path: &str) -> bool {
    let decoded = path
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/");
    decoded.split('/').any(|s| s == "." || s == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Auth;

    fn service(host: &str, port: Option<u16>, path: Option<&str>, name: &str) -> Service {
        Service {
            host: host.into(),
            port,
            path: path.map(Into::into),
            name: Some(name.into()),
            description: None,
            enabled: true,
            auth: Auth::Passthrough,
            substitutions: vec![],
            scrub_responses: true,
        }
    }

    #[test]
    fn picks_the_most_specific_service() {
        let mut disabled = service("disabled.example.com", None, None, "disabled");
        disabled.enabled = false;
        let services = [
            service("*.example.com", None, None, "wild"),
            service("*.b.example.com", None, None, "wild-b"),
            service("api.example.com", None, None, "exact"),
            service("api.example.com", Some(8443), None, "exact-port"),
            service("api.example.com", None, Some("/v1"), "v1"),
            service("api.example.com", None, Some("/v1/admin"), "v1-admin"),
            service("api.example.com", Some(8443), Some("/v1"), "port-v1"),
            service("10.0.0.1", None, None, "ip"),
            service("root.example.net", None, Some("/"), "root"),
            disabled,
        ];
        let table: &[(&str, u16, &str, Option<&str>)] = &[
            ("api.example.com", 443, "/", Some("exact")),
            ("API.Example.COM", 443, "/", Some("exact")),
            ("api.example.com.", 443, "/", Some("exact")),
            ("api.example.com", 443, "", Some("exact")),
            ("api.example.com", 443, "/v1", Some("v1")),
            ("api.example.com", 443, "/v1/", Some("v1")),
            ("api.example.com", 443, "/v1/users", Some("v1")),
            ("api.example.com", 443, "/v1?q=1", Some("v1")),
            ("api.example.com", 443, "/v1#frag", Some("v1")),
            ("api.example.com", 443, "/v10", Some("exact")),
            ("api.example.com", 443, "/V1", Some("exact")),
            ("api.example.com", 443, "/v1/admin/x", Some("v1-admin")),
            ("api.example.com", 443, "/v1/administrator", Some("v1")),
            // A port beats a longer path.
            ("api.example.com", 8443, "/v1/admin/x", Some("port-v1")),
            ("api.example.com", 8443, "/v2", Some("exact-port")),
            ("a.example.com", 443, "/", Some("wild")),
            ("a.b.example.com", 443, "/", Some("wild-b")),
            ("x.a.b.example.com", 443, "/", Some("wild-b")),
            ("b.example.com", 443, "/", Some("wild")),
            ("example.com", 443, "/", None),
            ("badexample.com", 443, "/", None),
            ("api.example.org", 443, "/", None),
            ("10.0.0.1", 80, "/", Some("ip")),
            ("10.0.0.2", 80, "/", None),
            ("root.example.net", 80, "/anything", Some("root")),
            ("disabled.example.com", 443, "/", Some("disabled")),
            // Dot segments cannot reach past a path scope.
            ("api.example.com", 443, "/v1/../admin", Some("exact")),
            ("api.example.com", 443, "/v1/%2E%2E/admin", Some("exact")),
            ("api.example.com", 443, "/v1/..%2fadmin", Some("exact")),
            ("api.example.com", 443, "/v1\\..\\admin", Some("exact")),
            ("api.example.com", 443, "/v1/./users", Some("exact")),
            ("root.example.net", 80, "/a/../b", Some("root")),
            ("api.example.com", 443, "/v1/a..b", Some("v1")),
        ];
        for (host, port, path, expected) in table {
            let got = select(&services, host, *port, path).and_then(|s| s.name.as_deref());
            assert_eq!(got, *expected, "{host}:{port}{path}");
        }
    }

    #[test]
    fn port_bound_service_needs_its_port() {
        let services = [service("api.example.com", Some(8443), None, "p")];
        assert!(select(&services, "api.example.com", 443, "/").is_none());
        assert!(select(&services, "api.example.com", 8443, "/").is_some());
        assert!(select(&[], "api.example.com", 443, "/").is_none());
    }

    #[test]
    fn ties_go_to_the_earlier_service() {
        let services = [
            service("api.example.com", None, None, "first"),
            service("API.example.com", None, None, "second"),
        ];
        let got = select(&services, "api.example.com", 443, "/").and_then(|s| s.name.as_deref());
        assert_eq!(got, Some("first"));
    }
}
