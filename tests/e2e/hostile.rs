//! Malformed traffic on both ports of the real server: each gets a 4xx that names the problem
//! (or hyper's bare 400 for bytes that are not HTTP at all), and the server keeps serving with
//! no panic in its log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::broker::{Rig, base64_encode};

/// Sends `request` on a new connection; returns the response head and body (read until the
/// body's length, the peer's close, or ten seconds of silence).
fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything (a header too large).
    let _ = stream.write_all(request);
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return text;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return text,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn malformed_traffic_is_refused_clearly_and_the_server_keeps_serving() {
    let rig = Rig::start(true);
    let auth = base64_encode(&format!("{}:default", rig.token.trim()));
    let plain = format!("{}:{}", rig.upstream.ip, rig.upstream.http_port);
    let proxy_auth = format!("Proxy-Authorization: Basic {auth}\r\n");

    // (what, request, status, text the answer must contain)
    let mitm_cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("binary junk", b"\x00\x01\x02\xff\xfe".repeat(50), 400, ""),
        ("a TLS hello on the proxy port", [&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01][..], &[0; 200]].concat(), 400, ""),
        ("CONNECT without a port", format!("CONNECT example.test HTTP/1.1\r\n{proxy_auth}\r\n").into_bytes(), 400, "needs an explicit port"),
        ("CONNECT to port 0", format!("CONNECT 127.0.0.1:0 HTTP/1.1\r\n{proxy_auth}\r\n").into_bytes(), 400, "use a number from 1 to 65535"),
        ("CONNECT to port 99999", format!("CONNECT 127.0.0.1:99999 HTTP/1.1\r\n{proxy_auth}\r\n").into_bytes(), 400, "use a number from 1 to 65535"),
        ("CONNECT with user info", format!("CONNECT user@127.0.0.1:443 HTTP/1.1\r\n{proxy_auth}\r\n").into_bytes(), 400, "not a valid host[:port]"),
        ("CONNECT to a 5,000-letter host", format!("CONNECT {}.test:443 HTTP/1.1\r\n{proxy_auth}\r\n", "a".repeat(5000)).into_bytes(), 400, "invalid_request"),
        ("proxy credentials not base64", b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n".to_vec(), 407, "not valid base64"),
        ("an empty proxy token", b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nProxy-Authorization: Basic \r\n\r\n".to_vec(), 407, "the proxy token is empty"),
        ("a 60 KB proxy token", format!("CONNECT 127.0.0.1:443 HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\n", "A".repeat(60_000)).into_bytes(), 407, "invalid, revoked or expired"),
        ("a plain request without credentials", format!("GET http://{plain}/echo HTTP/1.1\r\nHost: {plain}\r\n\r\n").into_bytes(), 407, "proxy credentials are missing"),
        ("an absolute URL with a bad host", format!("GET http://[zz]/ HTTP/1.1\r\nHost: x\r\n{proxy_auth}\r\n").into_bytes(), 400, "not a valid host name"),
        ("an ftp URL", format!("GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n{proxy_auth}\r\n").into_bytes(), 400, "send absolute http:// URLs"),
        ("two Content-Lengths", format!("POST http://{plain}/echo HTTP/1.1\r\nHost: {plain}\r\nContent-Length: 3\r\nContent-Length: 5\r\n{proxy_auth}\r\nabc").into_bytes(), 400, ""),
        ("broken chunked encoding", format!("POST http://{plain}/echo HTTP/1.1\r\nHost: {plain}\r\nTransfer-Encoding: chunked\r\n{proxy_auth}\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes(), 400, "could not be read from the agent"),
        ("2,000 headers", format!("GET http://{plain}/echo HTTP/1.1\r\nHost: {plain}\r\n{}{proxy_auth}\r\n", "X-H: v\r\n".repeat(2000)).into_bytes(), 431, ""),
        ("a header line without a colon", format!("GET http://{plain}/echo HTTP/1.1\r\nHost: {plain}\r\nBroken\r\n{proxy_auth}\r\n").into_bytes(), 400, ""),
        ("HTTP/0.9", b"GET /\r\n\r\n".to_vec(), 400, ""),
    ];
    for (what, request, status, text) in &mitm_cases {
        let answer = exchange(rig.mitm, request);
        assert_eq!(status_of(&answer), *status, "{what}: {answer}");
        assert!(answer.contains(text), "{what}: lacks {text:?}: {answer}");
    }

    let session = rig.home.session_token();
    let api_port: u16 = rig.server.url.rsplit(':').next().unwrap().parse().unwrap();
    let api = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", session.trim()).into_bytes()
    };
    let api_cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a log limit that is not a number",
            api("/v1/vaults/default/logs?limit=hunter2"),
            400,
            "`limit` has the wrong type or value",
        ),
        (
            "a log limit too large",
            api("/v1/vaults/default/logs?limit=99999999999999999999"),
            400,
            "`limit` has the wrong type or value",
        ),
        (
            "a log limit of 0",
            api("/v1/vaults/default/logs?limit=0"),
            400,
            "give 1 to 1000 rows",
        ),
        (
            "a log limit over the page size",
            api("/v1/vaults/default/logs?limit=1001"),
            400,
            "`limit` is 1001",
        ),
        (
            "the explicit proxy without a host",
            api("/proxy/"),
            400,
            "use /proxy/<host>[:<port>]/<path>",
        ),
        (
            "the explicit proxy to port 99999",
            api("/proxy/127.0.0.1:99999/x"),
            400,
            "use a number from 1 to 65535",
        ),
    ];
    for (what, request, status, text) in &api_cases {
        let answer = exchange(api_port, request);
        assert_eq!(status_of(&answer), *status, "{what}: {answer}");
        assert!(answer.contains(text), "{what}: lacks {text:?}: {answer}");
        assert!(
            answer.contains(r#""error":"invalid_request""#),
            "{what}: {answer}"
        );
        assert!(
            !answer.contains("hunter2"),
            "{what} echoes the value: {answer}"
        );
    }

    // Still serving: a good request goes through with its credential.
    let echo = rig.echo(&[], "/echo");
    assert_eq!(echo["method"], "GET");
    let (_, log) = rig.server.stop_with("TERM");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// Every route of the API, as (method, path); `{…}` parameters are filled in by the test.
/// Those that end the caller's session or account come last.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/v1/mitm/ca.pem"),
    ("GET", "/v1/status"),
    ("POST", "/v1/auth/register"),
    ("POST", "/v1/auth/verify"),
    ("POST", "/v1/auth/login"),
    ("GET", "/v1/auth/me"),
    ("POST", "/v1/auth/change-password"),
    ("GET", "/v1/admin/users"),
    ("GET", "/v1/admin/users/{email}"),
    ("POST", "/v1/admin/users/{email}/role"),
    ("GET", "/v1/admin/vaults"),
    ("GET", "/v1/admin/settings"),
    ("PUT", "/v1/admin/settings"),
    ("POST", "/v1/admin/settings/rate-limit/preview"),
    ("GET", "/v1/admin/email"),
    ("POST", "/v1/admin/email/test"),
    ("GET", "/v1/users"),
    ("GET", "/v1/users/invites"),
    ("POST", "/v1/users/invites"),
    ("GET", "/v1/invites/{token}"),
    ("POST", "/v1/invites/{token}/accept"),
    ("GET", "/v1/vaults"),
    ("POST", "/v1/vaults"),
    ("GET", "/v1/vaults/{name}"),
    ("POST", "/v1/vaults/{name}/rename"),
    ("POST", "/v1/vaults/{name}/join"),
    ("GET", "/v1/vaults/{name}/credentials"),
    ("POST", "/v1/vaults/{name}/credentials"),
    ("GET", "/v1/vaults/{name}/credentials/{key}"),
    ("GET", "/v1/vaults/{name}/users"),
    ("POST", "/v1/vaults/{name}/users"),
    ("POST", "/v1/vaults/{name}/users/{email}/role"),
    ("GET", "/v1/vaults/{name}/services"),
    ("PUT", "/v1/vaults/{name}/services"),
    ("POST", "/v1/vaults/{name}/services"),
    ("PATCH", "/v1/vaults/{name}/services/{key}"),
    ("GET", "/v1/service-catalog"),
    ("GET", "/v1/vaults/{name}/settings"),
    ("PUT", "/v1/vaults/{name}/settings"),
    ("GET", "/v1/vaults/{name}/logs"),
    ("POST", "/v1/proposals"),
    ("GET", "/v1/vaults/{name}/proposals"),
    ("GET", "/v1/vaults/{name}/proposals/{number}"),
    ("POST", "/v1/vaults/{name}/proposals/{number}/approve"),
    ("POST", "/v1/vaults/{name}/proposals/{number}/reject"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/sandbox/runs"),
    ("GET", "/v1/discover"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/invites"),
    ("POST", "/v1/agents/invites"),
    ("GET", "/v1/agents/{name}"),
    ("POST", "/v1/agents/{name}/rotate"),
    ("POST", "/v1/agents/{name}/rename"),
    ("POST", "/v1/agents/{name}/role"),
    ("GET", "/v1/agent-invites/{token}"),
    ("POST", "/v1/agent-invites/{token}/redeem"),
    ("GET", "/v1/vaults/{name}/agents"),
    ("POST", "/v1/vaults/{name}/agents"),
    ("POST", "/v1/vaults/{name}/agents/{name}/role"),
    ("DELETE", "/v1/vaults/{name}/agents/{name}"),
    ("DELETE", "/v1/agents/invites/{token}"),
    ("DELETE", "/v1/agents/{name}"),
    ("DELETE", "/v1/vaults/{name}/services/{key}"),
    ("DELETE", "/v1/vaults/{name}/services"),
    ("DELETE", "/v1/vaults/{name}/users/{email}"),
    ("DELETE", "/v1/vaults/{name}/credentials"),
    ("DELETE", "/v1/users/invites/{token}"),
    ("DELETE", "/v1/admin/users/{email}"),
    ("DELETE", "/v1/vaults/{name}"),
    ("DELETE", "/v1/admin/vaults/{name}"),
    ("POST", "/v1/sessions/renew"),
    ("POST", "/v1/auth/logout"),
    ("DELETE", "/v1/auth/account"),
];

#[test]
fn every_api_route_answers_malformed_input_with_a_4xx_never_a_5xx() {
    let home = crate::harness::TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let api = crate::api::Api::new(&server.url);
    let owner = api.register_owner("owner@example.com");
    let client = crate::harness::http();

    // Path parameters: an existing name, then what a hostile client might put there.
    let long = "a".repeat(3000);
    let params = [
        ["default", "owner@example.com", "1"],
        ["..", "%00", "-1"],
        [long.as_str(), "%E2%80%AE%0A", "99999999999999999999"],
        // Characters of two bytes, cut by a byte count anywhere but between them.
        [
            "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9a",
            "%C3%A9%C3%A9%C3%A9@example.com",
            "%C3%A9",
        ],
    ];
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(200_000));
    let bodies: [(&str, &str); 9] = [
        ("", ""),
        ("application/json", "not json"),
        ("application/json", "{}"),
        ("application/json", "[]"),
        ("application/json", "null"),
        (
            "application/json",
            r#"{"name":5,"email":[],"role":{},"password":null,"key":true,"value":1e400,"services":"x","limit":-1,"token":{"a":1}}"#,
        ),
        ("application/json", &deep),
        ("application/json", &huge),
        ("text/plain", "name=x&email=y"),
    ];
    let mut answered = 0;
    for (method, template) in ROUTES {
        for [name, email, number] in &params {
            let path = template
                .replace("{name}", name)
                .replace("{email}", email)
                .replace("{token}", name)
                .replace("{key}", name)
                .replace("{number}", number);
            for (content_type, body) in &bodies {
                let mut request = client
                    .request(
                        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                        format!("{}{path}", server.url),
                    )
                    .bearer_auth(&owner);
                if !content_type.is_empty() {
                    request = request
                        .header("content-type", *content_type)
                        .body(body.to_string());
                }
                let what = format!("{method} {:.80} ({content_type} {body:.40})", path);
                let response = request
                    .send()
                    .unwrap_or_else(|e| panic!("{what}: no answer: {e:?}"));
                let status = response.status().as_u16();
                let text = response.text().unwrap_or_default();
                let what = format!(
                    "{method} {} ({content_type} {:.40})",
                    &path[..path.len().min(80)],
                    body
                );
                assert!(
                    status < 500 || (status == 503 && text.contains("\"error\"")),
                    "{what} → {status}: {text:.300}"
                );
                if status >= 400 {
                    let error: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or_else(|e| {
                            panic!("{what} → {status}, not JSON ({e}): {text:.300}")
                        });
                    assert!(
                        error["error"].is_string() && error["message"].is_string(),
                        "{what} → {status}: {text:.300}"
                    );
                }
                answered += 1;
            }
        }
    }
    assert_eq!(answered, ROUTES.len() * params.len() * bodies.len());
    let (_, log) = server.stop_with("TERM");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[test]
fn an_answer_that_leaves_the_body_unread_closes_the_connection_and_says_so() {
    let home = crate::harness::TestHome::new();
    let server = home.start_server(&[], "", &[]);
    // One connection at most, so the second request would reuse the first's.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for path in ["/v1/no-such-route", "/v1/vaults"] {
        let refused = client
            .post(format!("{}{path}", server.url))
            .header("content-type", "application/json")
            .body("x".repeat(200_000))
            .send()
            .unwrap();
        assert!(
            refused.status().is_client_error(),
            "{path}: {}",
            refused.status()
        );
        assert_eq!(refused.headers()["connection"], "close", "{path}");
        let next = client.get(format!("{}/v1/status", server.url)).send();
        assert_eq!(next.unwrap().status(), 200, "the request after {path}");
    }
    // A body that was read keeps the connection.
    crate::api::Api::new(&server.url).register_owner("owner@example.com");
    let read = client
        .post(format!("{}/v1/auth/login", server.url))
        .json(&serde_json::json!({"email": "owner@example.com", "password": "wrong-password"}))
        .send()
        .unwrap();
    assert_eq!(read.status(), 401, "{:?}", read.text());
    assert!(read.headers().get("connection").is_none());
}

#[test]
fn a_proxy_refusal_that_leaves_the_body_unread_closes_the_connection_and_says_so() {
    let rig = Rig::start(true);
    let plain = format!("{}:{}", rig.upstream.ip, rig.upstream.http_port);
    let body = "x".repeat(200_000);
    let answer = exchange(
        rig.mitm,
        format!(
            "POST http://{plain}/echo HTTP/1.1\r\nHost: {plain}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&answer), 407, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
}

/// Every form of the web UI, as (method, path); `{…}` parameters are filled in by the test.
/// Those that end the session, the vault or the account come last.
const PAGES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/static/app.css"),
    ("GET", "/static/app.js"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/register"),
    ("POST", "/register"),
    ("GET", "/verify"),
    ("POST", "/verify"),
    ("GET", "/auth/google"),
    ("GET", "/auth/google/callback"),
    ("GET", "/invite/{name}"),
    ("POST", "/invite/{name}"),
    ("GET", "/approve/{name}/{number}"),
    ("POST", "/approve/{name}/{number}"),
    ("GET", "/vaults"),
    ("POST", "/vaults"),
    ("GET", "/vaults/{name}"),
    ("POST", "/vaults/{name}/join"),
    ("GET", "/vaults/{name}/services"),
    ("POST", "/vaults/{name}/services"),
    ("GET", "/vaults/{name}/services/new"),
    ("GET", "/vaults/{name}/services/edit"),
    ("POST", "/vaults/{name}/services/toggle"),
    ("GET", "/vaults/{name}/credentials"),
    ("POST", "/vaults/{name}/credentials"),
    ("POST", "/vaults/{name}/credentials/reveal"),
    ("GET", "/vaults/{name}/proposals"),
    ("GET", "/vaults/{name}/proposals/{number}"),
    ("POST", "/vaults/{name}/proposals/{number}"),
    ("GET", "/vaults/{name}/logs"),
    ("GET", "/vaults/{name}/logs/tail"),
    ("GET", "/vaults/{name}/members"),
    ("POST", "/vaults/{name}/members/users"),
    ("POST", "/vaults/{name}/members/users/role"),
    ("POST", "/vaults/{name}/members/agents"),
    ("POST", "/vaults/{name}/members/agents/role"),
    ("GET", "/vaults/{name}/settings"),
    ("POST", "/vaults/{name}/settings/rename"),
    ("POST", "/vaults/{name}/settings/policy"),
    ("GET", "/agents"),
    ("POST", "/agents/invite"),
    ("POST", "/agents/{name}/rotate"),
    ("POST", "/agents/{name}/rename"),
    ("POST", "/agents/{name}/role"),
    ("GET", "/account"),
    ("GET", "/manage"),
    ("POST", "/manage/access"),
    ("POST", "/manage/retention"),
    ("POST", "/manage/rate-limit"),
    ("POST", "/manage/email-test"),
    ("POST", "/manage/invites"),
    ("POST", "/manage/invites/revoke"),
    ("POST", "/account/password"),
    ("POST", "/agents/invites/revoke"),
    ("POST", "/agents/{name}/delete"),
    ("POST", "/vaults/{name}/members/agents/remove"),
    ("POST", "/vaults/{name}/members/users/remove"),
    ("POST", "/vaults/{name}/credentials/delete"),
    ("POST", "/vaults/{name}/services/delete"),
    ("POST", "/vaults/{name}/settings/delete"),
    ("POST", "/manage/users/remove"),
    ("POST", "/manage/users/role"),
    ("POST", "/logout"),
    ("POST", "/account/delete"),
];

#[test]
fn every_web_form_answers_malformed_input_without_a_5xx() {
    let home = crate::harness::TestHome::new();
    let server = home.start_server(&[], "", &[]);
    crate::api::Api::new(&server.url).register_owner("owner@example.com");
    let browser = crate::harness::CurlBrowser::new();
    browser.get(&format!("{}/login", server.url));
    let (status, _) = browser.post(
        &format!("{}/login", server.url),
        &[("email", "owner@example.com"), ("password", "password-1")],
    );
    assert_eq!(status, 303);

    let long = "a".repeat(3000);
    let params = [
        ["default", "1"],
        ["%2e%2e", "-1"],
        [long.as_str(), "99999999999999999999"],
        // Not UTF-8 once decoded.
        ["%FF%FE", "%FF"],
    ];
    let huge = "x".repeat(100_000);
    let fields: [&[(&str, &str)]; 4] = [
        &[],
        &[
            ("name", ""),
            ("email", "not an address"),
            ("role", "superuser"),
            ("key", "lower-case key"),
            ("value", "\u{1}\r\n"),
            ("password", "x"),
            ("host", "https://[::1"),
            ("port", "-1"),
            ("path", "../.."),
            ("policy", "sometimes"),
            ("action", "explode"),
            ("vault", "no such vault"),
            ("services", ": : :"),
        ],
        &[
            ("name", &huge),
            ("email", &huge),
            ("value", &huge),
            ("host", &huge),
        ],
        &[
            ("name", "é\u{202e}"),
            ("name", "twice"),
            ("suffix", "ééééééa"),
            ("role", "admin"),
            ("email", "owner@example.com"),
        ],
    ];
    for (method, template) in PAGES {
        for [name, number] in &params {
            let url = format!(
                "{}{}",
                server.url,
                template.replace("{name}", name).replace("{number}", number)
            );
            if *method == "GET" {
                let (status, body) = browser.get(&url);
                assert!(status < 500, "GET {url:.120} → {status}: {body:.300}");
                assert_page(status, &body, &url);
                continue;
            }
            for form in &fields {
                // A page first, for the form's CSRF token of this session.
                browser.get(&format!("{}/account", server.url));
                let (status, body) = browser.post(&url, form);
                assert!(
                    status < 500,
                    "POST {url:.120} {form:.200?} → {status}: {body:.300}"
                );
                assert_page(status, &body, &url);
            }
        }
    }
    let (_, log) = server.stop_with("TERM");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// A refusal reaches a browser as a page that says what was wrong, not as a bare line of
/// text. (The log tail answers the page's script, in JSON.)
fn assert_page(status: u16, body: &str, url: &str) {
    if status >= 400 && !url.contains("/logs/tail") {
        assert!(
            body.to_ascii_lowercase().starts_with("<!doctype html>"),
            "{url:.120} → {status}, not a page: {body:.300}"
        );
    }
}

/// The (method, path) pairs a router in `file` declares, each `{parameter}` written `{}`.
pub fn declared_routes(file: &str) -> std::collections::BTreeSet<(String, String)> {
    let source =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap();
    let mut routes = std::collections::BTreeSet::new();
    for declaration in source.split(".route(").skip(1) {
        let path = declaration.split('"').nth(1).unwrap();
        // The handlers run to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = declaration
            .find(|c| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .unwrap();
        let handlers = &declaration[..end];
        for method in ["get", "post", "put", "patch", "delete"] {
            if [" ", ".", ":"]
                .iter()
                .any(|before| handlers.contains(&format!("{before}{method}(")))
            {
                routes.insert((method.to_uppercase(), unnamed(path)));
            }
        }
    }
    routes
}

/// `path` with each `{parameter}` written `{}`.
pub fn unnamed(path: &str) -> String {
    let mut out = String::new();
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => in_parameter = true,
            '}' => {
                in_parameter = false;
                out.push_str("{}");
            }
            _ if !in_parameter => out.push(c),
            _ => {}
        }
    }
    out
}

/// A route added to a router without its place in the sweeps above would go untested.
#[test]
fn the_sweeps_cover_every_route_the_routers_declare() {
    for (file, swept) in [("src/api/mod.rs", ROUTES), ("src/web/mod.rs", PAGES)] {
        let swept: std::collections::BTreeSet<_> = swept
            .iter()
            .map(|(method, path)| (method.to_string(), unnamed(path)))
            .collect();
        let declared = declared_routes(file);
        assert!(declared.len() > 30, "{file}: only {declared:?}");
        let missing: Vec<_> = declared.difference(&swept).collect();
        let stale: Vec<_> = swept.difference(&declared).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "{file}: not swept {missing:?}; swept but not declared {stale:?}"
        );
    }
}
