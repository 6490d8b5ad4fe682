//! Rate limits end to end, through the real binary: each tier answers 429 with Retry-After
//! past its limit and recovers; the environment beats the profile; `off` turns everything
//! off; the lock ignores the owner; every `vault run` token and every agent has its own PROXY
//! budget. Small env knobs keep the windows to a few seconds. Other client addresses are
//! other loopback addresses (127.0.0.x), so per-address and per-account keys can be told apart.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::broker::Rig;
use crate::harness::{Cli, CurlBrowser, OWNER_EMAIL, OWNER_PASSWORD, Server, TestHome};

/// A client whose connections come from `source` (any 127.0.0.x is loopback).
/// A blocking client whose connections come from `source` (a loopback address).
pub fn client_from(source: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn login(
    server: &Server,
    source: &str,
    email: &str,
    password: &str,
) -> reqwest::blocking::Response {
    client_from(source)
        .post(format!("{}/v1/auth/login", server.url))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .unwrap()
}

/// Checks a 429 and returns its body.
fn refused(response: reqwest::blocking::Response, tier: &str) -> Value {
    assert_eq!(response.status(), 429, "expected a 429 from {tier}");
    let headers = response.headers().clone();
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(headers.contains_key("x-ratelimit-limit"), "{headers:?}");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    assert_eq!(body["tier"], tier, "{body}");
    body
}

#[test]
fn auth_tier_keys_address_and_account_and_says_nothing_about_existence() {
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "3"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "1h"),
        ],
    );
    let _owner = Cli::owner(home, &server);

    // One address: three wrong logins are answered, the fourth is refused (a fresh account).
    for n in 0..3 {
        let email = format!("first{n}@example.com");
        assert_eq!(
            login(&server, "127.0.0.2", &email, "wrong-password").status(),
            401
        );
    }
    let body = refused(
        login(&server, "127.0.0.2", "x@example.com", "wrong-password"),
        "AUTH",
    );
    assert!(
        body["message"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    // ... even with the right password: the budget is spent before anything is checked.
    refused(
        login(&server, "127.0.0.2", OWNER_EMAIL, OWNER_PASSWORD),
        "AUTH",
    );

    // One account from many addresses: an existing account and a stranger's are both
    // refused the same way (a 429 does not say whether an account exists).
    let mut messages = Vec::new();
    for (i, email) in [OWNER_EMAIL, "nobody@example.com"].into_iter().enumerate() {
        let mut refusal = None;
        for n in 0..5 {
            let response = login(
                &server,
                &format!("127.0.{}.{}", 10 + i, 10 + n),
                email,
                "wrong",
            );
            if response.status() == 429 {
                refusal = Some(response);
                break;
            }
            assert_eq!(response.status(), 401);
        }
        let body = refused(refusal.expect("the account is refused"), "AUTH");
        assert!(!body.to_string().contains(email), "{body}");
        messages.push(body["message"].clone());
    }
    assert_eq!(messages[0], messages[1]);
    // Another account from another address is not affected.
    assert_eq!(
        login(&server, "127.0.5.5", "else@example.com", "x").status(),
        401
    );
    // The account is charged whatever type the body claims (the API reads JSON under any).
    let statuses: Vec<u16> = (0..5)
        .map(|n| {
            client_from(&format!("127.0.7.{}", 10 + n))
                .post(format!("{}/v1/auth/login", server.url))
                .header("content-type", "text/plain")
                .body(r#"{"email":"plain@example.com","password":"wrong"}"#)
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[test]
fn a_password_change_is_charged_like_a_sign_in_to_its_session() {
    // A signed-in user's password checks share the hashing slots with everyone's sign-ins:
    // uncharged, a stolen session could guess at hashing speed and hold up every login.
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "3"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "1h"),
        ],
    );
    let _owner = Cli::owner(home, &server);
    let session: Value = login(&server, "127.0.2.1", OWNER_EMAIL, OWNER_PASSWORD)
        .json()
        .unwrap();
    let session = session["token"].as_str().unwrap().to_owned();
    // From a new address each time: the session itself is what is charged.
    let change = |n: u32| {
        client_from(&format!("127.0.2.{}", 10 + n))
            .post(format!("{}/v1/auth/change-password", server.url))
            .bearer_auth(&session)
            .json(&json!({ "current_password": "a-wrong-guess", "new_password": "whatever-new-1" }))
            .send()
            .unwrap()
    };
    for n in 0..3 {
        assert_eq!(change(n).status(), 401, "guess {n}");
    }
    refused(change(3), "AUTH");
    // The web form is the same check, charged to its session cookie.
    let web = client_from("127.0.2.30")
        .post(format!("{}/account/password", server.url))
        .header("cookie", format!("av_session={session}"))
        .form(&[("current_password", "a-wrong-guess")])
        .send()
        .unwrap();
    assert_eq!(web.status(), 429);
    // Its small body was read before the refusal, so the connection stays open (a client
    // still sending would otherwise see a broken pipe, not the 429).
    assert_ne!(
        web.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "{:?}",
        web.headers()
    );
    // Other people still sign in.
    assert_eq!(
        login(&server, "127.0.2.40", OWNER_EMAIL, OWNER_PASSWORD).status(),
        200
    );
}

#[test]
fn auth_tier_recovers_after_its_window() {
    // No account yet: login answers 503 (not initialized) after the limiter let it through.
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "2"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "2s"),
        ],
    );
    for _ in 0..2 {
        assert_eq!(
            login(&server, "127.0.0.3", "a@example.com", "x").status(),
            503
        );
    }
    refused(login(&server, "127.0.0.3", "a@example.com", "x"), "AUTH");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        login(&server, "127.0.0.3", "a@example.com", "x").status(),
        503
    );
}

#[test]
fn authed_tier_is_per_principal() {
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[
            ("AGENT_VAULT_RATELIMIT_AUTHED_RATE", "1"),
            ("AGENT_VAULT_RATELIMIT_AUTHED_BURST", "30"),
        ],
    );
    let owner = Cli::owner(home, &server);
    let token_a = owner.token("default");
    let token_b = owner.token("default");
    let client = crate::harness::http();
    let me = |token: &str| {
        client
            .get(format!("{}/v1/vaults/default/services", server.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let mut refusal = None;
    for _ in 0..40 {
        let response = me(&token_a);
        if response.status() == 429 {
            refusal = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    refused(refusal.expect("token A refused within 40 calls"), "AUTHED");
    // Each vault-scoped token has a budget of its own.
    assert_eq!(me(&token_b).status(), 200);
    // The refusal is counted for dashboards.
    let metrics = crate::agents::server_metrics(&server, &owner.home);
    assert!(
        metrics.contains("agent_vault_rate_limited_requests_total{limit=\"AUTHED\"} 1"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(me(&token_a).status(), 200);
}

#[test]
fn global_tier_caps_the_api_port_but_not_the_proxy_port() {
    let home = TestHome::new();
    let mitm = crate::harness::free_port();
    let server = home.start_server(
        &["--mitm-port", &mitm.to_string()],
        "",
        &[
            ("AGENT_VAULT_RATELIMIT_GLOBAL_RATE", "1"),
            ("AGENT_VAULT_RATELIMIT_GLOBAL_BURST", "5"),
        ],
    );
    let client = crate::harness::http();
    let health = || client.get(format!("{}/health", server.url)).send().unwrap();
    let mut refusal = None;
    for _ in 0..10 {
        let response = health();
        if response.status() == 429 {
            refusal = Some(response);
            break;
        }
    }
    refused(refusal.expect("refused within 10 requests"), "GLOBAL");
    // The data path has no RPS cap: 20 quick requests to the proxy port are all answered by
    // the proxy (407: no credentials), none by the limiter.
    let proxy = reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{mitm}")).unwrap())
        .build()
        .unwrap();
    for _ in 0..20 {
        let status = proxy.get("http://127.0.0.1:9/").send().unwrap().status();
        assert_eq!(status, 407);
    }
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(health().status(), 200);
}

/// A sign-in body that never arrives holds its slots for 10 s at most (then 408), and one
/// address holds at most its share of the API port's requests in flight (an eighth of the
/// GLOBAL ceiling): a red team held all 1,024 slots from one address with login bodies it
/// never sent, shutting every user out for as long as it liked.
#[test]
fn unsent_sign_in_bodies_hold_one_address_s_share_for_ten_seconds_at_most() {
    use std::io::{Read, Write};
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "16")],
    );
    let authority = server.url.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut stalled: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&authority).unwrap();
            write!(
                stream,
                "POST /v1/auth/login HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{"
            )
            .unwrap();
            stream
        })
        .collect();
    let health = |source: &str| {
        client_from(source)
            .get(format!("{}/health", server.url))
            .send()
            .unwrap()
    };
    // Polled: the two stalled requests take this address's share (2 of 16) once they are read.
    let refusal = crate::harness::poll(
        "the address's share to be taken",
        Duration::from_millis(50),
        || Some(health("127.0.0.1")).filter(|r| r.status() == 429),
    );
    let body = refused(refusal, "GLOBAL");
    assert!(
        body["message"].as_str().unwrap().contains("this address"),
        "{body}"
    );
    assert_eq!(
        health("127.0.0.2").status(),
        200,
        "other addresses are served"
    );

    for stream in &mut stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    assert_eq!(health("127.0.0.1").status(), 200, "the share is back");
}

/// Wrong passwords from many addresses can keep every shared hashing slot busy (a red team
/// refused every login that way); a sign-in from an address where the account signed in
/// before has a lane of its own and gets through.
#[test]
fn a_flood_of_wrong_passwords_does_not_lock_out_a_known_sign_in() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[("AGENT_VAULT_RATELIMIT_AUTH_MAX", "100000")]);
    Cli::owner(home, &server);
    assert_eq!(
        login(&server, "127.0.0.5", OWNER_EMAIL, OWNER_PASSWORD).status(),
        200
    );

    let (stop, busy) = (AtomicBool::new(false), AtomicUsize::new(0));
    let url = format!("{}/v1/auth/login", server.url);
    std::thread::scope(|scope| {
        for n in 0..24 {
            let (stop, busy, url) = (&stop, &busy, &url);
            scope.spawn(move || {
                let client = client_from(&format!("127.0.1.{}", n + 1));
                let body = json!({ "email": format!("nobody{n}@example.com"), "password": "wrong-password" });
                while !stop.load(Ordering::Relaxed) {
                    if client.post(url).json(&body).send().unwrap().status() == 429 {
                        busy.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Stops the flood however this ends: a failed assertion must not leave it running.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        crate::harness::poll(
            "the shared slots to be full",
            Duration::from_millis(20),
            || (busy.load(Ordering::Relaxed) > 0).then_some(()),
        );
        for _ in 0..3 {
            let response = login(&server, "127.0.0.5", OWNER_EMAIL, OWNER_PASSWORD);
            assert_eq!(response.status(), 200, "{:?}", response.text());
        }
    });
    assert!(
        busy.load(Ordering::Relaxed) > 0,
        "the flood filled the shared slots"
    );
}

#[test]
fn env_knob_beats_the_profile_and_off_turns_everything_off() {
    // loose allows 120 attempts; the knob says 2.
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[
            ("AGENT_VAULT_RATELIMIT_PROFILE", "loose"),
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "2"),
        ],
    );
    let owner = Cli::owner(home, &server);
    for _ in 0..2 {
        assert_eq!(
            login(&server, "127.0.1.1", "a@example.com", "x").status(),
            401
        );
    }
    refused(login(&server, "127.0.1.1", "a@example.com", "x"), "AUTH");
    let settings: Value = serde_json::from_str(&{
        let out = owner.run(&["owner", "config", "get"]).ok();
        // The CLI shows the sources; the API says them exactly.
        assert!(out.stdout.contains("max=2 (env)"), "{out}");
        assert!(out.stdout.contains("loose (env)"), "{out}");
        let token = owner.home.session_token();
        crate::harness::http()
            .get(format!("{}/v1/admin/settings", server.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .text()
            .unwrap()
    })
    .unwrap();
    let limits = &settings["rate_limit"];
    assert_eq!(limits["profile"], "loose");
    assert_eq!(limits["tiers"]["AUTH"]["max"], 2);
    assert_eq!(limits["tiers"]["AUTH"]["source"]["max"], "env");
    assert_eq!(limits["tiers"]["PROXY"]["burst"], 4000, "loose PROXY burst");
    assert_eq!(limits["tiers"]["PROXY"]["source"]["burst"], "profile");

    let home = TestHome::new();
    let server = home.start_server(&[], "", &[("AGENT_VAULT_RATELIMIT_PROFILE", "off")]);
    for _ in 0..40 {
        assert_eq!(
            login(&server, "127.0.1.2", "a@example.com", "x").status(),
            503
        );
    }
}

#[test]
fn an_owner_override_applies_at_once_and_the_lock_ignores_it() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner
        .run(&[
            "owner",
            "config",
            "set",
            "--rate-limit",
            "auth.max=5",
            "--rate-limit",
            "auth.window=1h",
        ])
        .ok();
    for _ in 0..5 {
        assert_eq!(
            login(&server, "127.0.2.1", "a@example.com", "x").status(),
            401
        );
    }
    refused(login(&server, "127.0.2.1", "a@example.com", "x"), "AUTH");
    let shown = owner.run(&["owner", "config", "get"]).ok();
    assert!(shown.stdout.contains("max=5 (override)"), "{shown}");
    // Below the floor an owner cannot go (it could lock everyone out).
    owner
        .run(&[
            "owner",
            "config",
            "set",
            "--rate-limit",
            "global.concurrency=1",
        ])
        .fails_with("GLOBAL.concurrency");
    // Nor to a rate too slow for the limiter's clock.
    owner
        .run(&["owner", "config", "set", "--rate-limit", "proxy.rate=1e-12"])
        .fails_with("from 0.001");
    // Reset returns to the profile.
    owner
        .run(&["owner", "config", "set", "--rate-limit-reset"])
        .ok();
    let shown = owner.run(&["owner", "config", "get"]).ok();
    assert!(shown.stdout.contains("max=30 (profile)"), "{shown}");
    // The web's Manage page shows the limits and sets the profile through the same operation.
    let browser = CurlBrowser::new();
    browser.get(&format!("{}/login", server.url));
    let (status, _) = browser.post(
        &format!("{}/login", server.url),
        &[("email", OWNER_EMAIL), ("password", OWNER_PASSWORD)],
    );
    assert_eq!(status, 303);
    let (_, page) = browser.get(&format!("{}/manage", server.url));
    assert!(
        page.contains("Rate limits") && page.contains("max 30 (profile)"),
        "{page}"
    );
    let (status, _) = browser.post(
        &format!("{}/manage/rate-limit", server.url),
        &[("profile", "strict")],
    );
    assert_eq!(status, 303);
    let shown = owner.run(&["owner", "config", "get"]).ok();
    assert!(shown.stdout.contains("strict (override)"), "{shown}");
    assert!(shown.stdout.contains("max=15 (profile)"), "{shown}");
    // The override outlives a restart: strict's AUTH budget of 15 holds from the start.
    drop(server);
    let server = owner.home.start_server(&[], "", &[]);
    for _ in 0..15 {
        assert_eq!(
            login(&server, "127.0.2.3", "a@example.com", "x").status(),
            401
        );
    }
    refused(login(&server, "127.0.2.3", "a@example.com", "x"), "AUTH");
    drop(server);

    // Locked: the same change is refused, and the limits stay the environment's.
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[("AGENT_VAULT_RATELIMIT_LOCK", "true")]);
    let owner = Cli::owner(home, &server);
    owner
        .run(&["owner", "config", "set", "--rate-limit", "auth.max=5"])
        .fails_with("AGENT_VAULT_RATELIMIT_LOCK");
    for _ in 0..8 {
        assert_eq!(
            login(&server, "127.0.2.2", "a@example.com", "x").status(),
            401
        );
    }
    let browser = CurlBrowser::new();
    browser.get(&format!("{}/login", server.url));
    browser.post(
        &format!("{}/login", server.url),
        &[("email", OWNER_EMAIL), ("password", OWNER_PASSWORD)],
    );
    let (_, page) = browser.get(&format!("{}/manage", server.url));
    assert!(page.contains("AGENT_VAULT_RATELIMIT_LOCK"), "{page}");
}

#[test]
fn a_bad_environment_value_stops_the_server_naming_it() {
    let home = TestHome::new();
    let run = home
        .try_start_server(&[], "", &[("AGENT_VAULT_RATELIMIT_PROXY_RATEE", "5")])
        .err()
        .expect("the server must not start");
    assert!(
        run.stderr.contains("AGENT_VAULT_RATELIMIT_PROXY_RATEE=5"),
        "{run}"
    );
    assert!(!home.state().join("agent-vault.db").exists());
}

/// A plain-http request through the MITM port as `token`; returns the status and headers.
fn through_proxy(rig: &Rig, token: &str) -> reqwest::blocking::Response {
    let url = format!("http://127.0.0.1:{}/plain", rig.upstream.http_port);
    through_proxy_to(rig.mitm, token, &url).unwrap()
}

/// A GET of `url` through the proxy on port `mitm`, with `token` for the vault "default".
fn through_proxy_to(
    mitm: u16,
    token: &str,
    url: &str,
) -> reqwest::Result<reqwest::blocking::Response> {
    let proxy = reqwest::Proxy::http(format!("http://127.0.0.1:{mitm}"))
        .unwrap()
        .basic_auth(token, "default");
    reqwest::blocking::Client::builder()
        .proxy(proxy)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(url)
        .send()
}

/// One person, with every vault token they mint, holds at most a quarter of the proxy
/// port's requests in flight (2 of 8 here); another person's agents are still served. A red
/// team held the whole port with tokens of vaults of its own, to an upstream that never
/// answered.
#[test]
fn one_person_holds_only_their_share_of_the_proxy_port() {
    let rig = Rig::start_env(&[("AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY", "8")]);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    let owner_tokens: Vec<String> = (0..3)
        .map(|_| {
            rig.home
                .run(&["vault", "token"])
                .ok()
                .stdout
                .trim()
                .to_owned()
        })
        .collect();
    let api = crate::api::Api::new(&rig.server.url);
    let other = api.add_user(
        &rig.home.session_token(),
        "other@example.com",
        json!([{"vault": "default", "role": "member"}]),
    );
    let other_token = api.ok(
        "POST",
        "/v1/sessions",
        Some(&other),
        Some(json!({"vault": "default", "role": "proxy"})),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let plain = format!("http://127.0.0.1:{}/plain", rig.upstream.http_port);
    std::thread::scope(|scope| {
        // Two requests the upstream never answers: the owner's share, from two tokens.
        let held: Vec<_> = owner_tokens[..2]
            .iter()
            .map(|token| scope.spawn(|| through_proxy_to(rig.mitm, token, &silent_url)))
            .collect();
        let mut upstream_side: Vec<_> = (0..2).map(|_| silent.accept().unwrap().0).collect();

        let refused = through_proxy(&rig, &owner_tokens[2]);
        assert_eq!(refused.headers()["x-agent-vault-proxy-error"], "true");
        let body = refused.text().unwrap();
        assert!(
            body.contains("concurrency_limited") || body.contains("too_many_requests"),
            "{body}"
        );
        assert!(body.contains("person"), "{body}");
        assert_eq!(
            through_proxy(&rig, &other_token).status(),
            200,
            "another person's share is free"
        );

        // Requests waiting for the owner's share (up to 2 s) hold no slot of the port's
        // ceiling meanwhile: six of them and the two held would be all eight, and another
        // person would be refused for as long as the owner kept sending.
        let waiting: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| through_proxy_to(rig.mitm, &owner_tokens[2], &plain).unwrap()))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let served = through_proxy(&rig, &other_token);
        assert_eq!(
            served.status(),
            200,
            "served beside requests waiting for another's share: {}",
            served.text().unwrap_or_default()
        );
        for request in waiting {
            let refused = request.join().unwrap();
            assert_eq!(refused.headers()["x-agent-vault-proxy-error"], "true");
            assert!(refused.text().unwrap().contains("person"));
        }

        // The upstream gives up; the held requests end and give their share back.
        upstream_side.clear();
        for request in held {
            let _ = request.join().unwrap();
        }
    });
    assert_eq!(through_proxy(&rig, &owner_tokens[2]).status(), 200);
}

fn agent_token(rig: &Rig, name: &str) -> String {
    let run = rig
        .home
        .run(&["agent", "invite", name, "--vault", "default:proxy"])
        .ok();
    let url = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("curl -sS -X POST "))
        .unwrap_or_else(|| panic!("no redeem command in:\n{run}"))
        .to_owned();
    let reply: Value = crate::harness::http()
        .post(url)
        .send()
        .unwrap()
        .json()
        .unwrap();
    reply["agent_token"].as_str().unwrap().to_owned()
}

#[test]
fn proxy_tier_gives_each_token_and_each_agent_its_own_budget() {
    let rig = Rig::start_env(&[
        ("AGENT_VAULT_RATELIMIT_PROXY_RATE", "1"),
        ("AGENT_VAULT_RATELIMIT_PROXY_BURST", "3"),
        ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "5"),
        ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "1h"),
    ]);
    let run_a = rig.home.run(&["vault", "token"]).ok().stdout;
    let run_b = rig.home.run(&["vault", "token"]).ok().stdout;
    let agent_a = agent_token(&rig, "bot-a");
    let agent_b = agent_token(&rig, "bot-b");
    for (spender, other) in [(&run_a, &run_b), (&agent_a, &agent_b)] {
        for _ in 0..3 {
            assert_eq!(through_proxy(&rig, spender).status(), 200);
        }
        let response = through_proxy(&rig, spender);
        assert_eq!(response.headers()["x-agent-vault-proxy-error"], "true");
        refused(response, "PROXY");
        assert_eq!(
            through_proxy(&rig, other).status(),
            200,
            "a separate budget"
        );
    }
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(through_proxy(&rig, &run_a).status(), 200, "recovered");

    // Failed proxy sign-ins are AUTH: five wrong tokens, then the address waits.
    for _ in 0..5 {
        assert_eq!(through_proxy(&rig, "av_sess_wrong").status(), 407);
    }
    let response = through_proxy(&rig, "av_sess_wrong");
    assert_eq!(response.headers()["x-agent-vault-proxy-error"], "true");
    refused(response, "AUTH");
}
