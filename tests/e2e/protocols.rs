//! The protocols agents speak, through the real broker to real servers the test runs:
//! HTTP/2 and HTTP/1.1 in every combination (curl against Debian's nginx), trailers,
//! WebSockets, the official Anthropic and OpenAI SDKs, server-sent events and git.

use std::process::Command;

use serde_json::Value;

use crate::broker::{BEARER, Rig};
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

#[test]
fn http2_and_http1_both_ways_to_nginx() {
    let nginx = Nginx::start("127.0.0.1", 1);
    let rig = Rig::start_trusting(true, Upstream::start(), &[&nginx.ca_file]);
    rig.add_services(&format!(
        "services:\n  - host: 127.0.0.1\n    port: {}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n  - host: 127.0.0.1\n    port: {}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n",
        nginx.h2_port, nginx.h1_port
    ));
    for (port, upstream_proto) in [(nginx.h2_port, "HTTP/2.0"), (nginx.h1_port, "HTTP/1.1")] {
        for (flag, client_version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let url = format!("https://127.0.0.1:{port}/echo");
            let (status, version, body) = curl_version(&rig, flag, &url);
            assert_eq!(
                status,
                200,
                "{flag} to port {port}: {body}\n{}",
                nginx.error_log()
            );
            assert_eq!(version, client_version, "{flag} to port {port}");
            let echo: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                echo["proto"], upstream_proto,
                "{flag} to port {port}: {body}"
            );
            assert_eq!(echo["authorization"], format!("Bearer {BEARER}"), "{body}");
            assert_eq!(echo["host"], "127.0.0.1", "{body}");
        }
    }
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
        let request = http::Request::builder()
            .uri(format!(
                "https://{}:{}/trailers",
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
        assert_eq!(&collected.to_bytes()[..], b"payload");
    });
}
