//! Resource ceilings through the real binary: password hashing under a bound, verification
//! guesses per address, the substitution body budget, and input never echoed back whole.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::broker::Rig;
use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD, TestHome, http};
use crate::upstream::Upstream;

const MIB: u64 = 1024 * 1024;

/// A `/proc/<pid>/status` field in KiB (`VmHWM` is the peak resident set).
fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The hashing slots the server gives this machine (docs/security.md): its CPUs, 1 to 4.
fn hashing_slots() -> u64 {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4) as u64
}

#[test]
fn fifty_concurrent_wrong_logins_stay_under_the_memory_bound_without_5xx() {
    let mut home = TestHome::new();
    home.real_kdf = true; // 64 MiB per Argon2id run, as in production
    // The rate limits off: this is about the ceiling that holds whatever they let through.
    let server = home.start_server(&[], "", &[("AGENT_VAULT_RATELIMIT_PROFILE", "off")]);
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
    let url = format!("{}/v1/auth/login", server.url);
    let barrier = std::sync::Barrier::new(50);
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let (url, barrier) = (&url, &barrier);
                scope.spawn(move || {
                    let client = http();
                    barrier.wait();
                    let response = client
                        .post(url)
                        .json(&json!({"email": OWNER_EMAIL, "password": format!("wrong-{i}")}))
                        .send()
                        .unwrap();
                    let retry = response
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned());
                    (response.status().as_u16(), retry)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let peak_mib = proc_status_kib(server.pid(), "VmHWM") * 1024 / MIB;
    let bound_mib = 128 + 64 * hashing_slots();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "only 401 (checked) or 429 (busy) expected: {statuses:?}"
    );
    assert!(statuses.contains(&401), "some were checked: {statuses:?}");
    for (status, retry) in &answers {
        if *status == 429 {
            assert!(retry.is_some(), "a 429 says when to retry");
        }
    }
    assert!(
        peak_mib <= bound_mib,
        "peak RSS {peak_mib} MiB is over the stated bound {bound_mib} MiB"
    );
    eprintln!(
        "50 concurrent wrong logins: peak RSS {peak_mib} MiB (bound {bound_mib} MiB); {} checked, {} refused",
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 429).count()
    );
    // The right password still works once the burst is over.
    home.run_with(
        &[
            "auth",
            "login",
            "--address",
            &server.url,
            "--email",
            OWNER_EMAIL,
            "--password-stdin",
        ],
        &format!("{OWNER_PASSWORD}\n"),
        &[],
    )
    .ok();
}

fn post(url: &str, body: Value) -> (u16, Option<String>, Value) {
    let response = http().post(url).json(&body).send().unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, response.json().unwrap_or(Value::Null))
}

#[test]
fn verification_guesses_are_limited_per_address_across_registrations() {
    let home = TestHome::new();
    // The rate limits off: the guess budget must hold on its own.
    let server = home.start_server(&[], "", &[("AGENT_VAULT_RATELIMIT_PROFILE", "off")]);
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
    let register = format!("{}/v1/auth/register", server.url);
    let verify = format!("{}/v1/auth/verify", server.url);
    let pending = "pending@example.com";
    let (status, _, body) = post(
        &register,
        json!({"email": pending, "password": "pending-password"}),
    );
    assert!(status < 300, "{status} {body}");
    let guess = |email: &str| {
        post(
            &verify,
            json!({"email": email, "code": "not-a-code", "password": "guessing-password"}),
        )
    };
    // Registering again between guesses makes new codes but does not refill the budget.
    for i in 0..10 {
        if i == 5 {
            post(
                &register,
                json!({"email": pending, "password": "pending-password"}),
            );
        }
        let (status, _, body) = guess(pending);
        assert_eq!(status, 400, "guess {i}: {body}");
    }
    let (status, retry, body) = guess(pending);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_requests", "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(retry > 0 && retry <= 6 * 60, "{retry}");
    post(
        &register,
        json!({"email": pending, "password": "pending-password"}),
    );
    assert_eq!(
        guess(pending).0,
        429,
        "a new registration does not reset it"
    );
    // Another address is not affected, and an address without an account answers the same
    // way, so a 429 does not reveal who has registered.
    assert_eq!(guess("other@example.com").0, 400);
    for _ in 0..10 {
        guess("nobody@example.com");
    }
    assert_eq!(guess("nobody@example.com").0, 429);
    // Guesses sent at once are each counted before any is checked: no more than the budget.
    let statuses: Vec<u16> = std::thread::scope(|threads| {
        let sent: Vec<_> = (0..16)
            .map(|_| threads.spawn(|| guess("burst@example.com").0))
            .collect();
        sent.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 400).count();
    assert!(
        checked <= 10,
        "{checked} guesses checked at once: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [400, 429].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn a_huge_email_is_refused_without_being_echoed() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
    let huge = format!("{}@example.com", "a".repeat(900 * 1024));
    for route in ["register", "login", "verify"] {
        let response = http()
            .post(format!("{}/v1/auth/{route}", server.url))
            .json(&json!({"email": huge, "password": "some-password", "code": "123456"}))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        assert!((400..500).contains(&status), "{route}: {status}");
        assert!(text.len() < 1024, "{route} echoed {} bytes", text.len());
        assert!(!text.contains(&"a".repeat(100)), "{route}: {text}");
    }
}

/// Starts a substitution request on the explicit endpoint whose body is only partly sent,
/// so the server holds that part in the substitution budget.
fn start_partial_body(rig: &Rig, declared: usize, sent: usize) -> TcpStream {
    let addr = rig.server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /proxy/127.0.0.1:{}/sub/held HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nX-Vault: default\r\nContent-Type: text/plain\r\nContent-Length: {declared}\r\n\r\n",
        rig.upstream.https_port,
        rig.token.trim()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b'x'; sent]).unwrap();
    stream
}

#[test]
fn bodies_buffered_for_substitution_share_one_total_budget() {
    // 1 MiB in all: each body counts twice (received and rewritten), so one request may
    // buffer up to 512 KiB, and two of 300 KB do not fit at once.
    let rig = Rig::start_with_env(
        true,
        Upstream::start(),
        &[],
        &[("AGENT_VAULT_BODY_BUFFER_MB", "1")],
    );
    let url = format!(
        "{}/proxy/127.0.0.1:{}/sub/x",
        rig.server.url, rig.upstream.https_port
    );
    let send = |len: usize| {
        let response = http()
            .post(&url)
            .bearer_auth(rig.token.trim())
            .header("X-Vault", "default")
            .header("Content-Type", "text/plain")
            .body(format!("__sub_value__{}", "y".repeat(len - 13)))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").cloned();
        (status, retry, response.text().unwrap())
    };
    assert_eq!(send(300_000).0, 200, "alone, a 300 KB body fits");

    // A body held half-sent takes 580 KB of the budget; a second 300 KB body no longer fits.
    // (The server reads the held body when it gets to it: on a busy machine another request
    // may come first, so the attempt is repeated until the held one is the one waiting.)
    let unanswered = |stream: &mut TcpStream| {
        stream.set_nonblocking(true).unwrap();
        let waiting = matches!(stream.read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        waiting
    };
    let (mut held, refused) =
        crate::harness::poll("a second body refused", Duration::from_millis(200), || {
            let mut held = start_partial_body(&rig, 300_000, 290_000);
            std::thread::sleep(Duration::from_millis(300));
            let refused = send(300_000);
            (refused.0 != 200 && unanswered(&mut held)).then_some((held, refused))
        });
    assert_eq!(refused.0, 503, "{}", refused.2);
    assert!(refused.2.contains("server_busy"), "{}", refused.2);
    assert!(refused.1.is_some(), "503 carries Retry-After");

    // The held request completes normally and gives its share back.
    held.write_all(&vec![b'x'; 10_000]).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = held.read(&mut chunk).unwrap();
        assert!(n > 0, "the held request was answered");
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    crate::harness::poll(
        "the budget to be returned",
        Duration::from_millis(100),
        || (send(300_000).0 == 200).then_some(()),
    );
    // Over the per-request share is the agent's problem: 413.
    let (status, _, body) = send(600_000);
    assert_eq!(status, 413, "{body}");
}
