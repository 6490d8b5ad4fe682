//! The protocols agents speak, through the real broker to real servers the test runs:
//! HTTP/2 and HTTP/1.1 in every combination (curl against Debian's nginx), trailers,
//! WebSockets, the official Anthropic and OpenAI SDKs, server-sent events and git.

use std::process::Command;

use serde_json::Value;

use crate::broker::{BEARER, Rig, SUBST};
use crate::nginx::Nginx;
use crate::upstream::Upstream;

impl Rig {
    /// Merges the services in `yaml` into the default vault.
    pub fn add_services(&self, yaml: &str) {
        let file = self.home.path().join("more-services.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.home
            .run(&["vault", "service", "add", "-f", "more-services.yaml"])
            .ok();
    }
}

/// curl through the MITM with the given HTTP version flag; returns (status, version, body).
fn curl_version(rig: &Rig, flag: &str, url: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            flag,
            "-w",
            "\n%{http_code} %{http_version}",
            "--cacert",
        ])
        .arg(&rig.ca)
        .arg(url)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HTTPS_PROXY", rig.proxy_url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (status, version) = tail.split_once(' ').unwrap();
    (status.parse().unwrap(), version.to_owned(), body.to_owned())
}

/// Vaults never share an upstream HTTP/2 connection: an agent that stops reading large
/// responses fills its connection's flow-control window, and another vault's requests to the
/// same host must not wait behind it.
#[test]
fn an_agent_that_stops_reading_does_not_stall_another_vaults_http2_requests() {
    let nginx = Nginx::start("127.0.0.1", 1);
    // Sparse: nginx reads zeros, the disk holds nothing.
    let big = std::fs::File::create(nginx.www().join("big")).unwrap();
    big.set_len(256 << 20).unwrap();
    let rig = Rig::start_trusting(true, Upstream::start(), &[&nginx.ca_file]);
    let service = format!(
        "services:\n  - host: 127.0.0.1\n    port: {}\n    scrub_responses: false\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n",
        nginx.h2_port
    );
    rig.add_services(&service);
    let home = &rig.home;
    home.run(&["vault", "create", "other"]).ok();
    let other = ["--vault", "other"];
    let set = [
        "vault",
        "credential",
        "set",
        "BEARER_TOKEN=other-bearer-0123456789",
    ];
    home.run(&[&set[..], &other[..]].concat()).ok();
    std::fs::write(home.path().join("other.yaml"), &service).unwrap();
    let add = ["vault", "service", "set", "-f", "other.yaml"];
    home.run(&[&add[..], &other[..]].concat()).ok();
    let other_token = home
        .run(&["vault", "token", "--vault", "other"])
        .ok()
        .stdout;
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", nginx.h2_port);
    let curl = |proxy: &str, args: &[&str], path: &str| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--http2", "--cacert"])
            .arg(&rig.ca)
            .args(args)
            .arg(url(path))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HTTPS_PROXY", proxy);
        cmd
    };
    // Downloads read at a trickle hold their streams' windows, and with them the connection's.
    let mut stalling: Vec<std::process::Child> = (0..4)
        .map(|_| {
            curl(
                &rig.proxy_url(),
                &["-o", "/dev/null", "--limit-rate", "1k"],
                "/big",
            )
            .spawn()
            .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let other_proxy = format!("http://{}:other@127.0.0.1:{}", other_token.trim(), rig.mitm);
    let answered = curl(&other_proxy, &["-m", "20", "-w", "%{http_code}"], "/echo")
        .output()
        .unwrap();
    for child in &mut stalling {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = String::from_utf8_lossy(&answered.stdout);
    assert!(
        answered.status.success() && stdout.ends_with("200"),
        "the other vault's request waited: {stdout} {}",
        String::from_utf8_lossy(&answered.stderr)
    );
    assert!(stdout.contains("other-bearer-0123456789"), "{stdout}");
}

#[test]
fn http2_and_http1_both_ways_to_nginx() {
    let nginx = Nginx::start("127.0.0.1", 1);
    let rig = Rig::start_trusting(true, Upstream::start(), &[&nginx.ca_file]);
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.1\n    port: {}\n    scrub_responses: false\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n  - host: 127.0.0.1\n    port: {}\n    scrub_responses: false\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n",
        nginx.h2_port, nginx.h1_port
    ));
    // The agent's protocol is kept where the upstream agrees to it; an HTTP/2 agent is bridged
    // to an HTTP/1.1-only upstream. An HTTP/1.1 agent's first request to a host goes over
    // HTTP/2 while the broker learns (by a probe) that the host also speaks HTTP/1.1.
    for port in [nginx.h2_port, nginx.h1_port] {
        for (flag, client_version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let upstream_proto = if port == nginx.h2_port && flag == "--http2" {
                "HTTP/2.0"
            } else {
                "HTTP/1.1"
            };
            let url = format!("https://127.0.0.1:{port}/echo");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let (status, version, body) = curl_version(&rig, flag, &url);
                assert_eq!(
                    status,
                    200,
                    "{flag} to port {port}: {body}\n{}",
                    nginx.error_log()
                );
                assert_eq!(version, client_version, "{flag} to port {port}");
                let echo: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(echo["authorization"], format!("Bearer {BEARER}"), "{body}");
                assert_eq!(echo["host"], "127.0.0.1", "{body}");
                if echo["proto"] == upstream_proto {
                    break;
                }
                assert!(
                    echo["proto"] == "HTTP/2.0" && std::time::Instant::now() < deadline,
                    "{flag} to port {port}: {body}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// A TLS upstream that answers every request with the protocol, authority and `Authorization`
/// it saw: HTTP/2 only (ALPN `h2` alone, as gRPC servers do), or HTTP/1.1 closing the
/// connection after each response. Returns its port and the PEM of its certificate's CA.
fn start_echo(runtime: &tokio::runtime::Runtime, http2_only: bool) -> (u16, String) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let cert = crate::upstream::TestCert::mint();
    let alpn: &[u8] = if http2_only { b"h2" } else { b"http/1.1" };
    let port = cert.serve(runtime, &[alpn], move |tls| async move {
        let service = hyper::service::service_fn(|request: http::Request<_>| async move {
            let authority = match request.uri().authority() {
                Some(authority) => Some(authority.to_string()),
                None => request
                    .headers()
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            };
            let seen = serde_json::json!({
                "proto": format!("{:?}", request.version()),
                "authority": authority,
                "authorization": request.headers().get("authorization")
                    .and_then(|v| v.to_str().ok()),
            });
            let body = http_body_util::Full::new(bytes::Bytes::from(seen.to_string()));
            Ok::<_, std::convert::Infallible>(http::Response::new(body))
        });
        let io = TokioIo::new(tls);
        if http2_only {
            let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(io, service).await;
        } else {
            let mut builder = hyper::server::conn::http1::Builder::new();
            let _ = builder
                .keep_alive(false)
                .serve_connection(io, service)
                .await;
        }
    });
    (port, cert.ca_pem)
}

/// curl with `--http1.1` through the MITM, fetching each URL in turn on one tunnel; the
/// upstream's JSON answers.
fn curl_http1_on_one_tunnel(rig: &Rig, urls: &[String]) -> Vec<Value> {
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "-w", "\n", "--cacert"])
        .arg(&rig.ca)
        .args(urls)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HTTPS_PROXY", rig.proxy_url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), urls.len(), "{text}");
    answers
}

#[test]
fn http1_agents_reach_http2_only_and_closing_upstreams() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (h2_only, h2_ca) = start_echo(&runtime, true);
    let (closing, closing_ca) = start_echo(&runtime, false);
    let cas = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cas.path(), format!("{h2_ca}{closing_ca}")).unwrap();
    let rig = Rig::start_trusting(true, Upstream::start(), &[cas.path()]);
    let service = |port: u16| {
        format!(
            "  - host: 127.0.0.1\n    port: {port}\n    scrub_responses: false\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n"
        )
    };
    rig.add_services(&format!(
        "services:\n{}{}",
        service(h2_only),
        service(closing)
    ));
    // HTTP/2 only (ALPN `h2` alone, it negotiates nothing when offered only HTTP/1.1): every
    // request of an HTTP/1.1 agent goes over HTTP/2. Closing after each answer: a new
    // upstream connection for each request of one tunnel.
    for (port, proto) in [(h2_only, "HTTP/2.0"), (closing, "HTTP/1.1")] {
        let urls: Vec<String> = (1..=3)
            .map(|n| format!("https://127.0.0.1:{port}/{n}"))
            .collect();
        for seen in curl_http1_on_one_tunnel(&rig, &urls) {
            assert_eq!(seen["proto"], proto, "{seen}");
            assert_eq!(seen["authority"], format!("127.0.0.1:{port}"), "{seen}");
            assert_eq!(seen["authorization"], format!("Bearer {BEARER}"), "{seen}");
        }
    }
}

/// An HTTP/1.1 keep-alive upstream that answers with the client port of the connection a
/// request came on; `close_all` drops every open connection.
fn start_keepalive_echo(
    runtime: &tokio::runtime::Runtime,
) -> (u16, String, tokio::sync::watch::Sender<u32>) {
    use hyper_util::rt::TokioIo;
    let cert = crate::upstream::TestCert::mint();
    let (close_all, closed) = tokio::sync::watch::channel(0u32);
    let port = cert.serve(runtime, &[b"http/1.1"], move |tls| {
        let mut closed = closed.clone();
        async move {
            let peer = tls.get_ref().0.peer_addr().unwrap().port();
            let service = hyper::service::service_fn(move |_: http::Request<_>| async move {
                let seen = serde_json::json!({ "peer": peer });
                let body = http_body_util::Full::new(bytes::Bytes::from(seen.to_string()));
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            closed.mark_unchanged();
            tokio::select! {
                _ = conn => {}
                _ = closed.changed() => {}
            }
        }
    });
    (port, cert.ca_pem, close_all)
}

/// A rig whose vault injects a bearer for a keep-alive echo upstream: the rig, the echo's
/// port and the sender that closes its connections (see [`start_keepalive_echo`]).
fn keepalive_rig(runtime: &tokio::runtime::Runtime) -> (Rig, u16, tokio::sync::watch::Sender<u32>) {
    let (port, ca, close_all) = start_keepalive_echo(runtime);
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca).unwrap();
    let rig = Rig::start_trusting(true, Upstream::start(), &[ca_file.path()]);
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.1\n    port: {port}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n"
    ));
    (rig, port, close_all)
}

#[test]
fn http1_upstream_connections_are_reused_and_replaced_once_closed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (rig, port, close_all) = keepalive_rig(&runtime);
    let url = format!("https://127.0.0.1:{port}/");
    // One tunnel per request: reuse is the broker's, across its agents' connections.
    let peers = |count: usize| -> Vec<u64> {
        (0..count)
            .map(|_| {
                curl_http1_on_one_tunnel(&rig, std::slice::from_ref(&url))[0]["peer"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    // The first request teaches the broker that the host speaks HTTP/1.1 (see `http1_hosts`);
    // from then on the HTTP/1.1 pool serves it, on one connection.
    let before = peers(5);
    assert!(before[2..].iter().all(|p| *p == before[2]), "{before:?}");
    // The upstream closes its idle connections: the pool must not hand out a dead one.
    close_all.send(1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = peers(3);
    assert!(after.iter().all(|p| *p == after[0]), "{after:?}");
    assert_ne!(after[0], before[2], "a new connection after the close");
}

/// Reads requests from `tls` and, once each head is in (never reading a body), writes what
/// `answer` gives for it, if anything, until the peer closes.
async fn answer_heads<S>(mut tls: S, mut answer: impl FnMut() -> Option<Vec<u8>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = tls.read(&mut buf).await {
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            head.clear();
            if let Some(bytes) = answer()
                && tls.write_all(&bytes).await.is_err()
            {
                return;
            }
        }
    }
}

/// An agent whose request body is still streaming when the upstream has already answered
/// holds that upstream connection until the body ends: the pool must not hand it to another
/// agent's request, which would wait for the first agent's body (for as long as it likes).
#[test]
fn a_connection_busy_with_another_agents_body_is_not_handed_out() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Answers each request as soon as its head is in and reads nothing of a body, keeping the
    // connection open (as an API answering an upload with an early 401 or 413 may).
    let cert = crate::upstream::TestCert::mint();
    let port = cert.serve(&runtime, &[b"http/1.1"], |tls| async move {
        let peer = tls.get_ref().0.peer_addr().unwrap().port();
        let seen = serde_json::json!({ "peer": peer }).to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{seen}",
            seen.len()
        );
        answer_heads(tls, || Some(answer.clone().into_bytes())).await;
    });
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &cert.ca_pem).unwrap();
    let rig = Rig::start_trusting(true, Upstream::start(), &[ca_file.path()]);
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.1\n    port: {port}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n"
    ));
    let url = format!("https://127.0.0.1:{port}/");
    // Teaches the broker that the host speaks HTTP/1.1: the pool serves it from now on.
    curl_http1_on_one_tunnel(&rig, std::slice::from_ref(&url));
    curl_http1_on_one_tunnel(&rig, std::slice::from_ref(&url));
    runtime.block_on(async {
        use http_body_util::BodyExt;
        let tls = tunnel(&rig, "127.0.0.1", port, &[b"http/1.1"]).await;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        // A body that keeps streaming until the test says so.
        let (feed, frames) = tokio::sync::mpsc::channel::<
            Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >(4);
        feed.send(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
            b"first part",
        ))))
        .await
        .unwrap();
        let frames = futures_util::stream::unfold(frames, |mut frames| async move {
            frames.recv().await.map(|frame| (frame, frames))
        });
        let body = http_body_util::StreamBody::new(frames);
        let request = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", format!("127.0.0.1:{port}"))
            .header("content-length", "100000000")
            .body(body)
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        // Another agent's request meanwhile is answered, on another upstream connection.
        let answered = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tokio::task::spawn_blocking({
                let proxy = rig.proxy_url();
                let ca = rig.ca.clone();
                let url = url.clone();
                move || {
                    Command::new("curl")
                        .args(["-sS", "--http1.1", "--cacert"])
                        .arg(ca)
                        .arg(url)
                        .env_clear()
                        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                        .env("HTTPS_PROXY", proxy)
                        .output()
                        .unwrap()
                }
            }),
        )
        .await;
        drop(feed);
        let output = answered
            .expect("the other agent waited for the first one's body")
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("peer"));
    });
}

#[test]
fn an_upstream_that_stops_answering_gets_a_504_after_the_response_timeout() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint();
    // Answers the first request (so the broker learns the host speaks HTTP/1.1 and sends the
    // next through its HTTP/1.1 pool), then reads requests and never answers.
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    let port = cert.serve(&runtime, &[b"http/1.1"], move |tls| {
        let requests = requests.clone();
        answer_heads(tls, move || {
            let first = requests.fetch_add(1, Ordering::SeqCst) == 0;
            first.then(|| b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec())
        })
    });
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &cert.ca_pem).unwrap();
    let rig = Rig::start_with_env(
        true,
        Upstream::start(),
        &[ca_file.path()],
        &[("AGENT_VAULT_UPSTREAM_RESPONSE_TIMEOUT", "1")],
    );
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.1\n    port: {port}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n"
    ));
    let url = format!("https://127.0.0.1:{port}/");
    let (status, body, _) = rig.curl(&[], &url);
    assert_eq!((status, body.as_str()), (200, "ok"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let (status, body, _) = rig.curl(&[], &url);
    assert_eq!(status, 504, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "upstream_timeout", "{body}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 s"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_response_timeout_past_a_year_is_refused_at_start_and_requests_still_flow() {
    // Added to the clock, u64::MAX seconds overflowed it on every proxied request.
    let rig = Rig::start_env(&[(
        "AGENT_VAULT_UPSTREAM_RESPONSE_TIMEOUT",
        "18446744073709551615",
    )]);
    let echo = rig.echo(&[], "/bearer/after");
    assert_eq!(echo["path"], "/bearer/after");
    let (_, log) = rig.server.stop_with("TERM");
    assert!(
        log.contains("AGENT_VAULT_UPSTREAM_RESPONSE_TIMEOUT=18446744073709551615 is not a whole number of seconds from 1 to 31536000; using 600"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn an_upload_slower_than_the_response_timeout_is_not_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rig = Rig::start_env(&[("AGENT_VAULT_UPSTREAM_RESPONSE_TIMEOUT", "2")]);
    let (ip, port) = (rig.upstream.ip.clone(), rig.upstream.https_port);
    // A 1 KiB chunk every 250 ms for 5 s: 2.5 times the timeout, never silent for long.
    // (curl's --limit-rate sends in bursts with pauses that can outlast a short timeout.)
    let chunks = 20;
    let started = std::time::Instant::now();
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut tls = tunnel(&rig, &ip, port, &[b"http/1.1"]).await;
        let head = format!(
            "POST /bearer/upload HTTP/1.1\r\nHost: {ip}:{port}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..chunks {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let chunk = format!("400\r\n{}\r\n", "u".repeat(1024));
            tls.write_all(chunk.as_bytes()).await.unwrap();
        }
        tls.write_all(b"0\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() > std::time::Duration::from_secs(4));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let echo: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(echo["body"].as_str().unwrap().len(), chunks * 1024);
}

/// A TLS stream to `host:port` through a CONNECT tunnel of the rig's MITM, trusting the
/// broker's CA and offering `alpn`.
pub async fn tunnel(
    rig: &Rig,
    host: &str,
    port: u16,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", rig.mitm))
        .await
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:default", rig.token));
    tcp.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: Basic {auth}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "proxy closed");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&rig.ca).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    connector.connect(name, tcp).await.unwrap()
}

#[test]
fn http2_trailers_reach_the_client() {
    use http_body_util::BodyExt;
    let rig = Rig::start(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tls = tunnel(&rig, &rig.upstream.ip, rig.upstream.https_port, &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        // Trailers are scrubbed like headers, whether the body is scanned (no type) or not
        // (gRPC); the unscrubbed service shows the upstream did send the value.
        for (path, auth) in [
            ("/trailers", None),
            ("/scrubbed/trailers", Some(format!("Bearer {MARKER}"))),
            ("/scrubbed/trailers?grpc", Some(format!("Bearer {MARKER}"))),
            ("/bearer/trailers?grpc", Some(format!("Bearer {BEARER}"))),
        ] {
            let request = http::Request::builder()
                .uri(format!(
                    "https://{}:{}{path}",
                    rig.upstream.ip, rig.upstream.https_port
                ))
                .header("te", "trailers")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let collected = response.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned().expect("trailers arrive");
            assert_eq!(trailers["grpc-status"], "0");
            assert_eq!(
                trailers["x-trailer-te"], "trailers",
                "te: trailers reaches the upstream"
            );
            assert_eq!(
                trailers
                    .get("x-trailer-auth")
                    .map(|v| v.to_str().unwrap().to_owned()),
                auth,
                "{path}"
            );
            assert_eq!(&collected.to_bytes()[..], b"payload");
        }
    });
}

/// The venv `scripts/e2e-python.sh` makes (`.ci/run` runs it) with the SDKs and websockets.
pub fn venv_python() -> std::path::PathBuf {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-venv/bin/python3");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/e2e-python.sh (.ci/run does) to install the Python SDKs the tests use",
        python.display()
    );
    python
}

const ANTHROPIC_KEY: &str = "SENTINEL-anthropic-k3y";
const OPENAI_KEY: &str = "SENTINEL-openai-k3y";

#[test]
fn official_sdks_with_placeholder_keys_send_only_the_vaults_key() {
    let python = venv_python();
    // 127.0.0.2: not in the NO_PROXY that `vault run` sets.
    let rig = Rig::start_with(true, Upstream::start_on("127.0.0.2"));
    let port = rig.upstream.https_port;
    rig.home
        .run(&[
            "vault",
            "credential",
            "set",
            &format!("ANTHROPIC_KEY={ANTHROPIC_KEY}"),
            &format!("OPENAI_KEY={OPENAI_KEY}"),
        ])
        .ok();
    // As in the catalog: Anthropic takes x-api-key, OpenAI a bearer token. Scrubbing is off
    // here so the echo shows what arrived (scrubbing has its own test).
    rig.add_services(&format!(
        r#"services:
  - host: 127.0.0.2
    port: {port}
    path: /anthropic
    auth: {{type: api-key, key: ANTHROPIC_KEY, header: x-api-key}}
    scrub_responses: false
  - host: 127.0.0.2
    port: {port}
    path: /openai
    auth: {{type: bearer, token: OPENAI_KEY}}
    scrub_responses: false
"#
    ));
    let script = format!(
        r#"
import json, anthropic, openai
a = anthropic.Anthropic(api_key="placeholder-anthropic", base_url="https://127.0.0.2:{port}/anthropic", max_retries=0)
ra = a.messages.with_raw_response.create(model="claude-test", max_tokens=8, messages=[{{"role": "user", "content": "hi"}}])
o = openai.OpenAI(api_key="placeholder-openai", base_url="https://127.0.0.2:{port}/openai/v1", max_retries=0)
ro = o.chat.completions.with_raw_response.create(model="gpt-test", messages=[{{"role": "user", "content": "hi"}}])
print(json.dumps({{"anthropic": json.loads(ra.http_response.text), "openai": json.loads(ro.http_response.text)}}))
"#
    );
    std::fs::write(rig.home.path().join("sdks.py"), script).unwrap();
    let python = python.display().to_string();
    let run = rig
        .home
        .run(&["vault", "run", "--", &python, "sdks.py"])
        .ok();
    let seen: Value =
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run}"));
    for (sdk, header, expected) in [
        ("anthropic", "x-api-key", ANTHROPIC_KEY.to_owned()),
        ("openai", "authorization", format!("Bearer {OPENAI_KEY}")),
    ] {
        let echo = &seen[sdk];
        assert_eq!(echo["method"], "POST", "{sdk}: {echo}");
        assert_eq!(
            crate::broker::header(echo, header),
            vec![expected.as_str()],
            "{sdk}: {echo}"
        );
        let headers = echo["headers"].as_object().unwrap();
        for (name, values) in headers {
            assert!(
                !values.to_string().contains("placeholder"),
                "{sdk}: the placeholder reached the upstream in {name}: {echo}"
            );
        }
        let credentials = headers
            .keys()
            .filter(|n| *n == "authorization" || *n == "x-api-key")
            .count();
        assert_eq!(
            credentials, 1,
            "{sdk}: exactly one credential header: {echo}"
        );
    }
}

const MARKER: &str = "[agent-vault:redacted]";

#[test]
fn reflected_credentials_come_back_as_the_marker() {
    let rig = Rig::start(true);
    // The echo reflects the injected Authorization in its body and, asked to, in a header's
    // value and in a header's name.
    let (status, body, headers) = rig.curl(
        &[
            "-H",
            "Authorization: Bearer placeholder",
            "-H",
            "x-reflect: authorization",
            "-H",
            "x-reflect-name: authorization",
        ],
        &rig.https("/scrubbed/echo"),
    );
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        crate::broker::header(&echo, "authorization"),
        vec![format!("Bearer {MARKER}")],
        "{body}"
    );
    assert!(
        headers.contains(&format!("x-reflected: bearer {}", MARKER.to_lowercase())),
        "{headers}"
    );
    assert!(
        headers.contains("x-seen-agent-vault-redacted: 1"),
        "{headers}"
    );
    assert!(!body.contains(BEARER) && !headers.contains(&BEARER.to_lowercase()));
    // Read whole with its first frame, the scrubbed body keeps an exact length (not chunked).
    assert!(
        headers.contains(&format!("content-length: {}", body.len())),
        "{headers}"
    );
    // A substitution the agent placed in the query or body comes back encoded: also scrubbed.
    let (status, body, _) = rig.curl(
        &["--data", "note=__sub_value__"],
        &rig.https("/scrubbed-sub/store?key=__sub_value__"),
    );
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["query"], format!("key={MARKER}"), "{body}");
    assert_eq!(echo["body"], format!("note={MARKER}"), "{body}");
    assert!(!body.contains("SENTINEL-sub-44"), "{body}");
    // What an upstream stored, read back through a path no service matches: scanned for
    // every value the vault's services send that is too long to guess (the echo stands in
    // for the store). A short one is not: an upstream the agent runs would otherwise tell it
    // which of the guesses it echoed is the secret.
    let stored = format!(r#"{{"note":"{SUBST}","key":"{BEARER}"}}"#);
    let (status, body, _) = rig.curl(
        &["--data", &stored],
        &rig.https("/no-service-here/readback"),
    );
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["body"],
        format!(r#"{{"note":"{SUBST}","key":"{MARKER}"}}"#),
        "{body}"
    );
    // A request that asks to switch to WebSocket, refused by an upstream that answers 200
    // as to any request: an ordinary response, scrubbed like one.
    let (status, body, _) = rig.curl(
        &[
            "--http1.1",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
        &rig.https("/scrubbed/echo"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(MARKER) && !body.contains(BEARER), "{body}");
    // An HTTP/1 reason phrase of the upstream's own is not repeated: it may carry anything.
    // (The first HTTP/1.1 request teaches the broker to keep an HTTP/1.1 agent on HTTP/1.1
    // to this upstream; before, it goes over HTTP/2, which has no reason phrase.)
    rig.curl(&["--http1.1"], &rig.https("/bearer/echo"));
    let (_, _, control) = rig.curl(&["--http1.1"], &rig.https("/bearer/echo?reason"));
    assert!(
        control.starts_with(&format!(
            "http/1.1 200 seen bearer {}",
            BEARER.to_lowercase()
        )),
        "the upstream did send its own reason: {control}"
    );
    let (_, _, headers) = rig.curl(&["--http1.1"], &rig.https("/scrubbed/echo?reason"));
    assert!(headers.starts_with("http/1.1 200 ok\r\n"), "{headers}");
    // A binary body is scanned too, the value replaced by a filler of its own length: the
    // upstream's Content-Length stays true.
    let (status, body, headers) = rig.curl(&[], &rig.https("/scrubbed/echo?binary"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Bearer [agent-vault:redacte\"") && !body.contains(BEARER),
        "{body}"
    );
    assert!(
        headers.contains(&format!("content-length: {}", body.len()))
            && headers.contains("content-type: application/octet-stream"),
        "{headers}"
    );
    // A range could cut the value into pieces no scan recognises: a scrubbed service gets
    // none (the echo lists what it received), an unscrubbed one does.
    let range = ["-H", "Range: bytes=0-9", "-H", "If-Range: \"v1\""];
    let echo: Value =
        serde_json::from_str(&rig.curl(&range, &rig.https("/scrubbed/echo")).1).unwrap();
    assert!(crate::broker::header(&echo, "range").is_empty(), "{echo}");
    assert!(
        crate::broker::header(&echo, "if-range").is_empty(),
        "{echo}"
    );
    assert_eq!(
        crate::broker::header(&rig.echo(&range, "/bearer"), "range"),
        ["bytes=0-9"]
    );
    // Opted out (the rig's other services): the value is what the upstream saw.
    let echo = rig.echo(&[], "/bearer");
    assert_eq!(
        crate::broker::header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
}

#[test]
fn server_sent_events_arrive_one_by_one_and_scrubbed() {
    use http_body_util::BodyExt;
    let rig = Rig::start(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tls = tunnel(
            &rig,
            &rig.upstream.ip,
            rig.upstream.https_port,
            &[b"http/1.1"],
        )
        .await;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::builder()
            .uri("/scrubbed/sse")
            .header(
                "host",
                format!("{}:{}", rig.upstream.ip, rig.upstream.https_port),
            )
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut seen = String::new();
        // Each event must arrive while the upstream is still holding back the next one
        // (it sends the next only for a permit given after this read): no buffering.
        for (event, expected) in [
            (0, "data: one\n\n".to_owned()),
            (1, format!("data: auth=Bearer {MARKER}\n\n")),
            (2, "data: three\n\n".to_owned()),
        ] {
            if event > 0 {
                rig.upstream.sse_gate.add_permits(1);
            }
            while !seen.ends_with(&expected) {
                let frame = tokio::time::timeout(std::time::Duration::from_secs(20), body.frame())
                    .await
                    .unwrap_or_else(|_| panic!("event {event} never arrived; got {seen:?}"))
                    .expect("body ended early")
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    seen.push_str(&String::from_utf8_lossy(&data));
                }
            }
        }
        assert!(!seen.contains(BEARER), "{seen}");
    });
}

/// A WebSocket echo server (Python `websockets`) on 127.0.0.2: TLS and plain ports. The
/// first message reports the upgrade's `Authorization`; then every message is echoed, but
/// for `fragments` (the `Authorization` again, as a fragmented message) and `close` (a close
/// frame whose reason quotes it).
struct EchoServer {
    child: std::process::Child,
    wss: u16,
    ws: u16,
    _dir: tempfile::TempDir,
}

impl EchoServer {
    fn start(python: &std::path::Path) -> (Self, std::path::PathBuf) {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let cert = crate::upstream::TestCert::mint();
        let path = |n: &str| dir.path().join(n);
        std::fs::write(path("ca.pem"), &cert.ca_pem).unwrap();
        std::fs::write(path("leaf.pem"), &cert.leaf_pem).unwrap();
        std::fs::write(path("leaf.key"), &cert.key_pem).unwrap();
        std::fs::write(
            path("server.py"),
            r#"
import asyncio, json, ssl, sys
from websockets.asyncio.server import serve

async def handler(ws):
    await ws.send(json.dumps({"authorization": ws.request.headers.get("Authorization", ""),
                              "path": ws.request.path}))
    auth = ws.request.headers.get("Authorization", "")
    async for message in ws:
        if message == "fragments":
            await ws.send(iter([auth[:10], auth[10:]]))
        elif message == "close":
            await ws.close(code=4000, reason="bye " + auth)
        elif isinstance(message, bytes):
            await ws.send(b"echo:" + message)
        else:
            await ws.send("echo:" + message)

async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    async with serve(handler, "127.0.0.2", 0, ssl=ctx) as tls, serve(handler, "127.0.0.2", 0) as plain:
        print(json.dumps({"wss": tls.sockets[0].getsockname()[1],
                          "ws": plain.sockets[0].getsockname()[1]}), flush=True)
        await asyncio.Future()

asyncio.run(main())
"#,
        )
        .unwrap();
        let mut child = Command::new(python)
            .arg(path("server.py"))
            .arg(path("leaf.pem"))
            .arg(path("leaf.key"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let ca = path("ca.pem");
        (
            Self {
                child,
                wss: ports["wss"].as_u64().unwrap() as u16,
                ws: ports["ws"].as_u64().unwrap() as u16,
                _dir: dir,
            },
            ca,
        )
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client reports after talking to [`EchoServer`] at `path` through a service that
/// injects the bearer and substitutes `__ws_token__` in text frames (surface `ws`): the
/// upgrade carried the vault's credential, the text frame was substituted (JSON-escaped), the
/// binary frame passed untouched.
fn assert_credentialed_conversation(seen: &Value, path: &str) {
    assert_eq!(
        seen["first"]["authorization"],
        format!("Bearer {BEARER}"),
        "{seen}"
    );
    assert_eq!(seen["first"]["path"], path);
    assert_eq!(
        seen["text"], r#"echo:{"token": "SENTINEL-sub-44&x/y"}"#,
        "{seen}"
    );
    assert_eq!(
        seen["binary"], "echo:\u{0}\u{1}binary __ws_token__",
        "{seen}"
    );
}

#[test]
fn websockets_through_the_mitm_and_the_plain_proxy() {
    let python = venv_python();
    let (echo, echo_ca) = EchoServer::start(&python);
    let rig = Rig::start_trusting(true, Upstream::start_on("127.0.0.2"), &[&echo_ca]);
    rig.add_services(&format!(
        r#"services:
  - host: 127.0.0.2
    port: {wss}
    path: /ws
    scrub_responses: false
    auth: {{type: bearer, token: BEARER_TOKEN}}
    substitutions:
      - placeholder: __ws_token__
        key: SUB_KEY
        in: [ws]
  - host: 127.0.0.2
    port: {wss}
    path: /scrubbed
    auth: {{type: bearer, token: BEARER_TOKEN}}
"#,
        wss = echo.wss
    ));
    let client = r#"
import asyncio, json, sys
from websockets.asyncio.client import connect

async def main(url):
    async with connect(url, additional_headers={"Authorization": "Bearer placeholder"}) as ws:
        first = json.loads(await ws.recv())
        await ws.send('{"token": "__ws_token__"}')
        text = await ws.recv()
        await ws.send(b"\x00\x01binary __ws_token__")
        binary = await ws.recv()
        await ws.ping()
        print(json.dumps({"first": first, "text": text, "binary": binary.decode("latin-1")}))

asyncio.run(main(sys.argv[1]))
"#;
    std::fs::write(rig.home.path().join("client.py"), client).unwrap();
    let probe = r#"
import asyncio, json, sys
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

async def main(url):
    async with connect(url, additional_headers={"Authorization": "Bearer placeholder"}) as ws:
        await ws.recv()
        await ws.send("fragments")
        fragments = await ws.recv()
        await ws.send("close")
        try:
            await ws.recv()
        except ConnectionClosed as closed:
            reason = closed.rcvd.reason if closed.rcvd else ""
        print(json.dumps({"fragments": fragments, "reason": reason}))

asyncio.run(main(sys.argv[1]))
"#;
    std::fs::write(rig.home.path().join("probe.py"), probe).unwrap();
    let run_client = |script: &str, url: &str| -> Value {
        let out = Command::new(&python)
            .arg(rig.home.path().join(script))
            .arg(url)
            .env_clear()
            .env("HTTPS_PROXY", rig.proxy_url())
            .env("HTTP_PROXY", rig.proxy_url())
            .env("SSL_CERT_FILE", &rig.ca)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let talk = |url: &str| run_client("client.py", url);
    // wss:// through the MITM: the credential on the upgrade, the placeholder replaced in a
    // client text frame (JSON-escaped), binary frames untouched, ping/pong through.
    let seen = talk(&format!("wss://127.0.0.2:{}/ws/chat", echo.wss));
    assert_credentialed_conversation(&seen, "/ws/chat");
    // Scrubbing on: the credential the server reports comes back as the marker.
    let seen = talk(&format!("wss://127.0.0.2:{}/scrubbed", echo.wss));
    assert_eq!(
        seen["first"]["authorization"],
        format!("Bearer {MARKER}"),
        "{seen}"
    );
    // Also in a message the upstream sends in fragments (the value split between them) and
    // in a close frame's reason; unscrubbed, the same server shows the value is there.
    let seen = run_client(
        "probe.py",
        &format!("wss://127.0.0.2:{}/scrubbed", echo.wss),
    );
    assert_eq!(seen["fragments"], format!("Bearer {MARKER}"), "{seen}");
    assert_eq!(seen["reason"], format!("bye Bearer {MARKER}"), "{seen}");
    let seen = run_client("probe.py", &format!("wss://127.0.0.2:{}/ws/x", echo.wss));
    assert_eq!(seen["fragments"], format!("Bearer {BEARER}"), "{seen}");
    assert_eq!(seen["reason"], format!("bye Bearer {BEARER}"), "{seen}");
    // ws:// through the plain proxy (no service there: forwarded without a credential).
    let seen = talk(&format!("ws://127.0.0.2:{}/plain", echo.ws));
    assert_eq!(
        seen["first"]["authorization"], "Bearer placeholder",
        "{seen}"
    );
    assert_eq!(seen["text"], r#"echo:{"token": "__ws_token__"}"#, "{seen}");
    // Each went through the broker: the request log has the five upgrades.
    let mut upgrades = Vec::new();
    for _ in 0..100 {
        let logs = rig.home.run(&["vault", "logs", "--json"]).ok();
        let rows: Vec<Value> = serde_json::from_str(&logs.stdout).unwrap();
        upgrades = rows
            .into_iter()
            .filter(|r| r["status"] == 101)
            .map(|r| {
                format!(
                    "{}{}",
                    r["host"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect();
        if upgrades.len() >= 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    upgrades.sort();
    let mut expected = vec![
        format!("127.0.0.2:{}/ws/chat", echo.wss),
        format!("127.0.0.2:{}/ws/x", echo.wss),
        format!("127.0.0.2:{}/scrubbed", echo.wss),
        format!("127.0.0.2:{}/scrubbed", echo.wss),
        format!("127.0.0.2:{}/plain", echo.ws),
    ];
    expected.sort();
    assert_eq!(upgrades, expected);
}

/// An HTTP/2 WebSocket client (RFC 8441) written on Python's `h2`: CONNECT through the proxy,
/// TLS with ALPN h2, then `CONNECT` with `:protocol websocket` and frames over the stream.
/// Prints what happened as JSON.
const H2_WEBSOCKET_CLIENT: &str = r#"
import base64, json, os, socket, ssl, struct, sys, time, urllib.parse
import h2.config, h2.connection, h2.events, h2.settings

proxy, ca, host, port, path = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
quiet = float(sys.argv[6])
proxy = urllib.parse.urlsplit(proxy)
sock = socket.create_connection((proxy.hostname, proxy.port), timeout=30)
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
             f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += sock.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2"])
tls = ctx.wrap_socket(sock, server_hostname=host)
assert tls.selected_alpn_protocol() == "h2"
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
tls.sendall(conn.data_to_send())
pending = []

def pump():
    data = tls.recv(65536)
    if not data:
        raise EOFError("the broker closed the connection")
    pending.extend(conn.receive_data(data))
    out = conn.data_to_send()
    if out:
        tls.sendall(out)

def next_event(kind, stream):
    while True:
        for i, event in enumerate(pending):
            if isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise RuntimeError(f"waiting for {kind.__name__}: {event}")
            if isinstance(event, kind) and getattr(event, "stream_id", stream) == stream:
                return pending.pop(i)
        pump()

settings = next_event(h2.events.RemoteSettingsChanged, None)
enabled = settings.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
report = {"connect_protocol": bool(enabled and enabled.new_value == 1)}
if not report["connect_protocol"]:
    print(json.dumps(report))
    sys.exit(0)

def open_stream(protocol, path):
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "CONNECT"), (":protocol", protocol),
                               (":scheme", "https"), (":path", path),
                               (":authority", f"{host}:{port}"),
                               ("sec-websocket-version", "13"),
                               ("authorization", "Bearer placeholder")])
    tls.sendall(conn.data_to_send())
    response = next_event(h2.events.ResponseReceived, stream)
    return stream, dict((k.decode(), v.decode()) for k, v in response.headers)

def frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

buffer = b""
def receive(stream):
    global buffer
    while True:
        if len(buffer) >= 2:
            n, start = buffer[1] & 0x7f, 2
            if n == 126:
                n, start = struct.unpack("!H", buffer[2:4])[0], 4
            if len(buffer) >= start + n:
                opcode, payload, buffer = buffer[0] & 0x0f, buffer[start:start + n], buffer[start + n:]
                return opcode, payload
        event = next_event(h2.events.DataReceived, stream)
        conn.acknowledge_received_data(event.flow_controlled_length, stream)
        buffer += event.data

def send(stream, opcode, payload):
    conn.send_data(stream, frame(opcode, payload))
    tls.sendall(conn.data_to_send())

stream, headers = open_stream("websocket", path)
report["status"] = headers[":status"]
if report["status"] != "200":
    print(json.dumps(report))
    sys.exit(0)
report["accept_header"] = "sec-websocket-accept" in headers
report["first"] = json.loads(receive(stream)[1])
send(stream, 1, b'{"token": "__ws_token__"}')
report["text"] = receive(stream)[1].decode()
send(stream, 2, b"\x00\x01binary __ws_token__")
report["binary"] = receive(stream)[1].decode("latin-1")
time.sleep(quiet)
send(stream, 9, b"are you there")
report["pong"] = list(receive(stream))[0] == 10
send(stream, 8, b"\x03\xe8")
report["close"] = receive(stream)[0]
_, other = open_stream("connect-udp", "/")
report["other_protocol"] = other[":status"]
print(json.dumps(report))
"#;

/// Runs [`H2_WEBSOCKET_CLIENT`] through the rig's proxy against `host:port` and `path`,
/// quiet for `quiet` seconds mid-conversation; returns its report.
fn h2_websocket(
    python: &std::path::Path,
    rig: &Rig,
    host: &str,
    port: u16,
    path: &str,
    quiet: f64,
) -> Value {
    let client = rig.home.path().join("h2ws.py");
    std::fs::write(&client, H2_WEBSOCKET_CLIENT).unwrap();
    let out = Command::new(python)
        .arg(&client)
        .arg(rig.proxy_url())
        .arg(&rig.ca)
        .arg(host)
        .arg(port.to_string())
        .arg(path)
        .arg(quiet.to_string())
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn websockets_over_http2_extended_connect() {
    let python = venv_python();
    let (echo, echo_ca) = EchoServer::start(&python);
    // A quiet WebSocket outlasts the tunnel's idle limit: an open one is not an idle tunnel.
    let rig = Rig::start_with_env(
        true,
        Upstream::start_on("127.0.0.2"),
        &[&echo_ca],
        &[("AGENT_VAULT_TUNNEL_IDLE_TIMEOUT", "1")],
    );
    rig.add_services(&format!(
        r#"services:
  - host: 127.0.0.2
    port: {wss}
    auth: {{type: bearer, token: BEARER_TOKEN}}
    scrub_responses: false
    substitutions:
      - placeholder: __ws_token__
        key: SUB_KEY
        in: [ws]
"#,
        wss = echo.wss
    ));
    let seen = h2_websocket(&python, &rig, "127.0.0.2", echo.wss, "/h2/chat", 2.5);
    assert_eq!(
        seen["connect_protocol"], true,
        "SETTINGS_ENABLE_CONNECT_PROTOCOL: {seen}"
    );
    assert_eq!(seen["status"], "200", "{seen}");
    assert_eq!(seen["accept_header"], false, "{seen}");
    // The upstream saw an HTTP/1.1 upgrade with the vault's credential, not the placeholder.
    assert_credentialed_conversation(&seen, "/h2/chat");
    assert_eq!(seen["pong"], true, "after a quiet spell: {seen}");
    assert_eq!(seen["close"], 8, "the close frame comes back: {seen}");
    assert_eq!(seen["other_protocol"], "400", "{seen}");
}

/// An upstream that answers an HTTP/2 agent's WebSocket with a `101` whose
/// `Sec-WebSocket-Accept` does not match the broker's key: the agent gets a 502, as its own
/// HTTP/1.1 client would have refused the upgrade.
#[test]
fn a_wrong_websocket_accept_is_a_502_for_http2_agents() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let python = venv_python();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint();
    let port = cert.serve(&runtime, &[b"http/1.1"], |mut tls| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = tls.read(&mut buf).await {
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                              Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBhbnN3ZXI=\r\n\r\n";
                let _ = tls.write_all(answer.as_bytes()).await;
                head.clear();
            }
        }
    });
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &cert.ca_pem).unwrap();
    let rig = Rig::start_trusting(true, Upstream::start(), &[ca_file.path()]);
    let seen = h2_websocket(&python, &rig, "127.0.0.1", port, "/", 0.0);
    assert_eq!(seen["connect_protocol"], true, "{seen}");
    assert_eq!(seen["status"], "502", "{seen}");
}

/// A git smart-HTTP server over TLS (`git http-backend` behind a small Python server) that
/// requires one basic-auth pair and answers 401 to anything else.
const GIT_SERVER: &str = r#"
import base64, http.server, os, ssl, subprocess, sys
root, cert, key, user, password = sys.argv[1:6]
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def serve(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   REQUEST_METHOD=self.command, PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), REMOTE_USER=user,
                   CONTENT_LENGTH=str(len(body)),
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode().partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)

    do_GET = do_POST = serve

server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn git_clone_and_push_over_https_with_injected_basic_auth() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    let path = |n: &str| work.path().join(n);
    let cert = crate::upstream::TestCert::mint();
    std::fs::write(path("ca.pem"), &cert.ca_pem).unwrap();
    std::fs::write(path("leaf.pem"), &cert.leaf_pem).unwrap();
    std::fs::write(path("leaf.key"), &cert.key_pem).unwrap();
    std::fs::write(path("server.py"), GIT_SERVER).unwrap();
    let git = |dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Agent",
                "-c",
                "user.email=agent@example.com",
            ])
            .args(args)
            .current_dir(dir)
            .env("HOME", work.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The served repository: a bare repo with one commit holding a 3 MiB file.
    std::fs::create_dir(path("seed")).unwrap();
    git(&path("seed"), &["init", "-q", "-b", "main"], &[]);
    let noise: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path("seed/blob.bin"), noise).unwrap();
    git(&path("seed"), &["add", "."], &[]);
    git(&path("seed"), &["commit", "-q", "-m", "seed"], &[]);
    git(
        work.path(),
        &["clone", "-q", "--bare", "seed", "srv/repo.git"],
        &[],
    );
    git(
        &path("srv/repo.git"),
        &["config", "http.receivepack", "true"],
        &[],
    );

    let mut server = Command::new("python3")
        .arg(path("server.py"))
        .arg(path("srv"))
        .arg(path("leaf.pem"))
        .arg(path("leaf.key"))
        .args(["SENTINEL-git-user", "SENTINEL-git-pass"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = crate::harness::KillOnDrop(server);
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("git server: {line:?}"));

    let rig = Rig::start_trusting(true, Upstream::start(), &[&path("ca.pem")]);
    rig.home
        .run(&[
            "vault",
            "credential",
            "set",
            "GIT_USER=SENTINEL-git-user",
            "GIT_PASS=SENTINEL-git-pass",
        ])
        .ok();
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.2\n    port: {port}\n    auth: {{type: basic, username: GIT_USER, password: GIT_PASS}}\n"
    ));
    let ca = rig.ca.display().to_string();
    let proxy = rig.proxy_url();
    let through = [
        ("HTTPS_PROXY", proxy.as_str()),
        ("GIT_SSL_CAINFO", ca.as_str()),
    ];
    let url = format!("https://127.0.0.2:{port}/repo.git");
    git(work.path(), &["clone", "-q", &url, "clone"], &through);
    assert_eq!(
        std::fs::metadata(path("clone/blob.bin")).unwrap().len(),
        3 * 1024 * 1024
    );
    std::fs::write(path("clone/pushed.txt"), "from the agent\n").unwrap();
    git(&path("clone"), &["add", "pushed.txt"], &[]);
    git(
        &path("clone"),
        &["commit", "-q", "-m", "pushed through the broker"],
        &[],
    );
    git(
        &path("clone"),
        &[
            "-c",
            "http.postBuffer=104857600",
            "push",
            "-q",
            "origin",
            "main",
        ],
        &through,
    );
    let log = git(&path("srv/repo.git"), &["log", "--format=%s", "main"], &[]);
    assert_eq!(
        log.lines().next(),
        Some("pushed through the broker"),
        "{log}"
    );
    // Without the broker the server refuses: the credential came from the vault alone.
    let refused = Command::new("git")
        .args(["ls-remote", &url])
        .env("HOME", work.path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSL_CAINFO", path("ca.pem"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// An HTTP/2 upstream (Python `h2`) that answers any request with a GOAWAY whose debug data
/// is the request's `Authorization`. Prints its port.
const GOAWAY_SERVER: &str = r#"
import socket, ssl, sys, threading
import h2.config, h2.connection, h2.errors, h2.events

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.set_alpn_protocols(["h2"])
listener = socket.create_server(("127.0.0.2", 0))
print(listener.getsockname()[1], flush=True)

def serve(raw):
    with ctx.wrap_socket(raw, server_side=True) as tls:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        while data := tls.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    auth = dict(event.headers).get(b"authorization", b"")
                    conn.close_connection(h2.errors.ErrorCodes.PROTOCOL_ERROR, auth, 0)
            tls.sendall(conn.data_to_send())

while True:
    raw, _ = listener.accept()
    threading.Thread(target=serve, args=(raw,), daemon=True).start()
"#;

#[test]
fn an_upstream_error_that_quotes_the_credential_is_scrubbed() {
    use std::io::BufRead;
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let cert = crate::upstream::TestCert::mint();
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("ca.pem"), &cert.ca_pem).unwrap();
    std::fs::write(path("leaf.pem"), &cert.leaf_pem).unwrap();
    std::fs::write(path("leaf.key"), &cert.key_pem).unwrap();
    std::fs::write(path("server.py"), GOAWAY_SERVER).unwrap();
    let mut server = Command::new(python)
        .args([path("server.py"), path("leaf.pem"), path("leaf.key")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = crate::harness::KillOnDrop(server);
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    let rig = Rig::start_trusting(true, Upstream::start_on("127.0.0.2"), &[&path("ca.pem")]);
    rig.add_services(&format!(
        r#"services:
  - host: 127.0.0.2
    port: {port}
    path: /scrubbed
    auth: {{type: bearer, token: BEARER_TOKEN}}
  - host: 127.0.0.2
    port: {port}
    path: /raw
    scrub_responses: false
    auth: {{type: bearer, token: BEARER_TOKEN}}
"#
    ));
    let (status, body, _) = rig.curl(&[], &format!("https://127.0.0.2:{port}/scrubbed"));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(MARKER) && !body.contains(BEARER), "{body}");
    // Opted out, the same error shows the upstream did quote the value.
    let (status, body, _) = rig.curl(&[], &format!("https://127.0.0.2:{port}/raw"));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(BEARER), "{body}");
    // Not in the server's log either, at debug level (the rig's): the libraries' debug lines,
    // where h2 prints a GOAWAY's debug data, are left out.
    let (_, log) = rig.server.stop_with("TERM");
    assert!(!log.contains(BEARER), "{log}");
}

/// A rig whose broker (with `env`) trusts `cert`'s CA and injects the bearer token for the
/// raw upstream on `port`; the CA file is returned to live as long as the rig.
fn rig_for_raw_upstream(
    cert: &crate::upstream::TestCert,
    port: u16,
    env: &[(&str, &str)],
) -> (Rig, tempfile::NamedTempFile) {
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &cert.ca_pem).unwrap();
    let rig = Rig::start_with_env(true, Upstream::start(), &[ca_file.path()], env);
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.1\n    port: {port}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n"
    ));
    (rig, ca_file)
}

/// A request head read by an upstream the test runs.
struct Head(String);

impl Head {
    /// Reads up to the blank line; `None` if the peer stops first.
    async fn read<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Self> {
        use tokio::io::AsyncReadExt;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(n @ 1..) => head.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
        Some(Self(String::from_utf8_lossy(&head).into_owned()))
    }

    fn path(&self) -> &str {
        self.0.split_whitespace().nth(1).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.0.lines().find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// An upstream's `101` to a WebSocket upgrade that sent `key`.
fn switching_protocols(key: Option<&str>) -> Vec<u8> {
    use base64::Engine;
    use sha1::Digest;
    let digest = sha1::Sha1::digest(format!(
        "{}258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
        key.unwrap_or_default()
    ));
    let accept = base64::engine::general_purpose::STANDARD.encode(digest);
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// What the broken upstream of the next test answers on each path.
fn broken_answer(path: &str, websocket_key: Option<&str>) -> Vec<u8> {
    match path {
        "/status" => b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
        "/header" => b"HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n".to_vec(),
        "/huge-head" => {
            format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes()
        }
        "/ws" => {
            let mut answer = switching_protocols(websocket_key);
            // A text frame claiming 2^64 - 1 bytes, the credential in what follows.
            answer.extend_from_slice(&[0x81, 127]);
            answer.extend_from_slice(&u64::MAX.to_be_bytes());
            answer.extend_from_slice(format!("{BEARER} and more").as_bytes());
            answer
        }
        // "/close" and anything else: hung up on without a word.
        _ => Vec::new(),
    }
}

#[test]
fn a_broken_upstream_gets_a_clear_502_and_cannot_stop_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint();
    let port = cert.serve(&runtime, &[b"http/1.1"], |mut tls| async move {
        let Some(head) = Head::read(&mut tls).await else {
            return;
        };
        let answer = broken_answer(head.path(), head.header("sec-websocket-key"));
        let _ = tls.write_all(&answer).await;
        let _ = tls.shutdown().await;
    });
    let (rig, _ca_file) = rig_for_raw_upstream(&cert, port, &[]);

    for (path, reason) in [
        ("/status", "invalid HTTP status-code"),
        ("/header", "invalid HTTP header"),
        ("/huge-head", "message head is too large"),
        ("/close", "connection closed before message completed"),
    ] {
        let (status, body, _) = rig.curl(&[], &format!("https://127.0.0.1:{port}{path}"));
        assert_eq!(status, 502, "{path}: {body}");
        let error: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(error["error"], "upstream_error", "{path}: {body}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(reason), "{path}: {message}");
    }

    // A WebSocket whose upstream claims an impossible frame length: the agent gets nothing
    // unscanned, and the relay ends.
    let received = runtime.block_on(async {
        let mut tls = tunnel(&rig, "127.0.0.1", port, &[b"http/1.1"]).await;
        tls.write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut received = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tls.read_to_end(&mut received),
        )
        .await;
        assert!(read.is_ok(), "the relay did not end");
        String::from_utf8_lossy(&received).into_owned()
    });
    assert!(received.starts_with("HTTP/1.1 101"), "{received}");
    assert!(!received.contains(BEARER), "{received}");

    // Still serving, and nothing above panicked.
    assert_eq!(rig.echo(&[], "/echo")["method"], "GET");
    let (_, log) = rig.server.stop_with("TERM");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// PROXY's ceiling on requests in flight counts a streaming response until it ends, but a
/// WebSocket only until its handshake: an agent's open socket does not stall its requests.
#[test]
fn an_open_websocket_does_not_hold_a_proxy_concurrency_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint();
    let port = cert.serve(&runtime, &[b"http/1.1"], |mut tls| async move {
        let Some(head) = Head::read(&mut tls).await else {
            return;
        };
        let answer = match head.path() {
            "/ws" => switching_protocols(head.header("sec-websocket-key")),
            "/stream" => {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n".to_vec()
            }
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_vec(),
        };
        let _ = tls.write_all(&answer).await;
        // Held open until the broker hangs up.
        let mut rest = [0u8; 1024];
        while let Ok(1..) = tls.read(&mut rest).await {}
    });
    let one = [("AGENT_VAULT_RATELIMIT_PROXY_CONCURRENCY", "1")];
    let (rig, _ca_file) = rig_for_raw_upstream(&cert, port, &one);
    let url = format!("https://127.0.0.1:{port}/plain");
    // Sends `request` on a tunnel of its own and reads the answer's head.
    let open = |request: String| {
        runtime.block_on(async {
            let mut tls = tunnel(&rig, "127.0.0.1", port, &[b"http/1.1"]).await;
            tls.write_all(request.as_bytes()).await.unwrap();
            let head = Head::read(&mut tls).await.expect("an answer");
            (tls, head.0)
        })
    };
    let host = format!("Host: 127.0.0.1:{port}");

    // A response still streaming holds the one slot: the next request is refused.
    let (stream, head) = open(format!("GET /stream HTTP/1.1\r\n{host}\r\n\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, body, _) = rig.curl(&[], &url);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too_many_requests"), "{body}");
    drop(stream);

    // An open WebSocket does not.
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\n{host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let (socket, head) = open(upgrade);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for _ in 0..2 {
        let (status, body, _) = rig.curl(&[], &url);
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    drop(socket);
}

#[test]
fn a_reflection_compressed_against_the_brokers_ask_is_decoded_and_scrubbed() {
    use std::io::Write;
    use tokio::io::AsyncWriteExt;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint();
    // Compresses its echo of the request's Authorization whatever Accept-Encoding says.
    let port = cert.serve(&runtime, &[b"http/1.1"], |mut tls| async move {
        let Some(head) = Head::read(&mut tls).await else {
            return;
        };
        let header = |name| head.header(name).unwrap_or_default();
        let echo = format!(
            r#"{{"authorization":"{}","accept-encoding":"{}"}}"#,
            header("authorization"),
            header("accept-encoding")
        );
        let gzip = |data: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        if head.path() == "/te-gzip" {
            // Compressed as a transfer coding: hyper takes off only the chunking.
            let body = gzip(echo.as_bytes());
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n{:x}\r\n",
                body.len()
            );
            let _ = tls
                .write_all(&[answer.as_bytes(), &body, b"\r\n0\r\n\r\n"].concat())
                .await;
            let _ = tls.shutdown().await;
            return;
        }
        if let Some(ending) = head.path().strip_prefix("/te-gzip-") {
            // Without chunked the body ends where the connection does: with TLS's
            // close_notify (`close`), or cut without one (`cut`).
            let body = gzip(echo.as_bytes());
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip\r\n\r\n";
            let _ = tls.write_all(&[answer.as_bytes(), &body].concat()).await;
            if ending == "close" {
                let _ = tls.shutdown().await;
            } else {
                let _ = tls.flush().await;
            }
            return;
        }
        let (coding, body) = match head.path() {
            "/gzip" => ("gzip", gzip(echo.as_bytes())),
            // Compressed twice, each coding on a line of its own.
            "/twice" => (
                "gzip\r\ncontent-encoding: gzip",
                gzip(&gzip(echo.as_bytes())),
            ),
            _ => ("br", b"\x1b\x00\x00 not really brotli".to_vec()),
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: {coding}\r\netag: \"v1\"\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = tls.write_all(&[answer.as_bytes(), &body].concat()).await;
        let _ = tls.shutdown().await;
    });
    let (rig, _ca_file) = rig_for_raw_upstream(&cert, port, &[]);

    // curl without --compressed: what it prints is what the broker sent.
    let (status, body, head) = rig.curl(&[], &format!("https://127.0.0.1:{port}/gzip"));
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(echo["authorization"], format!("Bearer {MARKER}"), "{body}");
    assert_eq!(
        echo["accept-encoding"], "identity",
        "what the broker asked for"
    );
    assert!(
        !body.contains(BEARER) && !head.contains(BEARER),
        "{head}{body}"
    );
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(
        head.contains("etag: w/\"v1\""),
        "a decoded body's validator is weak: {head}"
    );
    // A HEAD gets the head the GET would: decoded, of no stated length.
    let (status, _, head) = rig.curl(&["-I"], &format!("https://127.0.0.1:{port}/gzip"));
    assert_eq!(status, 200, "{head}");
    assert!(
        !head.contains("content-encoding") && !head.contains("content-length"),
        "{head}"
    );
    assert!(head.contains("etag: w/\"v1\""), "{head}");

    // Compressed as a transfer coding (`gzip, chunked`): decoded and scrubbed the same way.
    let (status, body, head) = rig.curl(&[], &format!("https://127.0.0.1:{port}/te-gzip"));
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(echo["authorization"], format!("Bearer {MARKER}"), "{body}");
    assert!(!head.contains("encoding: gzip"), "{head}");
    let (status, body, head) = rig.curl(&[], &format!("https://127.0.0.1:{port}/te-gzip-close"));
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(echo["authorization"], format!("Bearer {MARKER}"), "{body}");
    assert!(!head.contains("encoding: gzip"), "{head}");
    // Cut without close_notify, the body may be short: the agent sees an error, not an end.
    for version in ["--http1.1", "--http2"] {
        let cut = std::process::Command::new("curl")
            .args(["-sS", version, "--cacert"])
            .arg(&rig.ca)
            .arg(format!("https://127.0.0.1:{port}/te-gzip-cut"))
            .env_clear()
            .env("HTTPS_PROXY", rig.proxy_url())
            .output()
            .unwrap();
        // curl's 18 (HTTP/1.1 chunks cut short) or 92 (an HTTP/2 stream reset).
        assert!(
            matches!(cut.status.code(), Some(18 | 92)),
            "{version}: {cut:?}"
        );
        assert!(!String::from_utf8_lossy(&cut.stdout).contains(BEARER));
    }

    for (path, named) in [("/br", "(br)"), ("/twice", "(several codings)")] {
        let (status, body, _) = rig.curl(&[], &format!("https://127.0.0.1:{port}{path}"));
        assert_eq!(status, 502, "{path}: {body}");
        assert!(
            body.contains(named) && !body.contains(BEARER),
            "{path}: {body}"
        );
    }
}
