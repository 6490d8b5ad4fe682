// Benchmark code stops on the first surprise.
#![allow(clippy::unwrap_used)]

//! Data-path benchmark: the real release binary against a direct connection to the same local
//! nginx (Debian's, TLS, HTTP/2 + HTTP/1.1), against mitmproxy with a header-injecting addon
//! and, for requests, against nginx itself as a TLS reverse proxy adding the header (the same two
//! TLS legs with none of the broker's checks: what this machine allows a proxy), printed side by
//! side in one table:
//!
//! - keep-alive requests per second (oha, 16 connections, 1 KiB responses), with and without
//!   response scrubbing;
//! - new CONNECT + TLS connections per second (oha without keep-alive);
//! - p50/p99 latency at a fixed 500 requests per second, after the first second (connection
//!   set-up);
//! - streaming throughput of a 256 MiB download (curl);
//! - WebSocket echo messages per second (64-byte text messages, pipelined);
//! - resident memory with 1,000 idle tunnels open.
//!
//! Needs `nginx` (nginx-light), `oha` and mitmproxy: `scripts/bench-setup.sh` installs them
//! (`just bench` runs it). A missing tool leaves its cells as `n/a`. Prints; asserts nothing.

#[path = "../tests/e2e/upstream.rs"]
#[allow(dead_code)]
mod upstream;

#[path = "../tests/e2e/nginx.rs"]
#[allow(dead_code)]
mod nginx;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_agent-vault");
const SECRET: &str = "bench-secret-value-0123456789";
/// Request rows: this many rounds of this long per route, taken in turn.
const ROUNDS: usize = 3;
const ROUND: &str = "5s";
const STREAM_BYTES: usize = 256 * 1024 * 1024;
const WS_MESSAGES: usize = 100_000;
const IDLE_TUNNELS: usize = 1000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn find_tool(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    extra.iter().cloned().chain(on_path).find(|p| p.is_file())
}

/// How a client reaches nginx: directly, through a forward proxy, or through a reverse proxy.
struct Route {
    label: &'static str,
    /// `http://host:port` of the proxy, and the `Proxy-Authorization` value if any.
    proxy: Option<(String, Option<String>)>,
    /// `https://host:port` of a reverse proxy the client asks instead of nginx.
    origin: Option<String>,
    /// The CA the client must trust for the TLS it sees.
    cacert: PathBuf,
    /// Path prefix on nginx (selects the service, hence scrubbing on or off).
    path: &'static str,
    /// The processes doing the proxy's work (for CPU; the first for memory).
    pids: Vec<u32>,
}

fn oha(oha: &Path, route: &Route, url: &str, extra: &[&str]) -> Option<Value> {
    let mut cmd = Command::new(oha);
    cmd.args(["--no-tui", "--output-format", "json", "-c", "16"])
        .args(extra)
        .arg("--cacert")
        .arg(&route.cacert);
    if let Some((proxy, auth)) = &route.proxy {
        cmd.args(["-x", proxy]);
        if let Some(auth) = auth {
            cmd.args(["--proxy-header", &format!("Proxy-Authorization: {auth}")]);
        }
    }
    let out = cmd.arg(url).env_remove("HTTPS_PROXY").output().ok()?;
    let report: Value = serde_json::from_slice(&out.stdout).ok()?;
    let ok = report["statusCodeDistribution"]["200"]
        .as_u64()
        .unwrap_or(0);
    let total: u64 = report["statusCodeDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    if ok == 0 || ok != total {
        eprintln!(
            "{}: oha {extra:?}: non-200 answers {}; errors {}",
            route.label, report["statusCodeDistribution"], report["errorDistribution"]
        );
    }
    Some(report)
}

/// p50 and p99 in ms of oha paced at 500 req/s, from each request's own record (oha's
/// `--db-url`) less those started in the first second. The 16 connections' TLS handshakes
/// queue behind one another there, tens of milliseconds, and in a 5 s round they alone would
/// set the p99 of what is meant to be keep-alive latency.
fn paced_latency(oha_bin: &Path, route: &Route, url: &str, dir: &Path) -> Option<(f64, f64)> {
    let db = dir.join("paced.db");
    let _ = std::fs::remove_file(&db);
    let db_arg = db.to_str()?;
    let args = [
        "-z",
        "6s",
        "-q",
        "500",
        "--latency-correction",
        "--db-url",
        db_arg,
    ];
    oha(oha_bin, route, url, &args)?;
    let conn = rusqlite::Connection::open(&db).ok()?;
    let mut query = conn
        .prepare("SELECT duration FROM oha WHERE start >= 1.0 ORDER BY duration")
        .ok()?;
    let ms: Vec<f64> = query
        .query_map([], |row| row.get::<_, f64>(0))
        .ok()?
        .filter_map(Result::ok)
        .map(|s| s * 1e3)
        .collect();
    let last = ms.len().checked_sub(1)?;
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(last)];
    Some((at(0.5), at(0.99)))
}

fn curl_speed(route: &Route, url: &str) -> Option<f64> {
    let mut best: Option<f64> = None;
    for _ in 0..3 {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{speed_download} %{size_download}",
        ])
        .arg("--cacert")
        .arg(&route.cacert);
        if let Some((proxy, auth)) = &route.proxy {
            cmd.args(["--proxy", proxy]);
            if let Some(auth) = auth {
                cmd.args(["--proxy-header", &format!("Proxy-Authorization: {auth}")]);
            }
        } else {
            cmd.args(["--noproxy", "*"]);
        }
        let out = cmd.arg(url).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (speed, size) = text.split_once(' ')?;
        if size.trim().parse::<usize>().ok()? != STREAM_BYTES {
            eprintln!("{}: streaming download incomplete: {text}", route.label);
            return None;
        }
        let speed: f64 = speed.trim().parse().ok()?;
        best = Some(best.map_or(speed, |b: f64| b.max(speed)));
    }
    best.map(|bytes| bytes / 1e6)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---- the agent-vault server ----

fn start_agent_vault(home: &Path, mitm: u16, ca_file: &Path) -> (Child, String) {
    let mut command = Command::new(BIN);
    command.env_clear();
    // The one setting passed through: to bench other worker counts than the default.
    if let Ok(workers) = std::env::var("AGENT_VAULT_WORKER_THREADS") {
        command.env("AGENT_VAULT_WORKER_THREADS", workers);
    }
    let mut child = command
        .args(["server", "--port", "0", "--mitm-port", &mitm.to_string()])
        .env("HOME", home)
        .env("SSL_CERT_FILE", ca_file)
        .env("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8")
        // One token sends all the load: its PROXY budget (100/s by default) would turn the
        // bench into a count of 429s. Far above the offered load, the limiter still runs on
        // every request and refuses nothing, as in the rate-limit bench.
        .env("AGENT_VAULT_RATELIMIT_PROXY_RATE", "1000000")
        .env("AGENT_VAULT_RATELIMIT_PROXY_BURST", "1000000")
        .env("AGENT_VAULT_RATELIMIT_PROXY_CONCURRENCY", "10000")
        .env("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "10000")
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

// ---- mitmproxy with a header-injecting addon ----

fn start_mitmproxy(
    mitmdump: &Path,
    dir: &Path,
    upstream_ca: &Path,
) -> Option<(Child, u16, PathBuf)> {
    let addon = dir.join("inject.py");
    std::fs::write(
        &addon,
        format!(
            "class Inject:\n    def request(self, flow):\n        flow.request.headers[\"Authorization\"] = \"Bearer {SECRET}\"\n\naddons = [Inject()]\n"
        ),
    )
    .ok()?;
    let port = free_port();
    let confdir = dir.join("mitmproxy");
    let log = std::fs::File::create(dir.join("mitmdump.log")).ok()?;
    let child = Command::new(mitmdump)
        .args([
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
        ])
        .args(["--set", "flow_detail=0"])
        .arg("--set")
        .arg(format!("confdir={}", confdir.display()))
        .arg("--set")
        .arg(format!(
            "ssl_verify_upstream_trusted_ca={}",
            upstream_ca.display()
        ))
        .arg("-s")
        .arg(&addon)
        .stdin(Stdio::null())
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .spawn()
        .ok()?;
    let ca = confdir.join("mitmproxy-ca-cert.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(ca.is_file() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        if Instant::now() > deadline {
            eprintln!("mitmproxy did not start");
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((child, port, ca))
}

// ---- WebSocket echo server and client ----

/// SHA-1, for `Sec-WebSocket-Accept` only (RFC 6455 mandates it).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

/// A TLS WebSocket echo server on 127.0.0.1; returns its port.
fn start_ws_echo(runtime: &tokio::runtime::Runtime, cert: &upstream::TestCert) -> u16 {
    cert.serve(runtime, &[], |mut tls| async move {
        let head = String::from_utf8_lossy(&read_head(&mut tls).await).into_owned();
        let Some(key) = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        }) else {
            return;
        };
        let accept = base64::engine::general_purpose::STANDARD.encode(sha1(
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        ));
        let reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        if tls.write_all(reply.as_bytes()).await.is_err() || tls.flush().await.is_err() {
            return;
        }
        let (mut read, mut write) = tokio::io::split(tls);
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            // Client frames: small, masked. Echo each unmasked.
            while buf.len() >= 6 {
                let len = (buf[1] & 0x7f) as usize;
                if len > 125 || buf.len() < 6 + len {
                    break;
                }
                let mask = [buf[2], buf[3], buf[4], buf[5]];
                if buf[0] & 0x0f == 8 {
                    return;
                }
                out.push(buf[0]);
                out.push(len as u8);
                out.extend(buf[6..6 + len].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
                buf.drain(..6 + len);
            }
            if !out.is_empty()
                && (write.write_all(&out).await.is_err() || write.flush().await.is_err())
            {
                return;
            }
        }
    })
}

/// Opens a TLS stream to 127.0.0.1:`port`, through `route`'s proxy if any.
async fn connect_tls(
    route: &Route,
    port: u16,
    alpn: &[u8],
    direct_ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tcp = match &route.proxy {
        None => tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap(),
        Some((proxy, auth)) => {
            let address = proxy.trim_start_matches("http://");
            let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
            let auth = auth
                .as_ref()
                .map(|a| format!("Proxy-Authorization: {a}\r\n"))
                .unwrap_or_default();
            tcp.write_all(
                format!(
                    "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let head = read_head(&mut tcp).await;
            assert!(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"));
            tcp
        }
    };
    tcp.set_nodelay(true).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca = if route.proxy.is_some() {
        route.cacert.as_path()
    } else {
        direct_ca
    };
    let pem = std::fs::read(ca).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let _ = &mut tcp;
    connector.connect(name, tcp).await.unwrap()
}

/// Echo messages per second over one WebSocket, `WS_MESSAGES` 64-byte text messages sent
/// while the echoes are read (pipelined).
async fn ws_rate(route: &Route, port: u16, direct_ca: &Path) -> Option<f64> {
    let mut tls = connect_tls(route, port, b"http/1.1", direct_ca).await;
    tls.write_all(
        format!(
            "GET {}/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            route.path
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let head = read_head(&mut tls).await;
    if !head.starts_with(b"HTTP/1.1 101") {
        let mut body = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), tls.read(&mut body))
            .await
            .map_or(0, |r| r.unwrap_or(0));
        eprintln!(
            "{}: WebSocket upgrade refused: {}{}",
            route.label,
            String::from_utf8_lossy(&head),
            String::from_utf8_lossy(&body[..n])
        );
        return None;
    }
    let (mut read, mut write) = tokio::io::split(tls);
    let payload = [b'm'; 64];
    let mut frame = vec![0x81, 0x80 | 64, 1, 2, 3, 4];
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
    );
    let began = Instant::now();
    let writer = tokio::spawn(async move {
        let batch: Vec<u8> = frame.repeat(100);
        for _ in 0..WS_MESSAGES / 100 {
            write.write_all(&batch).await.unwrap();
        }
        write.flush().await.unwrap();
        write
    });
    let expected = WS_MESSAGES * (2 + 64);
    let mut got = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while got < expected {
        let n = tokio::time::timeout(Duration::from_secs(20), read.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{}: WebSocket echo stalled after {got} bytes", route.label))
            .unwrap();
        assert!(n > 0, "{}: WebSocket closed early", route.label);
        got += n;
    }
    let rate = WS_MESSAGES as f64 / began.elapsed().as_secs_f64();
    let mut write = writer.await.unwrap();
    let _ = write.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await;
    let _ = write.flush().await;
    Some(rate)
}

/// Resident memory of the proxy (MiB) with `IDLE_TUNNELS` CONNECT + TLS tunnels open, and the
/// growth over the idle process.
async fn idle_tunnels(route: &Route, port: u16) -> Option<(f64, f64)> {
    let pid = *route.pids.first()?;
    let before = rss_kib(pid)?;
    let mut tunnels = Vec::with_capacity(IDLE_TUNNELS);
    for _ in 0..IDLE_TUNNELS {
        tunnels.push(connect_tls(route, port, b"http/1.1", &route.cacert).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    drop(tunnels);
    Some((
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0,
    ))
}

// ---- the table ----

struct Row {
    name: &'static str,
    cells: Vec<String>,
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds used by this process's waited-for children: the load generator's, measured
/// around each run (oha runs one at a time).
fn children_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |usage| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(usage.user_time()) + seconds(usage.system_time())
    })
}

fn ticks_per_second() -> f64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every mainstream architecture.
    100.0
}

fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.decimals$}"))
}

fn main() {
    // RFC 6455's example handshake.
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(sha1(
            b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        )),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let oha_bin = find_tool("oha", &[dirs_home().join(".cargo/bin/oha")]);
    let mitmdump = find_tool("mitmdump", &[manifest("target/bench-venv/bin/mitmdump")]);
    if nginx::binary().is_none() {
        eprintln!("proxy bench: nginx is not installed; run scripts/bench-setup.sh");
        return;
    }
    if oha_bin.is_none() {
        eprintln!(
            "proxy bench: oha not found; run scripts/bench-setup.sh (request rows will be n/a)"
        );
    }
    if mitmdump.is_none() {
        eprintln!(
            "proxy bench: mitmdump not found; run scripts/bench-setup.sh (mitmproxy column will be n/a)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let nginx = nginx::Nginx::start("127.0.0.1", 1);
    let www = nginx.www();
    std::fs::copy(www.join("1k"), www.join("1k-raw")).unwrap();
    {
        let mut big = std::fs::File::create(www.join("big")).unwrap();
        let block = vec![b'z'; 1024 * 1024];
        for _ in 0..STREAM_BYTES / block.len() {
            big.write_all(&block).unwrap();
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ws_cert = upstream::TestCert::mint();
    let ws_port = start_ws_echo(&runtime, &ws_cert);
    let ws_ca = dir.path().join("ws-ca.pem");
    std::fs::write(&ws_ca, &ws_cert.ca_pem).unwrap();
    let bundle = dir.path().join("upstream-cas.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(&nginx.ca_file).unwrap(),
            ws_cert.ca_pem
        ),
    )
    .unwrap();

    // nginx's HTTP/2 port by default (ALPN offers h2 and http/1.1; proxies take h2);
    // `AGENT_VAULT_BENCH_UPSTREAM=h1` uses its HTTP/1.1-only port.
    let upstream_port = if std::env::var("AGENT_VAULT_BENCH_UPSTREAM").is_ok_and(|v| v == "h1") {
        nginx.h1_port
    } else {
        nginx.h2_port
    };
    // agent-vault: a bearer service on nginx's port (scrubbing on for /1k and /big, off for
    // /1k-raw) and one on the WebSocket echo.
    let home = tempfile::tempdir().unwrap();
    let mitm = free_port();
    let (mut server, url) = start_agent_vault(home.path(), mitm, &bundle);
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
    );
    let owner = owner["token"].as_str().unwrap().to_owned();
    post(
        "/v1/vaults/default/credentials",
        Some(&owner),
        json!({"credentials": {"TOKEN": SECRET}}),
    );
    post(
        "/v1/vaults/default/services",
        Some(&owner),
        json!({"services": [
            {"host": "127.0.0.1", "port": upstream_port, "auth": {"type": "bearer", "token": "TOKEN"}},
            {"host": "127.0.0.1", "port": upstream_port, "path": "/1k-raw", "scrub_responses": false,
             "auth": {"type": "bearer", "token": "TOKEN"}},
            {"host": "127.0.0.1", "port": ws_port, "auth": {"type": "bearer", "token": "TOKEN"}},
        ]}),
    );
    let token = post("/v1/sessions", Some(&owner), json!({"vault": "default"}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let av_ca = dir.path().join("agent-vault-ca.pem");
    std::fs::write(
        &av_ca,
        api.get(format!("{url}/v1/mitm/ca.pem"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{token}:default"))
    );
    let mitmproxy = mitmdump
        .as_deref()
        .and_then(|m| start_mitmproxy(m, dir.path(), &bundle));
    // The reference for the data path's ceiling: nginx itself terminating TLS, adding the
    // header and originating TLS upstream, with as many workers as this machine has cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let reverse_proxy = nginx::Nginx::reverse_proxy(
        "127.0.0.1",
        cores,
        &nginx,
        ("Authorization", &format!("Bearer {SECRET}")),
    );

    let mut routes = vec![
        Route {
            label: "direct",
            proxy: None,
            origin: None,
            cacert: nginx.ca_file.clone(),
            path: "",
            pids: Vec::new(),
        },
        Route {
            label: "agent-vault",
            proxy: Some((format!("http://127.0.0.1:{mitm}"), Some(basic.clone()))),
            origin: None,
            cacert: av_ca.clone(),
            path: "",
            pids: vec![server.id()],
        },
        Route {
            label: "agent-vault, no scrub",
            proxy: Some((format!("http://127.0.0.1:{mitm}"), Some(basic))),
            origin: None,
            cacert: av_ca,
            path: "/1k-raw",
            pids: vec![server.id()],
        },
        Route {
            label: "nginx reverse proxy",
            proxy: None,
            origin: Some(format!("https://127.0.0.1:{}", reverse_proxy.h1_port)),
            cacert: reverse_proxy.ca_file.clone(),
            path: "",
            pids: reverse_proxy.worker_pids(),
        },
    ];
    if let Some((child, port, ca)) = &mitmproxy {
        routes.push(Route {
            label: "mitmproxy",
            proxy: Some((format!("http://127.0.0.1:{port}"), None)),
            origin: None,
            cacert: ca.clone(),
            path: "",
            pids: vec![child.id()],
        });
    }

    let h2 = upstream_port;
    let mut summary: Vec<String> = Vec::new();
    let file = |route: &Route| {
        let path = if route.path.is_empty() {
            "/1k"
        } else {
            route.path
        };
        match &route.origin {
            Some(origin) => format!("{origin}{path}"),
            None => format!("https://127.0.0.1:{h2}{path}"),
        }
    };
    let names = [
        "keep-alive req/s (16 conns, 1 KiB)",
        "  proxy CPU per request (us)",
        "  nginx CPU per request (us)",
        "  oha CPU per request (us)",
        "new CONNECT+TLS conns/s (16 at once)",
        "p50 at 500 req/s (ms)",
        "p99 at 500 req/s (ms)",
        "streaming 256 MiB (MB/s)",
        "WebSocket echo msgs/s (64 B)",
        "RSS, 1,000 idle tunnels (MiB)",
        "  growth over idle (MiB)",
    ];
    let mut rows: Vec<Row> = names
        .iter()
        .map(|name| Row {
            name,
            cells: vec!["n/a".into(); routes.len()],
        })
        .collect();
    // `AGENT_VAULT_BENCH_ONLY=keepalive`: just the first rows (for profiling a run with perf).
    let only_keepalive = std::env::var("AGENT_VAULT_BENCH_ONLY").is_ok_and(|v| v == "keepalive");
    // The other rows are about tunnels (CONNECT), which a reverse proxy does not make.
    let full = |route: &Route| {
        !route.label.contains("no scrub") && route.origin.is_none() && !only_keepalive
    };

    // One route at a time: memory first (on the fresh process), then connections, streaming
    // and WebSockets.
    for (i, route) in routes.iter().enumerate() {
        eprintln!(
            "proxy bench: {} (pid {})",
            route.label,
            route.pids.first().map_or("-".into(), |p| p.to_string())
        );
        if !full(route) {
            continue;
        }
        if let Some((total, growth)) = runtime.block_on(idle_tunnels(route, h2)) {
            rows[9].cells[i] = format!("{total:.1}");
            rows[10].cells[i] = format!("{growth:.1}");
        }
        let url = file(route);
        if let Some(report) = oha_bin
            .as_deref()
            .and_then(|o| oha(o, route, &url, &["-z", "5s", "--disable-keepalive"]))
        {
            rows[4].cells[i] = fmt(report["summary"]["requestsPerSec"].as_f64(), 0);
        }
        rows[7].cells[i] = fmt(curl_speed(route, &format!("https://127.0.0.1:{h2}/big")), 0);
        let ws = runtime.block_on(ws_rate(route, ws_port, &ws_ca));
        if ws.is_none() && route.label == "mitmproxy" {
            let log = std::fs::read_to_string(dir.path().join("mitmdump.log")).unwrap_or_default();
            eprintln!("mitmdump's log:\n{log}");
        }
        rows[8].cells[i] = fmt(ws, 0);
    }

    // Requests: rounds that take the routes in turn, medians reported, so a change in the
    // machine's background load hits every column alike.
    if let Some(oha_bin) = &oha_bin {
        for route in &routes {
            let _ = oha(oha_bin, route, &file(route), &["-z", "2s"]);
        }
        let mut rps = vec![Vec::new(); routes.len()];
        let mut cpu = vec![Vec::new(); routes.len()];
        let mut nginx_cpu = vec![Vec::new(); routes.len()];
        let mut oha_cpu = vec![Vec::new(); routes.len()];
        let workers = nginx.worker_pids();
        let nginx_ticks = || workers.iter().filter_map(|&p| cpu_ticks(p)).sum::<u64>();
        let mut p50 = vec![Vec::new(); routes.len()];
        let mut p99 = vec![Vec::new(); routes.len()];
        for round in 0..ROUNDS {
            eprintln!("proxy bench: request round {}/{ROUNDS}", round + 1);
            for (i, route) in routes.iter().enumerate() {
                let proxy_ticks = || {
                    let ticks = route.pids.iter().map(|&p| cpu_ticks(p));
                    ticks
                        .sum::<Option<u64>>()
                        .filter(|_| !route.pids.is_empty())
                };
                let before = proxy_ticks();
                let (nginx_before, oha_before) = (nginx_ticks(), children_cpu_seconds());
                let report = oha(oha_bin, route, &file(route), &["-z", ROUND]);
                let after = proxy_ticks();
                let (nginx_after, oha_after) = (nginx_ticks(), children_cpu_seconds());
                if let Some(report) = report {
                    let rate = report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0);
                    let total = report["summary"]["total"].as_f64().unwrap_or(0.0) * rate;
                    rps[i].push(rate);
                    if total > 0.0 {
                        let per_request =
                            |ticks: u64| ticks as f64 * 1e6 / ticks_per_second() / total;
                        if let (Some(b), Some(a)) = (before, after) {
                            cpu[i].push(per_request(a - b));
                        }
                        nginx_cpu[i].push(per_request(nginx_after - nginx_before));
                        oha_cpu[i].push((oha_after - oha_before) * 1e6 / total);
                    }
                }
                if only_keepalive {
                    continue;
                }
                if let Some((median, tail)) =
                    paced_latency(oha_bin, route, &file(route), dir.path())
                {
                    p50[i].push(median);
                    p99[i].push(tail);
                }
            }
        }
        for i in 0..routes.len() {
            rows[0].cells[i] = fmt(median(&rps[i]), 0);
            rows[1].cells[i] = fmt(median(&cpu[i]), 1);
            rows[2].cells[i] = fmt(median(&nginx_cpu[i]), 1);
            rows[3].cells[i] = fmt(median(&oha_cpu[i]), 1);
            rows[5].cells[i] = fmt(median(&p50[i]), 3);
            rows[6].cells[i] = fmt(median(&p99[i]), 3);
        }
        let ratio = |i: usize| median(&rps[i]).zip(median(&rps[0])).map(|(p, d)| p / d);
        let added = |values: &[Vec<f64>], i: usize| {
            median(&values[i])
                .zip(median(&values[0]))
                .map(|(p, d)| p - d)
        };
        for (i, route) in routes.iter().enumerate().skip(1) {
            eprintln!(
                "{}: {} x direct keep-alive throughput; added p50 {} ms, p99 {} ms",
                route.label,
                fmt(ratio(i), 2),
                fmt(added(&p50, i), 3),
                fmt(added(&p99, i), 3)
            );
            summary.push(format!(
                "{:<24} {} x direct; added latency at 500 req/s: p50 {} ms, p99 {} ms",
                route.label,
                fmt(ratio(i), 2),
                fmt(added(&p50, i), 3),
                fmt(added(&p99, i), 3)
            ));
        }
        let reference = routes.iter().position(|r| r.origin.is_some());
        if let Some(reference) = reference {
            let versus = median(&rps[1]).zip(median(&rps[reference]));
            summary.push(format!(
                "{:<24} {} x nginx reverse proxy (keep-alive req/s)",
                routes[1].label,
                fmt(versus.map(|(a, n)| a / n), 2)
            ));
        }
    }
    if only_keepalive {
        rows.truncate(4);
    }
    println!();
    print!("{:<40}", "");
    for route in &routes {
        print!("{:>24}", route.label);
    }
    println!();
    for row in &rows {
        print!("{:<40}", row.name);
        for cell in &row.cells {
            print!("{cell:>24}");
        }
        println!();
    }
    println!();
    for line in &summary {
        println!("{line}");
    }
    println!(
        "\n(one 2-core machine runs nginx, the proxy and the load generator together; oha -c 16; \
         request rows are medians of {ROUNDS} rounds of {ROUND} taking the routes in turn; \
         agent-vault's 'no scrub' service turns response scrubbing off; the nginx reverse proxy \
         terminates TLS, adds the header and speaks HTTP/1.1 over TLS upstream, with one worker \
         per core)"
    );
    let _ = server.kill();
    let _ = server.wait();
    if let Some((mut child, _, _)) = mitmproxy {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}
