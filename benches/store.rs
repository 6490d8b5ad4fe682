// Benchmark code stops on the first surprise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The broker on PostgreSQL vs on its SQLite file: the same release binary, the same local TLS
//! upstream, one row per back-end:
//!
//! - warm proxied requests per second through the explicit endpoint (16 concurrent clients,
//!   keep-alive, 5 s): the hot path reads no database, so the engines should tie;
//! - credential writes per second through the API (one client, 3 s): each write is a
//!   transaction (and, on PostgreSQL, a NOTIFY to the other replicas);
//! - a write followed at once by a proxied request that must see it (cold snapshot), per second;
//! - the replica's resident memory after all that;
//! - what a replica costs in memory: two replicas on one PostgreSQL database, each one's
//!   resident memory idle (started, nothing asked yet) and after a warm load spread over both
//!   (8 clients each, 5 s).
//!
//! PostgreSQL comes from Debian's `postgresql` package, started in a temporary directory like
//! the tests do. Prints; asserts nothing.

#[path = "../tests/e2e/upstream.rs"]
#[allow(dead_code)]
mod upstream;

#[path = "../src/store/testpg.rs"]
mod testpg;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agent-vault");
const CLIENTS: usize = 16;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(home: &Path, ca_file: &Path, database_url: Option<&str>) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["server", "--port", "0", "--mitm-port", "0"])
        .env_clear()
        .env("HOME", home)
        .env("SSL_CERT_FILE", ca_file)
        .env("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8")
        .env("AGENT_VAULT_INSECURE_TEST_KDF", "1")
        // The store is measured here, not the rate limiter (benches/ratelimit.rs does that).
        .env("AGENT_VAULT_RATELIMIT_PROFILE", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        cmd.env("AGENT_VAULT_DATABASE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

struct Row {
    engine: &'static str,
    warm_rps: f64,
    writes_per_s: f64,
    write_then_read_per_s: f64,
    rss_mib: f64,
}

async fn measure(
    engine: &'static str,
    upstream: &upstream::Upstream,
    database_url: Option<&str>,
) -> Row {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), &upstream.ca_file, database_url);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = server.url.clone();
    let session: Value = client
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "bench@example.com", "password": "bench-password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = session["token"].as_str().expect("a session").to_owned();
    let set = |value: String| {
        let (client, base, session) = (client.clone(), base.clone(), session.clone());
        async move {
            let r = client
                .post(format!("{base}/v1/vaults/default/credentials"))
                .bearer_auth(&session)
                .json(&json!({"credentials": {"BENCH_TOKEN": value}}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{:?}", r.text().await);
        }
    };
    set("bench-value-0".into()).await;
    let r = client
        .put(format!("{base}/v1/vaults/default/services"))
        .bearer_auth(&session)
        .json(&json!({"services": [{
            "host": "127.0.0.1", "port": upstream.https_port,
            "auth": {"type": "bearer", "token": "BENCH_TOKEN"}, "scrub_responses": false
        }]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let token: Value = client
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(&session)
        .json(&json!({"vault": "default", "role": "proxy"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a vault token").to_owned();
    let target = format!("{base}/proxy/127.0.0.1:{}/bench", upstream.https_port);
    let proxied = move |client: reqwest::Client| {
        let (target, token) = (target.clone(), token.clone());
        async move {
            let r = client
                .get(&target)
                .bearer_auth(&token)
                .header("X-Vault", "default")
                .send()
                .await
                .unwrap();
            let ok = r.status().is_success();
            let body = r.text().await.unwrap_or_default();
            (ok, body)
        }
    };
    assert!(
        proxied(client.clone()).await.0,
        "the proxied request failed"
    );

    // Warm: 16 clients for 5 s.
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, done, proxied) = (client.clone(), done.clone(), proxied.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    if proxied(client.clone()).await.0 {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let warm_rps = done.load(Ordering::Relaxed) as f64 / 5.0;

    // Writes: one client for 3 s.
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        set(format!("bench-value-{writes}")).await;
        writes += 1;
    }
    let writes_per_s = writes as f64 / started.elapsed().as_secs_f64();

    // A write, then a request that must carry the new value.
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        let value = format!("fresh-{rounds}");
        set(value.clone()).await;
        let (ok, body) = proxied(client.clone()).await;
        assert!(ok && body.contains(&value), "a stale value after a write");
        rounds += 1;
    }
    let write_then_read_per_s = rounds as f64 / started.elapsed().as_secs_f64();
    let rss = rss_mib(server.child.id());
    Row {
        engine,
        warm_rps,
        writes_per_s,
        write_then_read_per_s,
        rss_mib: rss,
    }
}

struct Replica {
    idle_mib: f64,
    loaded_mib: f64,
    rps: f64,
}

/// Two replicas on the database at `database_url`: resident memory idle and after a warm load.
async fn two_replicas(upstream: &upstream::Upstream, database_url: &str) -> Vec<Replica> {
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let servers: Vec<Server> = homes
        .iter()
        .map(|home| start(home.path(), &upstream.ca_file, Some(database_url)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<f64> = servers.iter().map(|s| rss_mib(s.child.id())).collect();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = servers[0].url.clone();
    let call = |method: reqwest::Method, path: &str, bearer: Option<&str>, body: Value| {
        let mut request = client.request(method, format!("{base}{path}")).json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "{:?}", response.status());
            response.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    use reqwest::Method;
    let session = call(
        Method::POST,
        "/v1/auth/register",
        None,
        json!({"email": "bench@example.com", "password": "bench-password-1"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        Method::POST,
        "/v1/vaults/default/credentials",
        Some(&session),
        json!({"credentials": {"BENCH_TOKEN": "bench-value"}}),
    )
    .await;
    call(
        Method::PUT,
        "/v1/vaults/default/services",
        Some(&session),
        json!({"services": [{
            "host": "127.0.0.1", "port": upstream.https_port,
            "auth": {"type": "bearer", "token": "BENCH_TOKEN"}, "scrub_responses": false
        }]}),
    )
    .await;
    let token = call(
        Method::POST,
        "/v1/sessions",
        Some(&session),
        json!({"vault": "default", "role": "proxy"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let until = Instant::now() + Duration::from_secs(5);
    let mut counters = Vec::new();
    let mut tasks = Vec::new();
    for server in &servers {
        let done = Arc::new(AtomicU64::new(0));
        counters.push(done.clone());
        let target = format!(
            "{}/proxy/127.0.0.1:{}/bench",
            server.url, upstream.https_port
        );
        for _ in 0..CLIENTS / 2 {
            let (client, done, target, token) =
                (client.clone(), done.clone(), target.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let r = client
                        .get(&target)
                        .bearer_auth(&token)
                        .header("X-Vault", "default")
                        .send()
                        .await;
                    if let Ok(r) = r
                        && r.status().is_success()
                        && r.bytes().await.is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    servers
        .iter()
        .zip(idle)
        .zip(counters)
        .map(|((server, idle_mib), done)| Replica {
            idle_mib,
            loaded_mib: rss_mib(server.child.id()),
            rps: done.load(Ordering::Relaxed) as f64 / 5.0,
        })
        .collect()
}

fn main() {
    let upstream = upstream::Upstream::start();
    let pg_url = testpg::fresh_database_url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        vec![
            measure("SQLite", &upstream, None).await,
            measure("PostgreSQL", &upstream, Some(&pg_url)).await,
        ]
    });
    let replicas_url = testpg::fresh_database_url();
    let replicas = runtime.block_on(two_replicas(&upstream, &replicas_url));
    println!();
    println!(
        "store bench (release binary, local TLS upstream, explicit endpoint, {CLIENTS} clients)"
    );
    println!(
        "{:<12} {:>14} {:>14} {:>18} {:>10}",
        "engine", "warm req/s", "writes/s", "write+read/s", "RSS MiB"
    );
    for r in rows {
        println!(
            "{:<12} {:>14.0} {:>14.0} {:>18.0} {:>10.1}",
            r.engine, r.warm_rps, r.writes_per_s, r.write_then_read_per_s, r.rss_mib
        );
    }
    println!();
    println!(
        "two replicas on one PostgreSQL database (RSS idle = started, no request yet; loaded = after {} clients each for 5 s)",
        CLIENTS / 2
    );
    println!(
        "{:<12} {:>14} {:>16} {:>14}",
        "replica", "idle RSS MiB", "loaded RSS MiB", "warm req/s"
    );
    for (name, r) in ["A", "B"].iter().zip(replicas) {
        println!(
            "{:<12} {:>14.1} {:>16.1} {:>14.0}",
            name, r.idle_mib, r.loaded_mib, r.rps
        );
    }
}
