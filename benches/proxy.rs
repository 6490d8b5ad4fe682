// Benchmark code stops on the first surprise.
#![allow(clippy::unwrap_used)]

//! Data-path benchmarks against the real release binary: latency and throughput of requests
//! through the MITM proxy (credential injected) compared with going to the upstream
//! directly, and streaming throughput. Run with `just bench`. Prints figures; asserts nothing.

#[path = "../tests/e2e/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_agent-vault");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(home: &std::path::Path, mitm: u16, ca_file: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["server", "--port", "0", "--mitm-port", &mitm.to_string()])
        .env_clear()
        .env("HOME", home)
        .env("SSL_CERT_FILE", ca_file)
        .env("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn measure(label: &str, client: &reqwest::blocking::Client, url: &str, n: usize) {
    let mut samples = Vec::with_capacity(n);
    let began = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let response = client.get(url).send().unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.bytes().unwrap();
        samples.push(t.elapsed());
    }
    let total = began.elapsed();
    samples.sort();
    let pick = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "{label:<44} p50 {:>9.1?}  p99 {:>9.1?}  {:>6.0} req/s",
        pick(0.5),
        pick(0.99),
        n as f64 / total.as_secs_f64()
    );
}

fn concurrent(
    label: &str,
    client: &reqwest::blocking::Client,
    url: &str,
    threads: usize,
    per: usize,
) {
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            std::thread::spawn(move || {
                for _ in 0..per {
                    let response = client.get(&url).send().unwrap();
                    assert!(response.status().is_success());
                    let _ = response.bytes().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!(
        "{label:<44} {:>6.0} req/s",
        (threads * per) as f64 / began.elapsed().as_secs_f64()
    );
}

fn stream(label: &str, client: &reqwest::blocking::Client, url: &str, bytes: usize) {
    let began = Instant::now();
    let mut response = client.get(url).send().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = response.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, bytes);
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{label:<44} {:>6.0} MiB/s",
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
}

fn main() {
    let upstream = upstream::Upstream::start();
    let home = tempfile::tempdir().unwrap();
    let mitm = free_port();
    let (mut child, url) = start_server(home.path(), mitm, &upstream.ca_file);
    let api = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| -> serde_json::Value {
        let mut request = api.post(format!("{url}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap().json().unwrap()
    };
    let owner = post(
        "/v1/auth/register",
        None,
        json!({"email": "bench@example.com", "password": "bench-password"}),
    );
    let owner = owner["token"].as_str().unwrap().to_owned();
    post(
        "/v1/vaults/default/credentials",
        Some(&owner),
        json!({"credentials": {"TOKEN": "bench-secret"}}),
    );
    post(
        "/v1/vaults/default/services",
        Some(&owner),
        json!({"services": [{"host": "127.0.0.1", "port": upstream.https_port, "auth": {"type": "bearer", "token": "TOKEN"}}]}),
    );
    let token = post("/v1/sessions", Some(&owner), json!({"vault": "default"}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca = api
        .get(format!("{url}/v1/mitm/ca.pem"))
        .send()
        .unwrap()
        .text()
        .unwrap();

    let direct = reqwest::blocking::Client::builder()
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&upstream.ca_file).unwrap()).unwrap(),
        )
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let proxied = reqwest::blocking::Client::builder()
        .proxy(
            reqwest::Proxy::https(format!("http://127.0.0.1:{mitm}"))
                .unwrap()
                .basic_auth(&token, "default"),
        )
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let target = format!("https://127.0.0.1:{}/echo", upstream.https_port);
    // Warm both paths (TLS sessions, leaf certificate, vault snapshot).
    for client in [&direct, &proxied] {
        client.get(&target).send().unwrap().bytes().unwrap();
    }
    measure(
        "direct to upstream, sequential (2000)",
        &direct,
        &target,
        2000,
    );
    measure(
        "through the broker, sequential (2000)",
        &proxied,
        &target,
        2000,
    );
    concurrent(
        "direct to upstream, 8 clients x 500",
        &direct,
        &target,
        8,
        500,
    );
    concurrent(
        "through the broker, 8 clients x 500",
        &proxied,
        &target,
        8,
        500,
    );
    let big = 1024 * 1024 * 1024;
    let big_url = format!("https://127.0.0.1:{}/big/{big}", upstream.https_port);
    stream("1 GiB download, direct", &direct, &big_url, big);
    stream(
        "1 GiB download, through the broker",
        &proxied,
        &big_url,
        big,
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or_default()
        .to_owned();
    println!(
        "broker peak memory after all runs: {}",
        peak.trim_start_matches("VmHWM:").trim()
    );
    let _ = child.kill();
    let _ = child.wait();
}
