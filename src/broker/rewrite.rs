//! Rewriting a request on its way upstream and a response on its way back: hop-by-hop and
//! broker-scoped headers out, injected headers in
//! (replacing the client's), placeholders replaced by credential values on the chosen
//! surfaces, each escaped for where it lands.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{BrokerError, Plan, ResolvedSubstitution};
use crate::services::Surface;

/// The broker's own request header (which vault a token acts in), never forwarded.
static X_VAULT: HeaderName = HeaderName::from_static("x-vault");

/// Headers that belong to one connection hop, never forwarded (RFC 9110 §7.6.1), plus the
/// broker's own. Names, not strings: removing by a string would parse it on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Names a `Connection` header lists besides the usual `keep-alive` / `close`: collected
    // (an allocation) only when there are any.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| {
            !["keep-alive", "close"]
                .iter()
                .any(|usual| name.eq_ignore_ascii_case(usual))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .filter(|name| !HOP_BY_HOP.contains(name))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    // A scan of the few names present instead of a hashed removal of each of the nine: most
    // messages carry one hop-by-hop header (`Connection`) or none.
    while let Some(name) = headers
        .keys()
        .find(|name| HOP_BY_HOP.contains(name))
        .cloned()
    {
        headers.remove(name);
    }
}

/// Cleans the client's headers: hop-by-hop, `Proxy-Authorization` and `X-Vault` go.
/// `TE: trailers` stays (the one `TE` value HTTP/2 allows): gRPC servers require it.
pub fn strip_request_headers(headers: &mut HeaderMap) {
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    strip_hop_by_hop(headers);
    headers.remove(&X_VAULT);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Cleans the upstream's headers: hop-by-hop go, and `Set-Cookie` goes when the request
/// carried a vault credential — a cookie set in answer to it is a session derived from that
/// credential, which the agent must not hold any more than the credential itself.
pub fn strip_response_headers(headers: &mut HeaderMap, plan: &Plan) {
    keep_transfer_codings(headers);
    strip_hop_by_hop(headers);
    if plan.uses_credentials {
        headers.remove(header::SET_COOKIE);
    }
}

/// Transfer codings besides `chunked` (`Transfer-Encoding: gzip, chunked`) become content
/// codings: hyper takes off only the chunking, so the body is still in the others, and once
/// the hop-by-hop header goes, `Content-Encoding` must say so. Otherwise a compressed body
/// would pass for plain text, unreadable to the agent and unscanned by the scrubber.
fn keep_transfer_codings(headers: &mut HeaderMap) {
    let codings: Vec<HeaderValue> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("unreadable").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("chunked"))
        .filter_map(|c| HeaderValue::from_str(c).ok())
        .collect();
    for coding in codings {
        headers.append(header::CONTENT_ENCODING, coding);
    }
}

/// Headers some servers and gateways route on, or build links from, instead of the request
/// line and `Host`: with a vault credential attached they would steer a path-scoped
/// credential to another route (`X-Original-URL: /admin`) or poison the links an upstream
/// builds (a password-reset mail pointing elsewhere).
const ROUTING_OVERRIDES: [HeaderName; 8] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-envoy-original-path"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-path"),
    HeaderName::from_static("x-forwarded-host"),
    header::FORWARDED,
];

/// Sets the injected headers so that exactly one credential reaches the upstream: for a
/// service that injects, the client's `Authorization` and every header the service sets are
/// removed first (an SDK given a placeholder key still sends it, and an upstream could read
/// either); a passthrough service keeps the client's own headers. A request that carries a
/// vault credential loses the client's routing overrides ([`ROUTING_OVERRIDES`]).
pub fn apply_headers(headers: &mut HeaderMap, plan: &Plan) -> Result<(), BrokerError> {
    if plan.uses_credentials {
        for name in &ROUTING_OVERRIDES {
            headers.remove(name);
        }
    }
    if !plan.set_headers.is_empty() {
        headers.remove(header::AUTHORIZATION);
    }
    for (name, value) in &plan.set_headers {
        headers.insert(name.clone(), value.clone());
    }
    for sub in plan
        .substitutions
        .iter()
        .filter(|s| s.surfaces.contains(&Surface::Header))
    {
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names {
            let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
            if !values
                .iter()
                .any(|v| contains(v.as_bytes(), sub.placeholder.as_bytes()))
            {
                continue;
            }
            headers.remove(&name);
            for value in values {
                let replaced = replace_all(
                    value.as_bytes(),
                    sub.placeholder.as_bytes(),
                    sub.value.expose().as_bytes(),
                    field_room,
                )?
                .unwrap_or_else(|| value.as_bytes().to_vec());
                if replaced.iter().any(|b| *b == b'\r' || *b == b'\n') {
                    return Err(BrokerError::credential(
                        "credential_invalid",
                        "refusing to put a credential containing a line break into a header",
                    ));
                }
                let mut value = HeaderValue::from_bytes(&replaced).map_err(|_| {
                    BrokerError::credential(
                        "credential_invalid",
                        "a substituted credential is not a valid header value",
                    )
                })?;
                value.set_sensitive(true);
                headers.append(name.clone(), value);
            }
        }
    }
    Ok(())
}

/// Replaces placeholders in the path (percent-encoded, so a value cannot add segments) and
/// in the query (query-encoded, so it cannot add parameters). `path_and_query` is raw.
pub fn rewrite_path_and_query<'a>(
    path_and_query: &'a str,
    substitutions: &[ResolvedSubstitution],
) -> Result<Cow<'a, str>, BrokerError> {
    let touches = |surface: Surface| {
        substitutions
            .iter()
            .any(|s| s.surfaces.contains(&surface) && path_and_query.contains(&s.placeholder))
    };
    // Most requests carry no placeholder: the path is used as it came, without a copy.
    if !touches(Surface::Path) && !touches(Surface::Query) {
        return Ok(Cow::Borrowed(path_and_query));
    }
    let (mut path, mut query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_and_query.to_owned(), None),
    };
    for sub in substitutions {
        if sub.surfaces.contains(&Surface::Path) && path.contains(&sub.placeholder) {
            path = replace_str(&path, &sub.placeholder, &encode(sub.value.expose(), false))?;
        }
        if sub.surfaces.contains(&Surface::Query)
            && let Some(q) = &mut query
            && q.contains(&sub.placeholder)
        {
            *q = replace_str(q, &sub.placeholder, &encode(sub.value.expose(), true))?;
        }
    }
    Ok(Cow::Owned(match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }))
}

/// Replaces placeholders in a buffered body, escaped for its media type: JSON string
/// escaping for JSON, form encoding for forms, raw otherwise. `room` is asked for each size
/// the body is about to grow to, before the memory is taken, and may refuse: a credential
/// value is up to 64 KiB and a placeholder a few bytes, so a body of placeholders would
/// otherwise grow thousands of times over.
pub fn rewrite_body<E>(
    body: &[u8],
    content_type: Option<&str>,
    substitutions: &[ResolvedSubstitution],
    room: impl FnMut(usize) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    rewrite_text(Surface::Body, body, content_type, substitutions, room)
}

/// Like [`rewrite_body`] for the substitutions declared on `surface` (`body`, or `ws` for
/// WebSocket text messages).
pub fn rewrite_text<E>(
    surface: Surface,
    body: &[u8],
    content_type: Option<&str>,
    substitutions: &[ResolvedSubstitution],
    mut room: impl FnMut(usize) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Cow::Borrowed(body);
    for sub in substitutions
        .iter()
        .filter(|s| s.surfaces.contains(&surface))
    {
        let needle = sub.placeholder.as_bytes();
        if !contains(&out, needle) {
            continue;
        }
        let value = sub.value.expose();
        let escaped = if media == "application/json" || media.ends_with("+json") {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            quoted
                .get(1..quoted.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned()
        } else if media == "application/x-www-form-urlencoded" {
            encode(value, true)
        } else {
            value.to_owned()
        };
        if let Some(replaced) = replace_all(&out, needle, escaped.as_bytes(), &mut room)? {
            out = Cow::Owned(replaced);
        }
    }
    Ok(out.into_owned())
}

/// The most one header value, path or query may hold once placeholders are replaced: room
/// for the largest credential value (64 KiB) percent-encoded, or for several raw. A request
/// head of placeholders would otherwise grow thousands of times over.
pub const MAX_SUBSTITUTED_FIELD: usize = 256 * 1024;

fn field_room(len: usize) -> Result<(), BrokerError> {
    match len <= MAX_SUBSTITUTED_FIELD {
        true => Ok(()),
        false => Err(BrokerError::too_large(format!(
            "substituting credentials would make a header, path or query over {} KiB",
            MAX_SUBSTITUTED_FIELD / 1024
        ))),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

/// `text` with every `needle` replaced by `with` (`None`: there was none), once `room` has
/// agreed to the length that makes, before the memory is taken.
fn replace_all<E>(
    text: &[u8],
    needle: &[u8],
    with: &[u8],
    room: impl FnOnce(usize) -> Result<(), E>,
) -> Result<Option<Vec<u8>>, E> {
    if needle.is_empty() {
        return Ok(None);
    }
    // Counted first, so nothing is allocated for a result `room` refuses.
    let found = memchr::memmem::find_iter(text, needle).count();
    if found == 0 {
        return Ok(None);
    }
    let len = replaced_len(text.len(), found, needle.len(), with.len());
    room(len)?;
    let mut out = Vec::with_capacity(len);
    let mut rest = 0;
    for at in memchr::memmem::find_iter(text, needle) {
        out.extend_from_slice(&text[rest..at]);
        out.extend_from_slice(with);
        rest = at + needle.len();
    }
    out.extend_from_slice(&text[rest..]);
    Ok(Some(out))
}

/// [`replace_all`] for a path or query, within [`MAX_SUBSTITUTED_FIELD`].
fn replace_str(text: &str, needle: &str, with: &str) -> Result<String, BrokerError> {
    let found = text.matches(needle).count();
    field_room(replaced_len(text.len(), found, needle.len(), with.len()))?;
    Ok(text.replace(needle, with))
}

/// The length of `len` bytes in which `found` needles become `with`.
fn replaced_len(len: usize, found: usize, needle: usize, with: usize) -> usize {
    (len - found * needle).saturating_add(found.saturating_mul(with))
}

/// Everything but RFC 3986 unreserved characters is percent-encoded.
pub(crate) const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a value so it stays one path segment or one query value; in a query,
/// space is `+`.
pub(crate) fn encode(value: &str, query: bool) -> String {
    if query {
        // Space becomes `+`; a literal `+` was already encoded as %2B.
        value
            .split(' ')
            .map(|part| utf8_percent_encode(part, NOT_UNRESERVED).to_string())
            .collect::<Vec<_>>()
            .join("+")
    } else {
        utf8_percent_encode(value, NOT_UNRESERVED).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::rewrite_body`] with all the room it asks for.
    fn rewrite_body(body: &[u8], media: Option<&str>, subs: &[ResolvedSubstitution]) -> Vec<u8> {
        super::rewrite_body(body, media, subs, |_| Ok::<(), ()>(())).unwrap()
    }

    fn rewrite_path_and_query<'a>(pq: &'a str, subs: &[ResolvedSubstitution]) -> Cow<'a, str> {
        super::rewrite_path_and_query(pq, subs).unwrap()
    }

    #[test]
    fn transfer_codings_besides_chunked_become_content_codings() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("gzip, chunked"),
        );
        strip_response_headers(&mut headers, &Plan::default());
        let codings: Vec<_> = headers.get_all(header::CONTENT_ENCODING).iter().collect();
        assert_eq!(codings, ["br", "gzip"]);
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));

        let mut headers = HeaderMap::new();
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_response_headers(&mut headers, &Plan::default());
        assert!(headers.is_empty());
    }

    #[test]
    fn growth_is_sized_before_it_is_made_and_may_be_refused() {
        let value = "v".repeat(64 * 1024);
        let subs = [sub("__k__", &value, &Surface::ALL)];
        let placeholders = "__k__".repeat(5);
        let mut asked = Vec::new();
        let refused = super::rewrite_body(placeholders.as_bytes(), None, &subs, |len| {
            asked.push(len);
            Err("no room")
        });
        assert_eq!(refused, Err("no room"));
        assert_eq!(asked, [5 * value.len()]);

        // Four values fit a header, a path or a query; five do not.
        let plan = Plan {
            substitutions: subs.to_vec(),
            ..Plan::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-four", "__k__".repeat(4).parse().unwrap());
        apply_headers(&mut h, &plan).unwrap();
        assert_eq!(h["x-four"].len(), 4 * value.len());
        h.insert("x-five", placeholders.parse().unwrap());
        let err = apply_headers(&mut h, &plan).unwrap_err();
        assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        let query = format!("/a?k={placeholders}");
        let err = super::rewrite_path_and_query(&query, &subs).unwrap_err();
        assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        let path = format!("/{placeholders}");
        assert!(super::rewrite_path_and_query(&path, &subs).is_err());
    }
    use crate::crypto::SecretString;

    fn sub(placeholder: &str, value: &str, surfaces: &[Surface]) -> ResolvedSubstitution {
        ResolvedSubstitution {
            placeholder: placeholder.into(),
            value: SecretString::from(value),
            surfaces: surfaces.to_vec(),
        }
    }

    #[test]
    fn hop_by_hop_and_broker_headers_are_stripped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("connection", "close"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("x-vault", "default"),
            ("te", "trailers"),
            ("anthropic-version", "2023-06-01"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        strip_request_headers(&mut h);
        assert_eq!(h.len(), 2);
        assert!(h.contains_key("anthropic-version"));
        assert_eq!(h["te"], "trailers", "the one TE value HTTP/2 allows stays");
        let mut gzip = HeaderMap::new();
        gzip.append("te", "gzip".parse().unwrap());
        strip_request_headers(&mut gzip);
        assert!(gzip.is_empty());
    }

    #[test]
    fn injected_headers_replace_and_substitutions_escape() {
        let mut h = HeaderMap::new();
        h.append("authorization", "Bearer agent-fake".parse().unwrap());
        h.append("authorization", "Bearer second".parse().unwrap());
        h.append("x-key", "key=__k__".parse().unwrap());
        let plan = Plan {
            set_headers: vec![(header::AUTHORIZATION, "Bearer real".parse().unwrap())],
            substitutions: vec![sub("__k__", "s3cr&t/v", &Surface::ALL)],
            ..Plan::default()
        };
        apply_headers(&mut h, &plan).unwrap();
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        assert_eq!(h["authorization"], "Bearer real");
        assert_eq!(h["x-key"], "key=s3cr&t/v");
        let uri = rewrite_path_and_query("/a/__k__/b?x=__k__&y=1", &plan.substitutions);
        assert_eq!(uri, "/a/s3cr%26t%2Fv/b?x=s3cr%26t%2Fv&y=1");
        let body = rewrite_body(
            br#"{"k":"__k__"}"#,
            Some("application/json; charset=utf-8"),
            &[sub("__k__", "a\"b", &[Surface::Body])],
        );
        assert_eq!(body, br#"{"k":"a\"b"}"#);
        let form = rewrite_body(
            b"k=__k__",
            Some("application/x-www-form-urlencoded"),
            &[sub("__k__", "a b&c", &[Surface::Body])],
        );
        assert_eq!(form, b"k=a+b%26c");
    }

    #[test]
    fn an_injecting_service_sends_exactly_one_credential() {
        let mut h = HeaderMap::new();
        h.append("authorization", "Bearer placeholder".parse().unwrap());
        h.append("x-api-key", "placeholder".parse().unwrap());
        h.append("x-api-key", "second".parse().unwrap());
        h.append("anthropic-version", "2023-06-01".parse().unwrap());
        let plan = Plan {
            set_headers: vec![(
                HeaderName::from_static("x-api-key"),
                "real".parse().unwrap(),
            )],
            uses_credentials: true,
            ..Plan::default()
        };
        h.append("x-original-url", "/admin/delete".parse().unwrap());
        h.append("forwarded", "host=evil.example".parse().unwrap());
        apply_headers(&mut h, &plan).unwrap();
        assert!(!h.contains_key("authorization"));
        assert_eq!(h.get_all("x-api-key").iter().collect::<Vec<_>>(), ["real"]);
        assert!(!h.contains_key("x-original-url") && !h.contains_key("forwarded"));
        assert_eq!(h["anthropic-version"], "2023-06-01");
        // Passthrough: the client's own credential is the one that goes.
        let mut mine = HeaderMap::new();
        mine.append("authorization", "Bearer mine".parse().unwrap());
        mine.append("x-forwarded-host", "mine.example".parse().unwrap());
        apply_headers(&mut mine, &Plan::default()).unwrap();
        assert_eq!(mine["authorization"], "Bearer mine");
        assert_eq!(mine["x-forwarded-host"], "mine.example");
    }

    #[test]
    fn undeclared_surfaces_stay_literal_and_crlf_is_refused() {
        let path_only = [sub("__k__", "v", &[Surface::Path])];
        assert_eq!(
            rewrite_path_and_query("/__k__?q=__k__", &path_only),
            "/v?q=__k__"
        );
        assert!(
            matches!(
                rewrite_path_and_query("/plain?q=1", &path_only),
                Cow::Borrowed("/plain?q=1")
            ),
            "nothing to replace: no copy"
        );
        let mut h = HeaderMap::new();
        h.append("x-a", "__k__".parse().unwrap());
        let plan = Plan {
            substitutions: vec![sub("__k__", "bad\r\nInjected: 1", &[Surface::Header])],
            ..Plan::default()
        };
        let err = apply_headers(&mut h, &plan).unwrap_err();
        assert!(!err.message.contains("Injected"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The character classes that could change a URL's shape, and some that could not.
        const VALUE: &str = "[a-z0-9/?&=#%+;. ~\\\\é\r\n-]{0,12}";
        const PLACE: &str = "[a-z/=&_]{0,6}(__k__)?[a-z/=&_]{0,6}";

        proptest! {
            /// Whatever the credential value, a substitution in the path or query cannot add
            /// a segment, a parameter or a fragment: the agent chose the request's shape.
            #[test]
            fn a_value_never_changes_the_shape_of_the_url(
                value in VALUE,
                path in PLACE,
                query in proptest::option::of(PLACE),
            ) {
                let subs = [sub("__k__", &value, &[Surface::Path, Surface::Query])];
                let original = match &query {
                    Some(q) => format!("/{path}?{q}"),
                    None => format!("/{path}"),
                };
                let rewritten = rewrite_path_and_query(&original, &subs);
                let (new_path, new_query) = match rewritten.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (&*rewritten, None),
                };
                let count = |text: &str, c: char| text.matches(c).count();
                prop_assert_eq!(new_query.is_some(), query.is_some());
                prop_assert_eq!(count(new_path, '/'), count(&path, '/') + 1);
                if let (Some(old), Some(new)) = (&query, new_query) {
                    prop_assert_eq!(count(new, '&'), count(old, '&'));
                    prop_assert_eq!(count(new, '='), count(old, '='));
                }
                prop_assert!(!rewritten.contains(['#', '\r', '\n', ' ']));
            }

            /// In a JSON (also `+json`) or form body the value lands inside the string or field
            /// the agent wrote, whatever quotes, escapes or separators it holds: no key or field
            /// added.
            #[test]
            fn a_value_stays_inside_its_json_string_or_form_field(
                value in "(\\PC|[\"\\\\&=+%\u{0}-\u{1f}])*",
                pre in "[a-z ]{0,4}",
                post in "[a-z ]{0,4}",
            ) {
                let subs = [sub("__k__", &value, &[Surface::Body])];
                let expected = format!("{pre}{value}{post}");
                let json = serde_json::json!({"a": format!("{pre}__k__{post}"), "b": 1}).to_string();
                for media in ["application/json; charset=utf-8", "application/vnd.api+JSON"] {
                    let out = rewrite_body(json.as_bytes(), Some(media), &subs);
                    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
                    prop_assert_eq!(parsed, serde_json::json!({"a": &expected, "b": 1}));
                }
                let form = format!("a={}__k__{}&b=1", pre.replace(' ', "+"), post.replace(' ', "+"));
                let out = rewrite_body(form.as_bytes(), Some("application/x-www-form-urlencoded"), &subs);
                let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&out).unwrap();
                prop_assert_eq!(fields, vec![("a".into(), expected), ("b".into(), "1".into())]);
            }
        }
    }
}
