//! Picking the service for a proxied request.
//!
//! The most specific rule wins: an exact host over a wildcard (and a longer wildcard suffix
//! over a shorter one), then a service with a port over a port-less one, then the longest
//! path prefix. Disabled services match like any other; the broker refuses their traffic.
//!
//! Security stance: a path prefix scopes a credential, so a request path with dot segments
//! (`/v1/../admin`, also percent-encoded once or twice, with `;` parameters, overlong or
//! full-width dots, or backslashes) could escape the prefix once a server on the way resolves
//! it. Such a request matches only services without a path, whose credential was granted for
//! the whole host anyway.

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

/// How many rounds of percent-decoding are undone (`%25252e` is three); a path still
/// encoded after that is treated as escaping.
const DECODE_ROUNDS: usize = 3;

/// Whether `path` could reach another path once some server on the way reads it: a `.` or
/// `..` segment after undoing percent-encoding (again and again: `%252e`), dropping `;`
/// parameters (`..;`, as Tomcat and Jetty do) and NUL-truncation, and reading full-width
/// and other look-alike dots and slashes as `.` and `/`, and white space, control and
/// zero-width characters at either end of a segment as nothing (Windows servers trim trailing
/// spaces, Java's `trim` and Python's `strip` more); or any backslash (raw, encoded, look-alike); or IIS's
/// `%uXXXX` escapes; or bytes that are not UTF-8 once decoded (overlong forms such as
/// `%c0%ae`).
fn has_dot_segment(path: &str) -> bool {
    let plain = |b: &u8| !matches!(b, b'%' | b'\\' | b'.' | b';' | 0x80..);
    if path.as_bytes().iter().all(plain) {
        return false;
    }
    let iis_escape = path.as_bytes().windows(6).any(|w| {
        w[0] == b'%' && w[1].eq_ignore_ascii_case(&b'u') && w[2..].iter().all(u8::is_ascii_hexdigit)
    });
    if iis_escape {
        return true;
    }
    let mut bytes: Vec<u8> = path.as_bytes().to_vec();
    let mut rounds = 0;
    loop {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == bytes {
            break;
        }
        if rounds == DECODE_ROUNDS {
            return true;
        }
        bytes = decoded;
        rounds += 1;
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return true;
    };
    let mut normalized = String::with_capacity(text.len());
    for c in text.chars() {
        // TWO DOT LEADER and its vertical form: NFKC reads each as `..`.
        if matches!(c, '\u{2025}' | '\u{fe30}') {
            normalized.push_str("..");
            continue;
        }
        normalized.push(match c {
            // FULLWIDTH FULL STOP, SMALL FULL STOP, ONE DOT LEADER (NFKC reads them as `.`),
            // IDEOGRAPHIC FULL STOP and its halfwidth form (IDNA reads them as `.`).
            '\u{ff0e}' | '\u{fe52}' | '\u{2024}' | '\u{3002}' | '\u{ff61}' => '.',
            // FULLWIDTH SOLIDUS, DIVISION SLASH, FRACTION SLASH.
            '\u{ff0f}' | '\u{2215}' | '\u{2044}' => '/',
            // Backslash and its FULLWIDTH and SMALL forms, SET MINUS.
            '\\' | '\u{ff3c}' | '\u{fe68}' | '\u{2216}' => return true,
            c => c,
        });
    }
    normalized.split('/').any(|segment| {
        let segment = segment.split([';', '\0']).next().unwrap_or(segment);
        let segment = segment
            .trim_matches(|c: char| c.is_whitespace() || c.is_control() || is_default_ignorable(c));
        segment == "." || segment == ".."
    })
}

/// Unicode's Default_Ignorable_Code_Point: characters that display as nothing (soft hyphen,
/// joiners, direction marks, variation selectors, tags…), which a server may drop.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
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
            // `;` parameters in dot segments, as Tomcat and Jetty read them.
            ("api.example.com", 443, "/v1/..;/admin", Some("exact")),
            (
                "api.example.com",
                443,
                "/v1/..;jsessionid=x/admin",
                Some("exact"),
            ),
            ("api.example.com", 443, "/v1/.;/users", Some("exact")),
            ("api.example.com", 443, "/v1/%2e%2e%3b/admin", Some("exact")),
            // Doubly and triply encoded.
            (
                "api.example.com",
                443,
                "/v1/%252e%252e/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%25252e%25252e/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1%252f..%252fadmin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%2525252e%2525252e/admin",
                Some("exact"),
            ),
            // Overlong UTF-8 and full-width dots and slashes.
            (
                "api.example.com",
                443,
                "/v1/%c0%ae%c0%ae/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%e0%80%ae%e0%80%ae/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%ef%bc%8e%ef%bc%8e/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/\u{ff0e}\u{ff0e}/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1%ef%bc%8f..%ef%bc%8fadmin",
                Some("exact"),
            ),
            ("api.example.com", 443, "/v1/..%00/admin", Some("exact")),
            // TWO DOT LEADER (and its vertical form), IIS's %u escapes, trailing spaces.
            ("api.example.com", 443, "/v1/%E2%80%A5/admin", Some("exact")),
            ("api.example.com", 443, "/v1/\u{fe30}/admin", Some("exact")),
            (
                "api.example.com",
                443,
                "/v1/%u002e%u002e/admin",
                Some("exact"),
            ),
            ("api.example.com", 443, "/v1/..%20/admin", Some("exact")),
            ("api.example.com", 443, "/v1/.. %09/admin", Some("exact")),
            // White space, controls and zero-width marks at either end, as `trim`/`strip` read.
            ("api.example.com", 443, "/v1/..%0d/admin", Some("exact")),
            ("api.example.com", 443, "/v1/%0a../admin", Some("exact")),
            ("api.example.com", 443, "/v1/..%0b/admin", Some("exact")),
            ("api.example.com", 443, "/v1/..%1f/admin", Some("exact")),
            ("api.example.com", 443, "/v1/%20../admin", Some("exact")),
            ("api.example.com", 443, "/v1/..%c2%a0/admin", Some("exact")),
            (
                "api.example.com",
                443,
                "/v1/..%e3%80%80/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%e2%80%8b../admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/..%ef%bb%bf/admin",
                Some("exact"),
            ),
            ("api.example.com", 443, "/v1/%c2%ad../admin", Some("exact")),
            (
                "api.example.com",
                443,
                "/v1/..%e2%80%8e/admin",
                Some("exact"),
            ),
            ("api.example.com", 443, "/v1/..%cd%8f/admin", Some("exact")),
            (
                "api.example.com",
                443,
                "/v1/..%f3%a0%80%81/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/..%ef%b8%8f/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%e3%80%82%e3%80%82/admin",
                Some("exact"),
            ),
            (
                "api.example.com",
                443,
                "/v1/%ef%bd%a1%ef%bd%a1/admin",
                Some("exact"),
            ),
            ("api.example.com", 443, "/v1/a%20b/c", Some("v1")),
            // Any backslash, even without dots.
            ("api.example.com", 443, "/v1\\admin", Some("exact")),
            ("api.example.com", 443, "/v1/%5cadmin", Some("exact")),
            ("api.example.com", 443, "/v1/%255cadmin", Some("exact")),
            ("api.example.com", 443, "/v1/%ef%bc%bcadmin", Some("exact")),
            // Ordinary paths with dots, semicolons and encodings keep their service.
            ("api.example.com", 443, "/v1/file.txt", Some("v1")),
            ("api.example.com", 443, "/v1/a;b=c", Some("v1")),
            ("api.example.com", 443, "/v1/caf%c3%a9", Some("v1")),
            ("api.example.com", 443, "/v1/...", Some("v1")),
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Where a server on the way could take `path`: percent-decoded as often as it
        /// changes, `\\` read as `/`, `;` parameters and what follows a NUL dropped, and the
        /// dot segments resolved.
        fn resolved(path: &str) -> String {
            let mut bytes = path.as_bytes().to_vec();
            loop {
                let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
                if decoded == bytes {
                    break;
                }
                bytes = decoded;
            }
            let text = String::from_utf8_lossy(&bytes).replace('\\', "/");
            let mut stack: Vec<&str> = Vec::new();
            for segment in text.split('/').skip(1) {
                match segment.split([';', '\0']).next().unwrap_or_default() {
                    "." => {}
                    ".." => {
                        stack.pop();
                    }
                    other => stack.push(other),
                }
            }
            format!("/{}", stack.join("/"))
        }

        proptest! {
            /// A request that the `/v1` service takes stays under `/v1` wherever it is
            /// resolved: a path prefix is a boundary an agent cannot step out of.
            #[test]
            fn a_path_taken_by_a_prefixed_service_stays_under_its_prefix(
                segments in prop::collection::vec(prop::sample::select(vec![
                    "v1", "admin", ".", "..", "%2e", "%2E%2e", "%252e%252e", "..;x", ".%00",
                    "%2f", "%5c", "\\", "", "x;y", "%c0%ae", "\u{ff0e}\u{ff0e}", "%25",
                ]), 1..7),
            ) {
                let path = format!("/v1/{}", segments.join("/"));
                let services = [service("api.example.com", None, Some("/v1"), "v1")];
                if select(&services, "api.example.com", 443, &path).is_some() {
                    let end = resolved(&path);
                    prop_assert!(path_matches("/v1", &end), "{path} resolves to {end}");
                }
            }
        }
    }
}
