// Benchmark code stops on the first surprise.
#![allow(clippy::unwrap_used)]

//! What the rate limiter costs on the proxy hot path. Two release servers side by side, one
//! with `AGENT_VAULT_RATELIMIT_PROFILE=off` (no limiter: the before) and one with every
//! limit set far above the offered load (PROXY and GLOBAL run on every request and refuse
//! nothing: the after). 32 keep-alive clients send plain-HTTP requests through the forward
//! proxy to a local upstream, one vault token (one PROXY key, the worst case for contention on
//! a key); rounds alternate between the servers and the median of each is printed.
//!
//! Then the limiter alone, in process: the time one request spends in PROXY and GLOBAL
//! (check, slot, release) with the same limits, against the time the proxy spends per request.
//!
//! Needs nothing but this repository: the upstream is the e2e suite's. Prints; asserts
//! nothing, except that the limited server refused nothing.

#[path = "../tests/e2e/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agent-vault");
const CLIENTS: usize = 32;
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    mitm: u16,
    token: String,
    _home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &[(&str, &str)]) -> Server {
    let home = tempfile::tempdir().unwrap();
    let mitm = free_port();
    let mut child = Command::new(BIN)
        .args(["server", "--port", "0", "--mitm-port", &mitm.to_string()])
        .env_clear()
        .env("HOME", home.path())
        .env("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8")
        .envs(env.iter().copied())
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
    let api = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let post = |path: &str, token: Option<&str>, body: Value| -> Value {
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
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = post("/v1/sessions", Some(&owner), json!({"vault": "default"}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    Server {
        child,
        mitm,
        token,
        _home: home,
    }
}

/// Requests per second over one round, and how many were refused with 429.
async fn round(server: &Server, target: &str) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ROUND;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let proxy = reqwest::Proxy::http(format!("http://127.0.0.1:{}", server.mitm))
            .unwrap()
            .basic_auth(&server.token, "default");
        let client = reqwest::Client::builder().proxy(proxy).build().unwrap();
        let (done, refused, target) = (done.clone(), refused.clone(), target.to_owned());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let response = client.get(&target).send().await.unwrap();
                if response.status() == 429 {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                response.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (rate, refused.load(Ordering::Relaxed))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let upstream = upstream::Upstream::start();
    let target = format!("http://127.0.0.1:{}/plain", upstream.http_port);
    let off = start(&[("AGENT_VAULT_RATELIMIT_PROFILE", "off")]);
    let on = start(&[
        ("AGENT_VAULT_RATELIMIT_PROXY_RATE", "1000000"),
        ("AGENT_VAULT_RATELIMIT_PROXY_BURST", "1000000"),
        ("AGENT_VAULT_RATELIMIT_PROXY_CONCURRENCY", "10000"),
        ("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "10000"),
    ]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Warm both (connections, caches) before measuring.
    runtime.block_on(async {
        let warm = Duration::from_secs(1);
        let _ = tokio::time::timeout(warm * 3, round(&off, &target)).await;
        let _ = tokio::time::timeout(warm * 3, round(&on, &target)).await;
    });
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut refused_total = 0;
    for _ in 0..ROUNDS {
        let (rate, _) = runtime.block_on(round(&off, &target));
        before.push(rate);
        let (rate, refused) = runtime.block_on(round(&on, &target));
        after.push(rate);
        refused_total += refused;
    }
    assert_eq!(
        refused_total, 0,
        "limits above the load must refuse nothing"
    );
    let (b, a) = (median(before.clone()), median(after.clone()));
    println!(
        "proxy hot path, {CLIENTS} keep-alive clients, plain HTTP through the forward proxy, {ROUNDS} rounds of {} s (median req/s)",
        ROUND.as_secs()
    );
    println!("| limiter | req/s | rounds |");
    println!("|---|---:|---|");
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("| off (before) | {b:.0} | {} |", list(&before));
    println!(
        "| on, limits above the load (after) | {a:.0} | {} |",
        list(&after)
    );
    println!("change: {:+.1}%", (a - b) / b * 100.0);

    // The limiter alone: what one proxied request pays in it.
    let env = agent_vault::limits::EnvLayer::from_vars(
        [
            ("AGENT_VAULT_RATELIMIT_PROXY_RATE", "1000000"),
            ("AGENT_VAULT_RATELIMIT_PROXY_BURST", "1000000"),
            ("AGENT_VAULT_RATELIMIT_PROXY_CONCURRENCY", "10000"),
            ("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "10000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let limits = agent_vault::limits::Limits::new(env, &Default::default()).0;
    const CALLS: u32 = 1_000_000;
    let per_call = runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..CALLS {
            let admitted = limits
                .proxy("token:0123456789abcdef0123/vault-id", "user:user-id")
                .await
                .unwrap();
            let global = limits.global_proxy().await.unwrap();
            drop((admitted, global));
        }
        started.elapsed() / CALLS
    });
    let per_request = Duration::from_secs_f64(1.0 / b);
    println!(
        "limiter per request (PROXY check + slot, the person's slot, GLOBAL slot, in process): {} ns; the proxy's wall time per request at {b:.0} req/s: {} ns ({:.2}%)",
        per_call.as_nanos(),
        per_request.as_nanos(),
        per_call.as_secs_f64() / per_request.as_secs_f64() * 100.0
    );
}
