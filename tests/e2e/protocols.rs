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
