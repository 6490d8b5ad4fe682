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
