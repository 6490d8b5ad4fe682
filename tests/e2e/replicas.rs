//! Several brokers, one PostgreSQL database, behind a real HAProxy (Debian's `haproxy`): a
//! change made through one replica takes effect on the others' next request (LISTEN/NOTIFY),
//! and losing a replica loses no request the balancer had not already sent to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::broker::header;
use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD, Server, TestHome, free_port, http, poll};
use crate::upstream::Upstream;

const MASTER: &str = "replica-master-password";

struct Replica {
    home: TestHome,
    server: Server,
    api: u16,
    mitm: u16,
}

/// HAProxy in the foreground, stopped on drop (panics included).
struct Balancer {
    child: Child,
    api: u16,
    mitm: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy() -> PathBuf {
    let path = PathBuf::from("/usr/sbin/haproxy");
    assert!(
        path.exists(),
        "the replica tests need Debian's `haproxy` package: apt-get install haproxy (.ci/run installs it)"
    );
    path
}

fn start_replica(database_url: &str, upstream_ca: &Path) -> Replica {
    let home = TestHome::on_database(database_url);
    // Ports the server picks: a port found free and bound later can be taken meanwhile by
    // another test (it was, once, in CI).
    let server = home.start_server(
        &["--mitm-port", "auto"],
        "",
        &[
            ("SSL_CERT_FILE", upstream_ca.to_str().unwrap()),
            ("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"),
            ("AGENT_VAULT_MASTER_PASSWORD", MASTER),
        ],
    );
    let api = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let mitm = server.mitm_port.expect("the MITM proxy listens");
    Replica {
        home,
        server,
        api,
        mitm,
    }
}

fn start_balancer(replicas: &[&Replica]) -> Balancer {
    let dir = tempfile::tempdir().unwrap();
    let (api, mitm) = (free_port(), free_port());
    let mut config = format!(
        "global\n  maxconn 512\n\
         defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch\n\
         frontend api\n  bind 127.0.0.1:{api}\n  default_backend api\n\
         frontend mitm\n  bind 127.0.0.1:{mitm}\n  default_backend mitm\n\
         backend api\n  balance roundrobin\n  option httpchk GET /health\n"
    );
    for (i, r) in replicas.iter().enumerate() {
        config.push_str(&format!(
            "  server r{i} 127.0.0.1:{} check inter 200ms fall 1 rise 1\n",
            r.api
        ));
    }
    config.push_str("backend mitm\n  balance roundrobin\n  option httpchk GET /health\n");
    for (i, r) in replicas.iter().enumerate() {
        config.push_str(&format!(
            "  server r{i} 127.0.0.1:{} check port {} inter 200ms fall 1 rise 1\n",
            r.mitm, r.api
        ));
    }
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(haproxy())
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let balancer = Balancer {
        child,
        api,
        mitm,
        _dir: dir,
    };
    poll("HAProxy", Duration::from_millis(100), || {
        http()
            .get(format!("http://127.0.0.1:{api}/health"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    balancer
}

/// curl through the MITM proxy at `port` with a token for the default vault; (HTTP status,
/// body). Status 0: curl itself failed.
fn through(port: u16, token: &str, ca: &Path, url: &str) -> (u16, String) {
    through_as(port, &format!("{token}:default"), ca, url)
}

/// [`through`] with the proxy credentials `user` (`token:vault`): the status (0 when nothing
/// was answered) and the body (curl's error then).
pub fn through_as(port: u16, user: &str, ca: &Path, url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(ca)
        .arg(url)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HTTPS_PROXY", format!("http://{user}@127.0.0.1:{port}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    match code.trim().parse() {
        Ok(code @ 1..) => (code, body.to_owned()),
        // No answer: curl's own error is what a failing assertion should show.
        _ => (0, format!("curl: {}", String::from_utf8_lossy(&out.stderr))),
    }
}

fn bearer_seen(body: &str) -> String {
    let echo: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    header(&echo, "authorization").join(",")
}

fn set_credential(api: u16, session: &str, value: &str) {
    let response = http()
        .post(format!(
            "http://127.0.0.1:{api}/v1/vaults/default/credentials"
        ))
        .bearer_auth(session)
        .json(&json!({ "credentials": { "BEARER_TOKEN": value } }))
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.text());
}

#[test]
fn three_replicas_behind_haproxy_share_changes_and_survive_a_loss() {
    let database_url = crate::testpg::fresh_database_url();
    let upstream = Upstream::start();
    // All three start at once on the empty database: one creates the key and the CA, the
    // others find and unlock them (no replica may keep a key of its own).
    let (a, b, c) = std::thread::scope(|s| {
        let start = || s.spawn(|| start_replica(&database_url, &upstream.ca_file));
        let (a, b, c) = (start(), start(), start());
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    let balancer = start_balancer(&[&a, &b, &c]);

    // The owner works through the balancer, as a user of the service would.
    let owner = &a.home;
    let via = format!("http://127.0.0.1:{}", balancer.api);
    owner
        .run_with(
            &[
                "auth",
                "register",
                "--address",
                &via,
                "--email",
                OWNER_EMAIL,
                "--password-stdin",
            ],
            &format!("{OWNER_PASSWORD}\n"),
            &[],
        )
        .ok();
    let session = owner.session_token();
    set_credential(a.api, &session, "SENTINEL-first");
    // Scrubbing off: the test reads the injected value back from the echo.
    std::fs::write(
        owner.path().join("services.yaml"),
        format!(
            "services:\n  - host: {}\n    port: {}\n    scrub_responses: false\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n",
            upstream.ip, upstream.https_port
        ),
    )
    .unwrap();
    owner
        .run(&["vault", "service", "set", "-f", "services.yaml"])
        .ok();
    owner.run(&["ca", "fetch", "-o", "ca.pem"]).ok();
    let ca = owner.path().join("ca.pem");
    let token = owner.run(&["vault", "token"]).ok().stdout.trim().to_owned();
    let url = format!("https://{}:{}/echo", upstream.ip, upstream.https_port);

    // One CA for all: every replica's leaf verifies against the root fetched through any.
    for r in [&a, &b, &c] {
        let (status, body) = through(r.mitm, &token, &ca, &url);
        assert_eq!(status, 200, "{body}");
        assert_eq!(bearer_seen(&body), "Bearer SENTINEL-first");
    }

    // A credential changed through A is injected by B (whose snapshot was warm) as soon as
    // B has read A's notification: milliseconds, but not ordered with B's next request.
    set_credential(a.api, &session, "SENTINEL-second");
    soon("B injects the credential set through A", || {
        let (status, body) = through(b.mitm, &token, &ca, &url);
        assert_eq!(status, 200, "{body}");
        bearer_seen(&body) == "Bearer SENTINEL-second"
    });

    // A token revoked on B is refused by C (which had it cached) on its next request.
    let (status, _) = through(c.mitm, &token, &ca, &url);
    assert_eq!(status, 200);
    let revoked = http()
        .post(format!("http://127.0.0.1:{}/v1/auth/logout", b.api))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .unwrap();
    assert!(revoked.status().is_success(), "{:?}", revoked.text());
    soon("C refuses the token revoked on B", || {
        let (status, _) = through(c.mitm, &token, &ca, &url);
        status == 407 || status == 0
    });

    // Killing C mid-run: requests keep flowing through the balancer; only a request C
    // already held may fail, and every request started once the balancer's health check
    // has had time to notice (2 × its 200 ms interval) succeeds. Judged by when each request
    // started, not by its place in the run: a slow machine sends fewer per second.
    let token = owner.run(&["vault", "token"]).ok().stdout.trim().to_owned();
    let sent: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (sent, stop) = (sent.clone(), stop.clone());
        let (mitm, ca, url, token) = (balancer.mitm, ca.clone(), url.clone(), token.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let status = through(mitm, &token, &ca, &url).0;
                sent.lock().unwrap().push((started, status));
            }
        })
    };
    let sent_since = |t: Instant| sent.lock().unwrap().iter().filter(|r| r.0 >= t).count();
    poll(
        "traffic through the balancer",
        Duration::from_millis(20),
        || (sent.lock().unwrap().len() >= 10).then_some(()),
    );
    let Replica {
        server: c_server, ..
    } = c;
    let (status, _) = c_server.stop_with("KILL");
    assert!(!status.success());
    let noticed = Instant::now() + Duration::from_millis(400);
    poll("traffic after the loss", Duration::from_millis(20), || {
        (sent_since(noticed) >= 15).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    let sent = sent.lock().unwrap();
    let statuses: Vec<u16> = sent.iter().map(|r| r.1).collect();
    assert!(
        statuses.iter().filter(|s| **s != 200).count() <= 1,
        "more requests failed than C could have held when it died: {statuses:?}"
    );
    assert!(
        sent.iter().filter(|r| r.0 >= noticed).all(|r| r.1 == 200),
        "the survivors stopped serving: {statuses:?}"
    );
    // And the survivors still see changes made through each other.
    set_credential(b.api, &session, "SENTINEL-third");
    soon("A injects the credential set through B", || {
        let (status, body) = through(a.mitm, &token, &ca, &url);
        assert_eq!(status, 200, "{body}");
        bearer_seen(&body) == "Bearer SENTINEL-third"
    });
}

/// Waits up to 5 s for `done` (a change crossing replicas by NOTIFY), far below the
/// periodic refresh (`AGENT_VAULT_CACHE_MAX_AGE`, 30 s), so only the notification can pass.
fn soon(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
