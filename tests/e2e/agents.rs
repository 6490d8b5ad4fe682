//! Agents end to end: invites redeemed over plain HTTP, agent tokens on the proxy, rotation,
//! vault membership, and `vault run` (process mode) with the environment it builds.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::broker::{BEARER, Rig, header};
use crate::harness::Run;
use crate::upstream::Upstream;

/// `agent invite` as the rig's owner; returns the redeem URL printed in the prompt.
pub fn invite(rig: &Rig, args: &[&str]) -> String {
    let mut all = vec!["agent", "invite"];
    all.extend_from_slice(args);
    let run = rig.home.run(&all).ok();
    run.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("curl -sS -X POST "))
        .unwrap_or_else(|| panic!("no redeem command in:\n{run}"))
        .to_owned()
}

fn curl_json(args: &[&str]) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)))
}

pub fn redeem(url: &str) -> Value {
    curl_json(&["-X", "POST", url])
}

/// An HTTPS request through the proxy as `token`; returns the HTTP status of the tunnel or
/// response and the body.
fn proxied(rig: &Rig, token: &str, vault: Option<&str>, path: &str) -> (String, String) {
    proxied_to(rig, token, vault, &rig.https(path))
}

/// [`proxied`] to any URL.
fn proxied_to(rig: &Rig, token: &str, vault: Option<&str>, url: &str) -> (String, String) {
    let user = match vault {
        Some(v) => format!("{token}:{v}"),
        None => token.to_owned(),
    };
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_connect} %{http_code}", "--cacert"])
        .arg(&rig.ca)
        .arg("--proxy")
        .arg(format!("http://127.0.0.1:{}", rig.mitm))
        .arg("--proxy-user")
        .arg(user)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, codes) = text.rsplit_once('\n').unwrap();
    (codes.to_owned(), body.to_owned())
}

#[test]
fn agent_onboarding_rotation_and_removal() {
    let rig = Rig::start(true);
    let url = invite(&rig, &["bot", "--vault", "default:proxy"]);
    rig.home
        .run(&["agent", "invite", "bot"])
        .fails_with("already pending");
    let list = rig
        .home
        .run(&["agent", "invite", "list", "--status", "pending"])
        .ok();
    assert!(
        list.stdout.contains("bot") && list.stdout.contains("default (proxy)"),
        "{list}"
    );

    let reply = redeem(&url);
    let token = reply["agent_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("av_agt_"), "{reply}");
    assert_eq!(reply["vaults"][0]["vault"], "default");
    assert!(
        reply["proxy"]["https_proxy"]
            .as_str()
            .unwrap()
            .contains(&rig.mitm.to_string())
    );
    assert_eq!(redeem(&url)["error"], "invite_used", "single use");

    // The agent discovers over plain HTTP and proxies with its own token.
    let found = curl_json(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{}/v1/discover", rig.server.url),
    ]);
    assert_eq!(found["vault"], "default");
    assert!(
        found["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "BEARER_TOKEN")
    );
    assert!(
        !found.to_string().contains(BEARER),
        "discover never returns values"
    );
    let (codes, body) = proxied(&rig, &token, None, "/bearer");
    assert_eq!(codes, "200 200", "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    // A host the vault has no service for: the agent asks for one, the owner approves it with
    // the value, and the agent's next request there carries the credential.
    let new_host = format!("localhost:{}", rig.upstream.https_port);
    let proposal = json!({
        "vault": "default",
        "services": [{ "host": new_host, "auth": { "type": "bearer", "token": "NEW_API_KEY" } }],
        "credentials": [{ "key": "NEW_API_KEY", "description": "key for the new API" }],
        "message": "needed to call the new API",
    });
    let filed = curl_json(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "--data",
        &proposal.to_string(),
        &format!("{}/v1/proposals", rig.server.url),
    ]);
    assert_eq!(filed["status"], "pending", "{filed}");
    let number = filed["number"].to_string();
    let before = proxied_to(&rig, &token, None, &format!("https://{new_host}/new"));
    assert!(!before.1.contains("new-api-sentinel"), "{before:?}");
    rig.home
        .run(&[
            "vault",
            "proposal",
            "approve",
            &number,
            "NEW_API_KEY=new-api-sentinel",
            "--yes",
        ])
        .ok();
    let (codes, body) = proxied_to(&rig, &token, None, &format!("https://{new_host}/new"));
    assert_eq!(codes, "200 200", "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    // The upstream echoes the credential it got; the broker scrubs it on the way back (the
    // marker replaces exactly the new service's value).
    assert_eq!(
        header(&echo, "authorization"),
        vec!["Bearer [agent-vault:redacted]".to_owned()]
    );
    assert!(!body.contains("new-api-sentinel"), "{body}");

    // A proxy-role agent reads no values.
    let denied = curl_json(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!(
            "{}/v1/vaults/default/credentials/BEARER_TOKEN",
            rig.server.url
        ),
    ]);
    assert_eq!(denied["error"], "forbidden");

    // With two vaults the agent must name one.
    rig.home.run(&["vault", "create", "second"]).ok();
    rig.home
        .run(&["vault", "agent", "add", "bot", "--vault", "second"])
        .ok();
    rig.home
        .run(&["vault", "agent", "add", "bot", "--vault", "second"])
        .fails_with("already in vault");
    let (codes, _) = proxied(&rig, &token, None, "/bearer");
    assert!(codes.starts_with("400"), "{codes}");
    assert_eq!(
        proxied(&rig, &token, Some("default"), "/bearer").0,
        "200 200"
    );
    let agents = rig
        .home
        .run(&["vault", "agent", "list", "--vault", "second"])
        .ok();
    assert!(
        agents.stdout.contains("bot") && agents.stdout.contains("proxy"),
        "{agents}"
    );
    rig.home
        .run(&[
            "vault", "agent", "set-role", "bot", "--role", "member", "--vault", "second",
        ])
        .ok();
    rig.home
        .run(&["vault", "agent", "remove", "bot", "--vault", "second"])
        .ok();
    rig.home
        .run(&["vault", "agent", "remove", "bot", "--vault", "second"])
        .fails_with("is not a member of vault");

    let info = rig.home.run(&["agent", "info", "bot"]).ok();
    assert!(
        info.stdout.contains("1 active") && info.stdout.contains("default (proxy)"),
        "{info}"
    );
    assert!(rig.home.run(&["agent", "list"]).ok().stdout.contains("bot"));

    // Rotation: the old token works until the new invite is redeemed, then stops.
    let rotate = rig.home.run(&["agent", "rotate", "bot"]).ok();
    let rotate_url = rotate
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("curl -sS -X POST "))
        .unwrap()
        .to_owned();
    assert_eq!(
        proxied(&rig, &token, Some("default"), "/bearer").0,
        "200 200"
    );
    let new_token = redeem(&rotate_url)["agent_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, token);
    assert!(
        proxied(&rig, &token, Some("default"), "/bearer")
            .0
            .starts_with("407")
    );
    assert_eq!(
        proxied(&rig, &new_token, Some("default"), "/bearer").0,
        "200 200"
    );

    rig.home.run(&["agent", "rename", "bot", "robot"]).ok();
    rig.home
        .run(&["agent", "set-role", "robot", "--role", "owner"])
        .ok();
    rig.home.run(&["agent", "delete", "robot"]).ok();
    assert!(
        proxied(&rig, &new_token, Some("default"), "/bearer")
            .0
            .starts_with("407")
    );
    rig.home
        .run(&["agent", "info", "robot"])
        .fails_with("no agent named");
}

#[test]
fn agent_invites_token_only_and_revocation() {
    let rig = Rig::start(true);
    let raw = rig
        .home
        .run(&[
            "agent",
            "invite",
            "quiet",
            "--token-only",
            "--invite-ttl",
            "1h30m",
        ])
        .ok();
    assert!(
        raw.stdout.starts_with("av_ainv_") && !raw.stdout.contains('\n'),
        "{raw}"
    );
    let suffix = &raw.stdout[raw.stdout.len() - 8..];
    rig.home
        .run(&["agent", "invite", "x", "--invite-ttl", "soon"])
        .fails_with("not a duration");
    // Go's duration format: fractions and every unit; the server still bounds the lifetime.
    let fraction = rig
        .home
        .run(&["agent", "invite", "frac", "--invite-ttl", "1.5h"])
        .ok();
    let expires = fraction
        .stdout
        .split("expires ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|at| at.trim_end_matches('.'))
        .unwrap_or_else(|| panic!("{fraction}"));
    let expires = chrono::DateTime::parse_from_rfc3339(expires)
        .unwrap()
        .timestamp();
    let left = expires - chrono::Utc::now().timestamp();
    assert!((5300..=5400).contains(&left), "1.5h became {left} s");
    rig.home
        .run(&["agent", "invite", "ms", "--invite-ttl", "300ms"])
        .fails_with("out of range");
    rig.home
        .run(&["agent", "invite", "minute", "--invite-ttl", "60000ms"])
        .ok();
    rig.home
        .run(&["agent", "invite", "Bad Name"])
        .fails_with("not a valid agent name");
    rig.home
        .run(&["agent", "invite", "y", "--vault", "nope:proxy"])
        .fails_with("does not exist");
    rig.home.run(&["agent", "invite", "revoke", suffix]).ok();
    let url = format!("{}/v1/agent-invites/{}/redeem", rig.server.url, raw.stdout);
    assert_eq!(redeem(&url)["error"], "invite_used");
}

fn env_of(run: &Run) -> Vec<(String, String)> {
    run.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Against an `https://` server (here a TLS front with its own CA, trusted through
/// `SSL_CERT_FILE`), a process-mode agent reaches the API directly and verifies it: the CA
/// file its clients are pointed at holds this machine's roots after the servers'.
#[test]
fn a_process_agent_verifies_an_https_api_it_reaches_directly() {
    let rig = Rig::start_with(true, Upstream::start_on("127.0.0.2"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint();
    let api_port: u16 = rig.server.url.rsplit(':').next().unwrap().parse().unwrap();
    let front = cert.tls_front(&runtime, "127.0.0.1", api_port);
    let front_ca = rig.home.path().join("front-ca.pem");
    std::fs::write(&front_ca, &cert.ca_pem).unwrap();
    let trust = [("SSL_CERT_FILE", front_ca.to_str().unwrap())];
    let address = format!("https://127.0.0.1:{front}");
    login_at_with(&rig, &address, &trust);
    let script = "curl -sS --fail \"$AGENT_VAULT_ADDR/health\"";
    let args = [
        "vault",
        "run",
        "--address",
        &address,
        "--",
        "sh",
        "-c",
        script,
    ];
    let run = rig.home.run_with(&args, "", &trust).ok();
    assert!(run.stdout.contains("\"database\""), "{run}");
}

#[test]
fn vault_run_builds_the_environment_and_cleans_up() {
    // The upstream is on 127.0.0.2 so NO_PROXY (loopback names, 127.0.0.1) does not skip it.
    let rig = Rig::start_with(true, Upstream::start_on("127.0.0.2"));
    let mut cmd = rig.home.command(&["vault", "run", "--", "env"]);
    cmd.env("HTTPS_PROXY", "http://stale:1")
        .env("no_proxy", "stale")
        .env("SSL_CERT_FILE", "/stale.pem");
    // The server's secrets, set in the same shell: none reaches the agent.
    let server_secrets = [
        "AGENT_VAULT_MASTER_PASSWORD",
        "AGENT_VAULT_SMTP_PASSWORD",
        "AGENT_VAULT_OAUTH_GOOGLE_CLIENT_SECRET",
        "AGENT_VAULT_DATABASE_URL",
    ];
    for var in server_secrets {
        cmd.env(var, "never-passed-on");
    }
    let run = crate::harness::run_command(cmd, "").ok();
    let env = env_of(&run);
    let get = |k: &str| {
        env.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let token = get("AGENT_VAULT_SESSION_TOKEN")[0].to_owned();
    assert!(token.starts_with("av_sess_"));
    assert_eq!(get("AGENT_VAULT_VAULT"), vec!["default"]);
    assert_eq!(get("AGENT_VAULT_ADDR"), vec![rig.server.url.as_str()]);
    let proxy = format!("http://{token}:default@127.0.0.1:{}", rig.mitm);
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        assert_eq!(
            get(var),
            vec![proxy.as_str()],
            "{var} set once, stale copy replaced"
        );
    }
    for var in ["NO_PROXY", "no_proxy"] {
        assert_eq!(get(var), vec!["localhost,127.0.0.1,::1"], "{var}");
    }
    assert_eq!(get("NODE_USE_ENV_PROXY"), vec!["1"]);
    let ca = rig.home.state().join("mitm-ca.pem").display().to_string();
    for var in [
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "DENO_CERT",
    ] {
        assert_eq!(get(var), vec![ca.as_str()], "{var}");
    }
    for var in server_secrets {
        assert!(get(var).is_empty(), "{var} reached the agent");
    }
    // Nor through the environment of the `vault run` that started it.
    let mut cmd = rig.home.command(&[
        "vault",
        "run",
        "--",
        "sh",
        "-c",
        "tr '\\0' '\\n' < /proc/$PPID/environ",
    ]);
    for var in server_secrets {
        cmd.env(var, "never-passed-on");
    }
    let parent = crate::harness::run_command(cmd, "").ok();
    assert!(
        parent.stdout.contains("HOME="),
        "the parent's environment was read: {parent}"
    );
    assert!(!parent.stdout.contains("never-passed-on"), "{parent}");
    assert!(
        !run.stdout.contains(BEARER),
        "no credential value in the child's environment"
    );
    // The run's token is revoked when the child exits.
    let after = curl_json(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{}/v1/discover", rig.server.url),
    ]);
    assert_eq!(after["error"], "unauthorized", "{after}");

    // The agent-vault CLI inside the run acts as the run's proxy token, not as the login saved
    // in the same home: it cannot reveal values (the same command outside can).
    let bin = crate::harness::BIN;
    let inside = rig.home.run(&[
        "vault",
        "run",
        "--",
        bin,
        "vault",
        "credential",
        "list",
        "--reveal",
    ]);
    assert!(!inside.status.success(), "{inside}");
    assert!(inside.stderr.contains("proxy"), "{inside}");
    assert!(!inside.stdout.contains(BEARER), "{inside}");
    let outside = rig
        .home
        .run(&["vault", "credential", "list", "--reveal"])
        .ok();
    assert!(outside.stdout.contains(BEARER), "{outside}");

    // Exit codes pass through; the child's HTTPS goes through the broker.
    let code = rig.home.run(&["vault", "run", "--", "sh", "-c", "exit 42"]);
    assert_eq!(code.status.code(), Some(42), "{code}");
    let killed = rig
        .home
        .run(&["vault", "run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.status.code(), Some(143), "{killed}");
    let through = rig
        .home
        .run(&[
            "vault",
            "run",
            "--",
            "curl",
            "-sS",
            &rig.https("/bearer/run"),
        ])
        .ok();
    let echo: Value = serde_json::from_str(&through.stdout).unwrap_or_else(|_| panic!("{through}"));
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    let python = rig
        .home
        .run(&[
            "vault",
            "run",
            "--",
            "python3",
            "-c",
            &format!(
                "import requests; print(requests.get('{}').json()['headers']['authorization'][0])",
                rig.https("/bearer/py")
            ),
        ])
        .ok();
    assert_eq!(python.stdout.trim(), format!("Bearer {BEARER}"));

    // --no-mitm: only the AGENT_VAULT_* variables.
    let bare = rig
        .home
        .run(&["vault", "run", "--no-mitm", "--", "env"])
        .ok();
    let names: Vec<String> = env_of(&bare).into_iter().map(|(k, _)| k).collect();
    assert!(names.contains(&"AGENT_VAULT_SESSION_TOKEN".to_owned()));
    assert!(
        !names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("https_proxy") || n == "SSL_CERT_FILE"),
        "{bare}"
    );

    rig.home
        .run(&["vault", "run", "--image", "x", "--", "true"])
        .fails_with("only applies to --sandbox=container");
    rig.home
        .run(&["vault", "run", "--ttl", "5", "--", "true"])
        .fails_with("out of range");
    let missing = rig
        .home
        .run(&["vault", "run", "--", "no-such-command-here"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(missing.stderr.contains("command not found"), "{missing}");

    // Inside a run, the CLI works as the agent: discover with the run's token.
    let bin_dir = std::path::Path::new(crate::harness::BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut discover = rig.home.command(&[
        "vault",
        "run",
        "--",
        "agent-vault",
        "vault",
        "discover",
        "--json",
    ]);
    discover.env(
        "PATH",
        format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
    );
    let found = crate::harness::run_command(discover, "").ok();
    let parsed: Value = serde_json::from_str(&found.stdout).unwrap_or_else(|_| panic!("{found}"));
    assert_eq!(parsed["vault"], "default");
    assert_eq!(parsed["role"], "proxy");
}

/// `name{labels} value` from Prometheus text, 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn metrics_text(rig: &Rig) -> String {
    server_metrics(&rig.server, &rig.home)
}

/// `/metrics` of `server`, read with the session of `home`'s owner.
pub fn server_metrics(server: &crate::harness::Server, home: &crate::harness::TestHome) -> String {
    crate::harness::http()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(home.session_token())
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn vault_run_reports_its_sandbox_start_to_metrics() {
    let rig = Rig::start(true);
    let run = rig.home.run(&["vault", "run", "--", "true"]).ok();
    assert!(!run.stderr.contains("did not record"), "{run}");
    let text = metrics_text(&rig);
    assert_eq!(
        metric(&text, "agent_vault_sandbox_runs_total{mode=\"process\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "agent_vault_sandbox_start_duration_seconds_count{mode=\"process\"}"
        ),
        1.0,
        "{text}"
    );
    // A command that never started is not a run.
    rig.home
        .run(&["vault", "run", "--", "no-such-command-here"]);
    assert_eq!(
        metric(
            &metrics_text(&rig),
            "agent_vault_sandbox_runs_total{mode=\"process\"}"
        ),
        1.0
    );

    // The route: authenticated, bounded, strict about its body.
    let url = format!("{}/v1/sandbox/runs", rig.server.url);
    let post = |token: Option<&str>, body: Value| {
        let mut request = crate::harness::http().post(&url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().unwrap(),
        )
    };
    let token = rig.home.session_token();
    let good = json!({"mode": "container", "start_ms": 1500});
    assert_eq!(post(None, good.clone()).0, 401);
    assert_eq!(post(Some(&token), good).0, 201);
    for bad in [
        json!({"mode": "vm", "start_ms": 1}),
        json!({"mode": "process", "start_ms": 3_600_001}),
        json!({"mode": "process", "start_ms": -1}),
        json!({"mode": "process"}),
        json!({"mode": "process", "start_ms": 1, "extra": true}),
    ] {
        let (status, body) = post(Some(&token), bad.clone());
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request", "{bad}: {body}");
    }
    let text = metrics_text(&rig);
    assert_eq!(
        metric(&text, "agent_vault_sandbox_runs_total{mode=\"container\"}"),
        1.0,
        "{text}"
    );
    assert!(
        text.contains(
            "agent_vault_sandbox_start_duration_seconds_bucket{le=\"2.56\",mode=\"container\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn vault_token_roles_and_ttl() {
    let rig = Rig::start(true);
    let admin = rig
        .home
        .run(&["vault", "token", "--role", "admin", "--ttl", "3600"])
        .ok()
        .stdout;
    let found = curl_json(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &format!("{}/v1/discover", rig.server.url),
    ]);
    assert_eq!(found["role"], "admin");
    rig.home
        .run(&["vault", "token", "--ttl", "604801"])
        .fails_with("out of range");
    // A proxy token cannot mint more tokens.
    let minted = curl_json(&[
        "-H",
        &format!("Authorization: Bearer {}", rig.token),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"vault":"default"}"#,
        &format!("{}/v1/sessions", rig.server.url),
    ]);
    assert_eq!(minted["error"], "forbidden");
}

/// HTTP status of `GET /v1/discover` with `token`: 200 while the token lives, 401 after.
pub fn token_status(server_url: &str, token: &str) -> u16 {
    crate::harness::http()
        .get(format!("{server_url}/v1/discover"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `token` is refused; returns how long that took after `since`.
pub fn refused_after(server_url: &str, token: &str, since: std::time::Instant) -> Duration {
    for _ in 0..150 {
        if token_status(server_url, token) == 401 {
            return since.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the token of a killed run was still accepted 15 s later");
}

#[test]
fn a_killed_run_s_token_dies_with_its_lease() {
    let rig = Rig::start(true);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let child_pid = dir.path().join("pid");
    let script = format!(
        "echo $$ > {}; printf %s \"$AGENT_VAULT_SESSION_TOKEN\" > {}; exec sleep 600",
        child_pid.display(),
        token_file.display()
    );
    let mut cmd = rig
        .home
        .command(&["vault", "run", "--", "sh", "-c", &script]);
    cmd.env("AGENT_VAULT_RUN_LEASE", "2s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut run = cmd.spawn().unwrap();
    let token = crate::harness::poll("the child", Duration::from_millis(100), || {
        crate::harness::written(&token_file)
    });
    // Well past one lease: the run's renewals keep its token alive.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(token_status(&rig.server.url, &token), 200);
    run.kill().unwrap();
    let killed = std::time::Instant::now();
    run.wait().unwrap();
    let took = refused_after(&rig.server.url, &token, killed);
    assert!(took < Duration::from_secs(4), "refused only after {took:?}");
    // The orphaned child is ours to end.
    let pid = std::fs::read_to_string(&child_pid).unwrap();
    let _ = Command::new("kill").arg(pid.trim()).status();
}

/// An address of this machine that is not loopback (a broker reached there counts as off
/// the machine), from `hostname -I`.
pub fn non_loopback_address() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .unwrap_or_else(|| panic!("no IPv4 address besides loopback: {out:?}"))
        .to_owned()
}

/// The rig's owner logs in at `address` too (the CLI keeps a login per server address).
pub fn login_at(rig: &Rig, address: &str) {
    login_at_with(rig, address, &[]);
}

/// [`login_at`] with more environment for the CLI (`SSL_CERT_FILE` for a front's CA, say).
pub fn login_at_with(rig: &Rig, address: &str, env: &[(&str, &str)]) {
    use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD};
    let args = [
        "auth",
        "login",
        "--address",
        address,
        "--email",
        OWNER_EMAIL,
        "--password-stdin",
    ];
    let login = rig
        .home
        .run_with(&args, &format!("{OWNER_PASSWORD}\n"), env)
        .ok();
    // A plain-HTTP address off this machine: the password's trip is named (never loopback's).
    let remote = address.starts_with("http://") && !address.starts_with("http://127.");
    assert_eq!(
        login.stderr.contains("plain HTTP off this machine"),
        remote,
        "{login}"
    );
}

#[test]
fn vault_run_reaches_a_remote_broker_through_its_tls_proxy() {
    let rig = Rig::start_with_args(
        Upstream::start_on("127.0.0.2"),
        &["--host", "0.0.0.0", "--proxy-tls-port", "auto"],
    );
    let tls_port = rig.server.proxy_tls_port.expect("the TLS proxy listens");
    let api_port = rig.server.url.rsplit(':').next().unwrap();
    let remote = format!("http://{}:{api_port}", non_loopback_address());
    // The API says where the TLS proxy is.
    let ca = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "--noproxy",
            "*",
            &format!("{remote}/v1/mitm/ca.pem"),
        ])
        .output()
        .unwrap();
    let ca = String::from_utf8_lossy(&ca.stdout).to_lowercase();
    assert!(
        ca.contains(&format!("x-proxy-tls-port: {tls_port}")),
        "{ca}"
    );

    login_at(&rig, &remote);
    let script = format!(
        "echo \"$HTTPS_PROXY\"; curl -sS {}",
        rig.https("/bearer/remote")
    );
    let run = rig
        .home
        .run(&[
            "vault",
            "run",
            "--address",
            &remote,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .ok();
    let (proxy, body) = run
        .stdout
        .split_once('\n')
        .unwrap_or_else(|| panic!("{run}"));
    // The agent's proxy is a relay on this machine; the broker is reached over TLS.
    assert!(proxy.contains("@127.0.0.1:"), "{run}");
    assert!(!proxy.contains(&format!(":{}", rig.mitm)), "{run}");
    assert!(run.stderr.contains(&format!(":{tls_port} (TLS)")), "{run}");
    assert!(!run.stderr.contains("plain HTTP"), "{run}");
    let echo: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );

    // The TLS port holds a certificate from the server's CA for the address asked for, and
    // takes proxy requests only inside TLS.
    let ca_file = rig.home.state().join("mitm-ca.pem");
    let (host, _) = remote
        .trim_start_matches("http://")
        .split_once(':')
        .unwrap();
    // curl with the TLS proxy, trusting the server's CA for both the proxy and the tunnel.
    let via_tls_proxy = |extra: &[&str], path: &str| {
        Command::new("curl")
            .args(["-sS", "--proxy-cacert"])
            .arg(&ca_file)
            .arg("--cacert")
            .arg(&ca_file)
            .args(["-x", &format!("https://{host}:{tls_port}")])
            .args(extra)
            .arg(rig.https(path))
            .output()
            .unwrap()
    };
    let no_token = via_tls_proxy(
        &["-o", "/dev/null", "-w", "%{http_connect}"],
        "/bearer/no-token",
    );
    assert_eq!(
        String::from_utf8_lossy(&no_token.stdout),
        "407",
        "curl to the TLS proxy without a token: {no_token:?}"
    );
    // An agent given the TLS proxy by its invite uses it straight from curl.
    let reply = redeem(&invite(&rig, &["tls-bot", "--vault", "default:proxy"]));
    let agent_token = reply["agent_token"].as_str().unwrap();
    let proxy_url = reply["proxy"]["https_proxy_tls"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"));
    assert!(proxy_url.ends_with(&format!(":{tls_port}")), "{reply}");
    let user = format!("{agent_token}:default");
    let direct = via_tls_proxy(&["--proxy-user", &user], "/bearer/agent-over-tls");
    let echo: Value =
        serde_json::from_slice(&direct.stdout).unwrap_or_else(|_| panic!("{direct:?}"));
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );

    let plain = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["-x", &format!("http://{host}:{tls_port}")])
        .arg("http://127.0.0.2/")
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "407", "{plain:?}");
    assert!(
        !plain.status.success(),
        "plain HTTP on the TLS port: {plain:?}"
    );

    // Without the TLS port, a run against the same remote broker is warned.
    let plain_rig = Rig::start_with_args(Upstream::start_on("127.0.0.2"), &["--host", "0.0.0.0"]);
    let api_port = plain_rig.server.url.rsplit(':').next().unwrap();
    let remote = format!("http://{host}:{api_port}");
    login_at(&plain_rig, &remote);
    let warned = plain_rig
        .home
        .run(&["vault", "run", "--address", &remote, "--", "true"])
        .ok();
    assert!(warned.stderr.contains("plain HTTP"), "{warned}");
    assert!(warned.stderr.contains("--proxy-tls-port"), "{warned}");
}

#[test]
fn a_run_keeps_trusting_its_broker_while_another_runs_against_another_server() {
    let a = Rig::start_with(true, Upstream::start_on("127.0.0.2"));
    let b = Rig::start_with(true, Upstream::start_on("127.0.0.2"));
    login_at(&a, &b.server.url);
    let flag = a.home.path().join("b-has-run");
    // Run A waits until a run against B has written its CA, then makes a new connection.
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.1; done; curl -sS {}",
        flag.display(),
        a.https("/bearer/after-b")
    );
    let cmd = a.home.command(&[
        "vault",
        "run",
        "--address",
        &a.server.url,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let first = std::thread::spawn(move || crate::harness::run_command(cmd, ""));
    a.home
        .run(&["vault", "run", "--address", &b.server.url, "--", "true"])
        .ok();
    std::fs::write(&flag, "").unwrap();
    let first = first.join().unwrap().ok();
    let echo: Value = serde_json::from_str(&first.stdout).unwrap_or_else(|_| panic!("{first}"));
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    // Both servers' roots, then this machine's (see `cli::vault::ca_bundle`).
    let bundle = std::fs::read_to_string(a.home.state().join("mitm-ca.pem")).unwrap();
    let (servers, _machine) = bundle
        .split_once("# agent-vault: the roots this machine trusts follow")
        .unwrap_or_else(|| panic!("no machine roots: {bundle}"));
    assert_eq!(servers.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
}
