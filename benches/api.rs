// Benchmark code stops on the first surprise.
#![allow(clippy::unwrap_used)]

//! Management-API benchmarks against the real release binary, with the full Argon2id
//! parameters: start-up and unlock, login, and authenticated request latency/throughput.
//! Run with `just bench` (or `cargo bench --bench api`). Prints figures; asserts nothing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agent-vault");
const MASTER: &str = "bench-master-password";

fn start(home: &std::path::Path) -> (Child, String, Duration) {
    let began = Instant::now();
    let mut child = Command::new(BIN)
        .args(["server", "--port", "0", "--mitm-port", "0"])
        .env_clear()
        .env("HOME", home)
        .env("AGENT_VAULT_MASTER_PASSWORD", MASTER)
        // One client sends every call: budgets far above the load, so none is refused.
        .env("AGENT_VAULT_RATELIMIT_AUTHED_RATE", "1000000")
        .env("AGENT_VAULT_RATELIMIT_AUTHED_BURST", "1000000")
        .env("AGENT_VAULT_RATELIMIT_AUTH_MAX", "100000")
        .env("AGENT_VAULT_RATELIMIT_GLOBAL_RATE", "1000000")
        .env("AGENT_VAULT_RATELIMIT_GLOBAL_BURST", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server exited").expect("read");
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
    };
    let elapsed = began.elapsed();
    std::thread::spawn(move || for _ in lines {});
    (child, url, elapsed)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let home = tempfile::tempdir().expect("temp dir");
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let (child, _, first_start) = start(home.path());
    stop(child);
    let (child, url, unlock_start) = start(home.path());
    println!("server first start (DEK + Argon2id KEK): {first_start:?}");
    println!("server restart (Argon2id unlock):        {unlock_start:?}");

    let body = serde_json::json!({ "email": "bench@example.com", "password": "bench-password" });
    let reply: serde_json::Value = http
        .post(format!("{url}/v1/auth/register"))
        .json(&body)
        .send()
        .and_then(|r| r.json())
        .expect("register");
    let token = reply["token"].as_str().expect("token").to_owned();

    let mut logins = Vec::new();
    for _ in 0..5 {
        let began = Instant::now();
        let status = http
            .post(format!("{url}/v1/auth/login"))
            .json(&body)
            .send()
            .expect("login")
            .status();
        assert!(status.is_success());
        logins.push(began.elapsed());
    }
    logins.sort();
    println!("login (Argon2id verify), median of 5:    {:?}", logins[2]);

    let me = format!("{url}/v1/auth/me");
    let mut samples = Vec::with_capacity(2000);
    let began = Instant::now();
    for _ in 0..2000 {
        let t = Instant::now();
        let status = http
            .get(&me)
            .bearer_auth(&token)
            .send()
            .expect("me")
            .status();
        assert!(status.is_success());
        samples.push(t.elapsed());
    }
    let total = began.elapsed();
    samples.sort();
    println!(
        "GET /v1/auth/me sequential, 2000 req:     p50 {:?}  p99 {:?}  {:.0} req/s",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        2000.0 / total.as_secs_f64()
    );

    let threads = 8;
    let per_thread = 1000;
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (http, me, token) = (http.clone(), me.clone(), token.clone());
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    let status = http
                        .get(&me)
                        .bearer_auth(&token)
                        .send()
                        .expect("me")
                        .status();
                    assert!(status.is_success());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let total = began.elapsed();
    println!(
        "GET /v1/auth/me, {threads} concurrent clients:     {:.0} req/s",
        (threads * per_thread) as f64 / total.as_secs_f64()
    );
    stop(child);
}
