//! Upstream targets: where a proxied request goes, parsed once at the ingress and used as is
//! for service matching, the leaf certificate, the network guard's dial, the upstream URI and
//! the request log. Also the one validator for host names.
//!
//! Hosts go through the `url` crate's host parser (WHATWG rules: percent-decoding, IDNA to
//! punycode, the numeric IPv4 forms such as `0x7f.1`) and then through [`Host::parse`]'s
//! name rules, so every later step sees one canonical value: a lower-case DNS name without a
//! trailing dot, or an IP address.
//!
//! Stance: an authority with user info, a path, a zone id, or a name outside the DNS
//! character set is refused rather than repaired; whatever is accepted is canonical, so two
//! spellings of one host cannot be told apart later (a mixed-case or trailing-dot name cannot
//! skip a service's rules).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a valid host name or IP address")]
    Host(String),
    #[error("{0:?} is not a valid host[:port]")]
    Authority(String),
    #[error("{0:?} has an invalid port; use a number from 1 to 65535")]
    Port(String),
    #[error("{0:?} needs an explicit port (host:port)")]
    MissingPort(String),
    #[error("{0:?} is not an http:// or https:// URL")]
    Url(String),
}

/// A validated upstream host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// Lower-case, ASCII (punycode), no trailing dot.
    Name(String),
    Ip(IpAddr),
}

/// The label rules shared by every host name the crate accepts (upstreams, certificates,
/// service patterns): 1–63 characters of letters, digits, `-` and `_`, not starting or
/// ending with `-`.
pub fn valid_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `name` (without a trailing dot) is a DNS name by [`valid_label`], at most 253
/// characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label)
}

impl Host {
    /// Parses a host as it appears in an authority: a DNS name in any case with at most one
    /// trailing dot, an IPv4 address, or an IPv6 address with or without brackets.
    pub fn parse(raw: &str) -> Result<Self, TargetError> {
        let invalid = || TargetError::Host(raw.to_owned());
        if raw.is_empty() || raw.bytes().any(|b| b.is_ascii_whitespace() || b == b'%') {
            // `%` would be percent-decoded by the URL parser, or name an IPv6 zone: neither
            // belongs in an upstream host.
            return Err(invalid());
        }
        if !raw.starts_with('[')
            && raw.contains(':')
            && let Ok(v6) = raw.parse::<Ipv6Addr>()
        {
            return Ok(Self::Ip(IpAddr::V6(v6)));
        }
        match url::Host::parse(raw).map_err(|_| invalid())? {
            url::Host::Ipv4(v4) => Ok(Self::Ip(IpAddr::V4(v4))),
            url::Host::Ipv6(v6) => Ok(Self::Ip(IpAddr::V6(v6))),
            url::Host::Domain(name) => {
                let name = name.strip_suffix('.').unwrap_or(&name);
                if !valid_name(name) {
                    return Err(invalid());
                }
                Ok(Self::Name(name.to_ascii_lowercase()))
            }
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(*ip),
            Self::Name(_) => None,
        }
    }

    /// The host without brackets: what services are matched against and certificates name.
    pub fn bare(&self) -> String {
        match self {
            Self::Name(name) => name.clone(),
            Self::Ip(ip) => ip.to_string(),
        }
    }
}

/// As in a URI authority: IPv6 in brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Self::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Where a request goes: scheme, host and port, fixed by the CONNECT target or the URL
/// authority and never by a later `Host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    scheme: Scheme,
    host: Host,
    bare_host: String,
    port: u16,
    /// `host[:port]`, the port left out when it is the scheme's default: the `Host` header
    /// and HTTP/2 `:authority`.
    authority: String,
    /// `authority` as a `Host` header value, made once: the HTTP/1.1 pool sends it with every
    /// request. (Always present: a parsed host is visible ASCII.)
    host_header: Option<http::HeaderValue>,
    /// `host:port`, always with the port: logs and the request log (shared with each record).
    host_port: Arc<str>,
}

impl Target {
    pub fn new(scheme: Scheme, host: Host, port: u16) -> Self {
        let authority = if port == scheme.default_port() {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        Self {
            host_header: http::HeaderValue::from_str(&authority).ok(),
            host_port: format!("{host}:{port}").into(),
            bare_host: host.bare(),
            scheme,
            host,
            port,
            authority,
        }
    }

    /// The target of `CONNECT host:port` (HTTPS; the port is required).
    pub fn connect(authority: &str) -> Result<Self, TargetError> {
        let (host, port) = split_authority(authority)?;
        let port = port.ok_or_else(|| TargetError::MissingPort(authority.to_owned()))?;
        Ok(Self::new(Scheme::Https, host, port))
    }

    /// `host[:port]` with a scheme (the port defaults to the scheme's).
    pub fn from_authority(scheme: Scheme, authority: &str) -> Result<Self, TargetError> {
        let (host, port) = split_authority(authority)?;
        Ok(Self::new(
            scheme,
            host,
            port.unwrap_or(scheme.default_port()),
        ))
    }

    /// An absolute `http://` or `https://` URL (a path, if any, is ignored); the port defaults
    /// to the scheme's. For addresses given by people: `--address`, `AGENT_VAULT_ADDR`.
    pub fn from_url(text: &str) -> Result<Self, TargetError> {
        let invalid = || TargetError::Url(text.to_owned());
        let url = url::Url::parse(text.trim()).map_err(|_| invalid())?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid()),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid());
        }
        let host = match url.host().ok_or_else(invalid)? {
            url::Host::Ipv4(v4) => Host::Ip(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Host::Ip(IpAddr::V6(v6)),
            url::Host::Domain(name) => Host::parse(name)?,
        };
        // Port 0 is refused as in an authority: nothing listens there.
        let port = url
            .port_or_known_default()
            .filter(|p| *p != 0)
            .ok_or_else(invalid)?;
        Ok(Self::new(scheme, host, port))
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host without brackets (service matching, certificates).
    pub fn bare_host(&self) -> &str {
        &self.bare_host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The `Host` header for this target (its authority).
    pub fn host_header(&self) -> Option<&http::HeaderValue> {
        self.host_header.as_ref()
    }

    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    pub fn host_port_shared(&self) -> Arc<str> {
        self.host_port.clone()
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) on this target.
    pub fn uri(&self, path_and_query: &str) -> Result<http::Uri, http::Error> {
        http::Uri::builder()
            .scheme(self.scheme.as_str())
            .authority(self.authority.as_str())
            .path_and_query(path_and_query)
            .build()
    }
}

/// Splits `host[:port]`. IPv6 needs brackets here, since its colons would read as a port.
fn split_authority(raw: &str) -> Result<(Host, Option<u16>), TargetError> {
    let invalid = || TargetError::Authority(raw.to_owned());
    if raw.is_empty() || raw.contains(['@', '/', '?', '#', '\\']) {
        return Err(invalid());
    }
    let (host, port) = if raw.starts_with('[') {
        let close = raw.find(']').ok_or_else(invalid)?;
        let (host, rest) = raw.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match raw.split_once(':') {
            Some((_, port)) if port.contains(':') => return Err(invalid()),
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        }
    };
    let port = match port {
        None => None,
        Some(digits) => Some(parse_port(digits).ok_or_else(|| TargetError::Port(raw.to_owned()))?),
    };
    Ok((Host::parse(host)?, port))
}

/// 1–65535, digits only (`u16::from_str` would take a leading `+`).
fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn hosts_are_canonical() {
        let table: &[(&str, Host)] = &[
            ("Example.COM.", name("example.com")),
            ("LOCALHOST", name("localhost")),
            ("under_score.example", name("under_score.example")),
            ("[::1]", Host::Ip("::1".parse().unwrap())),
            ("0:0:0:0:0:0:0:1", Host::Ip("::1".parse().unwrap())),
            ("[FE80::1]", Host::Ip("fe80::1".parse().unwrap())),
            ("127.0.0.1", Host::Ip("127.0.0.1".parse().unwrap())),
            // WHATWG numeric IPv4 forms: judged (and dialled) as the address they mean.
            ("0x7f.1", Host::Ip("127.0.0.1".parse().unwrap())),
            ("2130706433", Host::Ip("127.0.0.1".parse().unwrap())),
            ("bücher.example", name("xn--bcher-kva.example")),
        ];
        for (raw, expected) in table {
            assert_eq!(&Host::parse(raw).unwrap(), expected, "{raw}");
        }
        assert_eq!(Host::parse("[::1]").unwrap().to_string(), "[::1]");
        assert_eq!(Host::parse("[::1]").unwrap().bare(), "::1");
        for bad in [
            "",
            ".",
            "a..b",
            "[::1",
            "[127.0.0.1]",
            "a b",
            "user@host",
            "a/b",
            "fe80::1%eth0",
            "exa%6dple.com",
            "-a.example",
            "a$b.example",
            &"a".repeat(64),
            &format!("{}.com", "a.".repeat(130)),
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn connect_targets_need_a_port() {
        let t = Target::connect("API.example.com:8443").unwrap();
        assert_eq!(
            (t.bare_host(), t.port(), t.authority(), t.host_port()),
            (
                "api.example.com",
                8443,
                "api.example.com:8443",
                "api.example.com:8443"
            )
        );
        let t = Target::connect("api.example.com:443").unwrap();
        assert_eq!(t.authority(), "api.example.com");
        assert_eq!(
            t.uri("/v1?a=1").unwrap().to_string(),
            "https://api.example.com/v1?a=1"
        );
        assert_eq!(t.host_header().unwrap(), "api.example.com");
        let t = Target::connect("[::1]:8443").unwrap();
        assert_eq!((t.bare_host(), t.authority()), ("::1", "[::1]:8443"));
        assert_eq!(t.host_header().unwrap(), "[::1]:8443");
        assert!(matches!(
            Target::connect("api.example.com"),
            Err(TargetError::MissingPort(_))
        ));
        for bad in [
            "api.example.com:0",
            "api.example.com:+80",
            "api.example.com:65536",
            "api.example.com:",
            "user@api.example.com:443",
            "::1:443",
            "[::1]443",
            "api.example.com:443/x",
        ] {
            assert!(Target::connect(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn authorities_and_urls_default_the_port() {
        let t = Target::from_authority(Scheme::Https, "api.stripe.com").unwrap();
        assert_eq!((t.port(), t.authority()), (443, "api.stripe.com"));
        let t = Target::from_authority(Scheme::Http, "127.0.0.1:8080").unwrap();
        assert_eq!(t.uri("/").unwrap().to_string(), "http://127.0.0.1:8080/");
        let t = Target::from_url("http://127.0.0.1:14321/").unwrap();
        assert_eq!((t.bare_host(), t.port()), ("127.0.0.1", 14321));
        let t = Target::from_url("https://vault.example.com").unwrap();
        assert_eq!(
            (t.bare_host(), t.port(), t.is_https()),
            ("vault.example.com", 443, true)
        );
        let t = Target::from_url("http://[::1]/api").unwrap();
        assert_eq!((t.host().to_string(), t.port()), ("[::1]".to_owned(), 80));
        for bad in [
            "ftp://x.example",
            "127.0.0.1:14321",
            "http://u:p@x.example",
            "http://",
            // Found by `just fuzz`: read as https://https:0, which no authority accepts.
            "https:https:0",
            "http://x.example:0/",
        ] {
            assert!(Target::from_url(bad).is_err(), "{bad:?} should be refused");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever an agent writes as a CONNECT authority or a `Host` header: an error
            /// or a target whose canonical forms parse back to the same target, so a host
            /// is matched against services in one spelling only.
            #[test]
            fn authorities_parse_to_a_fixed_point(
                raw in "[a-zA-Z0-9.:%_ \\[\\]ß-]{0,24}|(0x)?[0-9a-f.]{1,16}(:[0-9]{1,6})?",
                https in any::<bool>(),
            ) {
                let scheme = if https { Scheme::Https } else { Scheme::Http };
                let Ok(target) = Target::from_authority(scheme, &raw) else {
                    return Ok(());
                };
                prop_assert_eq!(&Target::from_authority(scheme, target.authority()), &Ok(target.clone()));
                let tunnel = Target::connect(target.host_port()).unwrap();
                prop_assert_eq!((tunnel.host(), tunnel.port()), (target.host(), target.port()));
                prop_assert_eq!(Host::parse(target.bare_host()), Ok(target.host().clone()));
            }
        }
    }
}
