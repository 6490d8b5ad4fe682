//! Proposals end to end: an agent files one over plain HTTP with its vault token, people
//! review it with the CLI or the browser page, and approval applies it — with the refusals
//! that must happen (the token cannot approve, nobody approves their own proposal).

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Cli, OWNER_EMAIL, OWNER_PASSWORD, TestHome};

const OWNER: &str = OWNER_EMAIL;

/// curl with extra arguments; returns (status, body). Never goes through a proxy.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_owned())
}

/// A JSON request with a bearer token over curl; returns (status, JSON body).
fn curl_json(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {token}");
    let mut args = vec!["-X", method, "-H", &auth];
    let text;
    if let Some(body) = body {
        text = body.to_string();
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &text,
        ]);
    }
    args.push(url);
    let (status, body) = curl(&args);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn example_proposal() -> Value {
    json!({
        "services": [{
            "host": "api.example.com",
            "auth": { "type": "bearer", "token": "EXAMPLE_TOKEN" }
        }],
        "credentials": [{ "key": "EXAMPLE_TOKEN", "description": "Example API token" }],
        "message": "need the example API for the report",
        "user_message": "Please add the Example API so I can pull the numbers."
    })
}

#[test]
fn agent_files_and_a_person_approves() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let token = owner.token("default");
    let url = |path: &str| format!("{}{path}", server.url);

    // The agent files over plain HTTP with its proxy token.
    let (status, created) = curl_json(
        "POST",
        &url("/v1/proposals"),
        &token,
        Some(example_proposal()),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["number"], 1);
    assert_eq!(created["status"], "pending");
    assert_eq!(created["vault"], "default");
    let link = created["approval_url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/approve/default/1?token=av_appr_", server.url)),
        "{link}"
    );

    let list = owner.run(&["vault", "proposal", "list"]).ok();
    for needle in [
        "#",
        "STATUS",
        "pending",
        "token of owner@example.com",
        "need the example API",
    ] {
        assert!(list.stdout.contains(needle), "{needle}: {list}");
    }
    let show = owner.run(&["vault", "proposal", "show", "1"]).ok();
    for needle in [
        "Proposal #1 in vault \"default\": pending",
        "host: api.example.com",
        "token: EXAMPLE_TOKEN",
        "• EXAMPLE_TOKEN — Example API token (needs a value)",
        "Please add the Example API",
    ] {
        assert!(show.stdout.contains(needle), "{needle}: {show}");
    }

    // The token that filed it cannot approve it.
    let (status, refused) = curl_json(
        "POST",
        &url("/v1/vaults/default/proposals/1/approve"),
        &token,
        Some(json!({ "credentials": { "EXAMPLE_TOKEN": "x" } })),
    );
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("login"),
        "{refused}"
    );

    // Values are required, and without a terminal so is --yes.
    owner
        .run(&["vault", "proposal", "approve", "1"])
        .fails_with("--yes");
    owner
        .run(&["vault", "proposal", "approve", "1", "--yes"])
        .fails_with("EXAMPLE_TOKEN=VALUE");
    let (status, missing) = curl_json(
        "POST",
        &url("/v1/vaults/default/proposals/1/approve"),
        &owner.home.session_token(),
        Some(json!({})),
    );
    assert_eq!(status, 400, "{missing}");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("needs a value for EXAMPLE_TOKEN"),
        "{missing}"
    );
    owner
        .run(&[
            "vault",
            "proposal",
            "approve",
            "1",
            "OTHER_KEY=x",
            "EXAMPLE_TOKEN=v",
            "--yes",
        ])
        .fails_with("does not use OTHER_KEY");
    assert!(
        owner
            .run(&["vault", "service", "list"])
            .ok()
            .stdout
            .lines()
            .all(|l| !l.contains("api.example.com")),
        "nothing is applied by a refused approval"
    );

    let approved = owner
        .run(&[
            "vault",
            "proposal",
            "approve",
            "1",
            "EXAMPLE_TOKEN=example-secret-1",
            "--yes",
        ])
        .ok();
    assert!(
        approved
            .stdout
            .contains("✓ Proposal #1 approved and applied."),
        "{approved}"
    );
    let services = owner.run(&["vault", "service", "list"]).ok();
    assert!(services.stdout.contains("api.example.com"), "{services}");
    let value = owner
        .run(&["vault", "credential", "get", "EXAMPLE_TOKEN"])
        .ok();
    assert_eq!(value.stdout, "example-secret-1");
    owner
        .run(&[
            "vault",
            "proposal",
            "approve",
            "1",
            "EXAMPLE_TOKEN=again",
            "--yes",
        ])
        .fails_with("already approved");
    let (status, again) = curl_json(
        "POST",
        &url("/v1/vaults/default/proposals/1/approve"),
        &owner.home.session_token(),
        Some(json!({ "credentials": { "EXAMPLE_TOKEN": "again" } })),
    );
    assert_eq!(status, 409, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("proposal #1 is already approved"),
        "{again}"
    );
    let show = owner.run(&["vault", "proposal", "show", "1"]).ok();
    assert!(
        show.stdout.contains("by owner@example.com (approved)"),
        "{show}"
    );

    // Agent mode: the CLI inside `vault run` files with the session token, no login needed.
    let agent = TestHome::new();
    let agent_env = [
        ("AGENT_VAULT_SESSION_TOKEN", token.as_str()),
        ("AGENT_VAULT_ADDR", server.url.as_str()),
    ];
    let filed = agent
        .run_with(
            &[
                "vault",
                "proposal",
                "create",
                "--host",
                "api.other.com",
                "--auth-type",
                "api-key",
                "--api-key-key",
                "OTHER_KEY",
                "--api-key-header",
                "x-api-key",
                "--credential",
                "OTHER_KEY=The other key",
                "-m",
                "second one",
            ],
            "",
            &agent_env,
        )
        .ok();
    assert!(
        filed
            .stdout
            .contains("✓ Proposal #2 created in vault \"default\"."),
        "{filed}"
    );
    assert!(
        filed.stdout.contains(&format!(
            "Approve at: {}/approve/default/2?token=",
            server.url
        )),
        "{filed}"
    );
    agent
        .run_with(
            &["vault", "proposal", "create", "--credential", "X_KEY"],
            "",
            &agent_env[..1],
        )
        .fails_with("AGENT_VAULT_ADDR");
    let polled = agent
        .run_with(&["vault", "proposal", "show", "2"], "", &agent_env)
        .ok();
    assert!(polled.stdout.contains("pending"), "{polled}");

    // Rejection keeps the reason, which the agent can read back.
    owner
        .run(&[
            "vault",
            "proposal",
            "reject",
            "2",
            "--reason",
            "use the existing key",
        ])
        .ok();
    owner
        .run(&["vault", "proposal", "reject", "2"])
        .fails_with("already rejected");
    owner
        .run(&["vault", "proposal", "approve", "2", "OTHER_KEY=x", "--yes"])
        .fails_with("already rejected");
    let (status, seen) = curl_json("GET", &url("/v1/vaults/default/proposals/2"), &token, None);
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["status"], "rejected");
    assert_eq!(seen["review_note"], "use the existing key");
    assert_eq!(seen["created_by"]["type"], "scoped");
    assert_eq!(seen["created_by"]["minted_by"]["name"], OWNER);
    // A proxy-role caller lists only pending proposals; a person sees them all.
    let (_, listed) = curl_json("GET", &url("/v1/vaults/default/proposals"), &token, None);
    assert_eq!(listed["proposals"], json!([]), "{listed}");
    let all = owner
        .run(&["vault", "proposal", "list", "--status", "rejected"])
        .ok();
    assert!(
        all.stdout.contains("rejected") && !all.stdout.contains("approved"),
        "{all}"
    );

    // --json prints the server's reply; an existing key may be requested again.
    let json_reply = agent
        .run_with(
            &[
                "vault",
                "proposal",
                "create",
                "--credential",
                "EXAMPLE_TOKEN=rotate it",
                "--json",
            ],
            "",
            &agent_env,
        )
        .ok();
    let reply: Value = serde_json::from_str(&json_reply.stdout).unwrap();
    assert_eq!(reply["number"], 3, "{json_reply}");
    let show = owner.run(&["vault", "proposal", "show", "3"]).ok();
    assert!(
        show.stdout
            .contains("✓ EXAMPLE_TOKEN — rotate it (already set; kept unless you give a value)"),
        "{show}"
    );
    owner
        .run(&["vault", "proposal", "approve", "3", "--yes"])
        .ok();
    assert_eq!(
        owner
            .run(&["vault", "credential", "get", "EXAMPLE_TOKEN"])
            .ok()
            .stdout,
        "example-secret-1",
        "an existing value is kept when none is given"
    );
    owner
        .run(&["vault", "proposal", "review"])
        .fails_with("needs a terminal");

    // A proposed service with the host of a current one replaces it: the reviewer sees both.
    let swap = json!({
        "services": [{"host": "api.example.com", "auth": {"type": "passthrough"}}],
        "message": "simplify",
    });
    let (status, filed) = curl_json("POST", &url("/v1/proposals"), &token, Some(swap));
    assert_eq!(status, 201, "{filed}");
    let number = filed["number"].to_string();
    let show = owner.run(&["vault", "proposal", "show", &number]).ok();
    let (_, replaced) = show
        .stdout
        .split_once("Approving replaces these current services (same host, port and path):")
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        replaced.contains("api.example.com") && replaced.contains("EXAMPLE_TOKEN"),
        "{show}"
    );
}

#[test]
fn bad_proposals_are_refused() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let token = owner.token("default");
    let url = format!("{}/v1/proposals", server.url);
    let dir = owner.home.path();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    // The -f document is checked before anything is sent.
    let broken = write("broken.json", "{\"services\": [");
    owner
        .run(&["vault", "proposal", "create", "-f", &broken])
        .fails_with("not valid JSON");
    let unknown = write("unknown.json", r#"{"credentials": [], "vaults": "x"}"#);
    owner
        .run(&["vault", "proposal", "create", "-f", &unknown])
        .fails_with("unknown field `vaults`");
    let bad_service = write(
        "bad-service.json",
        r#"{"services": [{"host": "api.example.com", "auth": {"type": "bearer", "token": "not a key"}}]}"#,
    );
    owner
        .run(&["vault", "proposal", "create", "-f", &bad_service])
        .fails_with("services[0]");
    let empty = write("empty.json", "{}");
    owner
        .run(&["vault", "proposal", "create", "-f", &empty])
        .fails_with("at least one service or credential");
    owner
        .run(&[
            "vault",
            "proposal",
            "create",
            "-f",
            &empty,
            "--host",
            "api.example.com",
        ])
        .fails_with("not both");
    owner
        .run(&["vault", "proposal", "create"])
        .fails_with("nothing to propose");
    owner
        .run(&["vault", "proposal", "create", "--credential", "bad-key"])
        .fails_with("not a credential key");
    // A service must name its keys: requested, or already in the vault.
    let unlisted = write(
        "unlisted.json",
        r#"{"services": [{"host": "api.example.com", "auth": {"type": "bearer", "token": "UNLISTED_KEY"}}]}"#,
    );
    owner
        .run(&["vault", "proposal", "create", "-f", &unlisted])
        .fails_with("UNLISTED_KEY");
    // A good file from stdin works.
    let piped = owner
        .home
        .run_with(
            &["vault", "proposal", "create", "-f", "-"],
            &example_proposal().to_string(),
            &[],
        )
        .ok();
    assert!(piped.stdout.contains("Proposal #1 created"), "{piped}");

    // Over HTTP: values, long messages, control characters, other vaults.
    for (body, needle) in [
        (
            json!({"credentials": [{"key": "K_ONE", "value": "sk-live-123"}]}),
            "cannot carry credential values",
        ),
        (
            json!({"credentials": ["K_ONE", "K_ONE"]}),
            "requested twice",
        ),
        (
            json!({"credentials": ["K_ONE"], "message": "x".repeat(2001)}),
            "longer than 2000",
        ),
        (
            json!({"credentials": ["K_ONE"], "user_message": "x".repeat(5001)}),
            "longer than 5000",
        ),
        (
            json!({"credentials": ["K_ONE"], "message": "hi\u{1b}[2J"}),
            "control characters",
        ),
        (
            json!({"credentials": ["K_ONE"], "message": "approve \u{202E}txt.exe"}),
            "text-direction control",
        ),
        (
            json!({"credentials": [{"key": "K_ONE", "description": "read-only \u{202E}nimda"}]}),
            "no control or text-direction characters",
        ),
        (json!({"services": [], "credentials": []}), "at least one"),
    ] {
        let (status, reply) = curl_json("POST", &url, &token, Some(body));
        assert_eq!(status, 400, "{reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle}: {message}");
        assert!(!message.contains("sk-live-123"), "{message}");
    }
    owner.run(&["vault", "create", "elsewhere"]).ok();
    let (status, reply) = curl_json(
        "POST",
        &url,
        &token,
        Some(json!({"vault": "elsewhere", "credentials": ["K_ONE"]})),
    );
    assert_eq!(status, 403, "{reply}");

    // At most 20 pending proposals per vault.
    for _ in 0..19 {
        let (status, reply) = curl_json(
            "POST",
            &url,
            &token,
            Some(json!({"credentials": ["K_ONE"]})),
        );
        assert_eq!(status, 201, "{reply}");
    }
    let (status, reply) = curl_json(
        "POST",
        &url,
        &token,
        Some(json!({"credentials": ["K_ONE"]})),
    );
    assert_eq!(status, 429, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("20 pending"),
        "{reply}"
    );
}

#[test]
fn members_review_others_proposals_but_not_their_own() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let bob = owner.add_person("bob@example.com", &["default:member"], "bob-password-1");

    // The owner files with their own login; they cannot approve it, a member can.
    owner
        .run(&[
            "vault",
            "proposal",
            "create",
            "--credential",
            "OWNER_KEY=for the owner's script",
        ])
        .ok();
    owner
        .run(&["vault", "proposal", "approve", "1", "OWNER_KEY=v1", "--yes"])
        .fails_with("you filed proposal #1 yourself");
    owner
        .run(&["vault", "proposal", "reject", "1"])
        .fails_with("yourself");
    let show = bob.run(&["vault", "proposal", "show", "1"]).ok();
    assert!(
        show.stdout.contains("Filed by:  owner@example.com"),
        "{show}"
    );
    bob.run(&["vault", "proposal", "approve", "1", "OWNER_KEY=v1", "--yes"])
        .ok();
    assert_eq!(
        owner
            .run(&["vault", "credential", "get", "OWNER_KEY"])
            .ok()
            .stdout,
        "v1"
    );

    // And the other way round.
    bob.run(&["vault", "proposal", "create", "--credential", "BOB_KEY"])
        .ok();
    bob.run(&["vault", "proposal", "approve", "2", "BOB_KEY=b", "--yes"])
        .fails_with("yourself");
    owner
        .run(&["vault", "proposal", "reject", "2", "--reason", "no"])
        .ok();
    let list = bob.run(&["vault", "proposal", "list"]).ok();
    assert!(
        list.stdout.contains("approved") && list.stdout.contains("rejected"),
        "{list}"
    );

    // Approving applies services, which members cannot change: a member who files a services
    // proposal through a token they minted still cannot approve it; an admin can.
    let bob_token = bob.run(&["vault", "token"]).ok().stdout.trim().to_owned();
    let (status, filed) = curl_json(
        "POST",
        &format!("{}/v1/proposals", server.url),
        &bob_token,
        Some(example_proposal()),
    );
    assert_eq!(status, 201, "{filed}");
    bob.run(&[
        "vault",
        "proposal",
        "approve",
        "3",
        "EXAMPLE_TOKEN=e",
        "--yes",
    ])
    .fails_with("needs the admin role");
    owner
        .run(&[
            "vault",
            "proposal",
            "approve",
            "3",
            "EXAMPLE_TOKEN=e",
            "--yes",
        ])
        .ok();
}

#[test]
fn approval_page_shows_and_applies_a_proposal() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let token = owner.token("default");
    let mut proposal = example_proposal();
    proposal["message"] = json!("<script>alert(1)</script> & more");
    let (status, created) = curl_json(
        "POST",
        &format!("{}/v1/proposals", server.url),
        &token,
        Some(proposal),
    );
    assert_eq!(status, 201, "{created}");
    let link = created["approval_url"].as_str().unwrap().to_owned();
    let approval_token = link.split("token=").nth(1).unwrap().to_owned();
    let action = format!("{}/approve/default/1", server.url);

    let browser = crate::harness::CurlBrowser::new();
    let (status, page) = browser.get(&link);
    assert_eq!(status, 200, "{page}");
    for needle in [
        "Proposal #1",
        "api.example.com",
        "EXAMPLE_TOKEN",
        "Example API token",
        "Please add the Example API",
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more",
        "method=\"post\"",
        "name=\"token\"",
        "name=\"value_EXAMPLE_TOKEN\"",
        "type=\"password\"",
    ] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    assert!(!page.contains("<script>"), "{page}");

    let form = |fields: &[(&str, &str)]| browser.post(&action, fields);
    let (status, _) = browser.post_without_csrf(
        &action,
        &[
            ("token", &approval_token),
            ("email", OWNER),
            ("password", OWNER_PASSWORD),
            ("value_EXAMPLE_TOKEN", "page-secret-1"),
            ("action", "approve"),
        ],
    );
    assert_eq!(status, 403, "a form without its CSRF token is refused");
    let (status, wrong) = form(&[
        ("token", &approval_token),
        ("email", OWNER),
        ("password", "wrong-password"),
        ("value_EXAMPLE_TOKEN", "page-secret-1"),
        ("action", "approve"),
    ]);
    assert_eq!(status, 401, "{wrong}");
    assert!(wrong.contains("Invalid email or password"), "{wrong}");
    assert!(!wrong.contains("page-secret-1"), "values are never echoed");
    let (status, missing) = form(&[
        ("token", &approval_token),
        ("email", OWNER),
        ("password", OWNER_PASSWORD),
        ("action", "approve"),
    ]);
    assert_eq!(status, 400, "{missing}");
    assert!(
        missing.contains("needs a value for EXAMPLE_TOKEN"),
        "{missing}"
    );
    let (status, _) = form(&[
        ("token", "av_appr_forged"),
        ("email", OWNER),
        ("password", OWNER_PASSWORD),
        ("value_EXAMPLE_TOKEN", "page-secret-1"),
        ("action", "approve"),
    ]);
    assert_eq!(status, 404, "a forged token cannot act");

    let (status, done) = form(&[
        ("token", &approval_token),
        ("email", OWNER),
        ("password", OWNER_PASSWORD),
        ("value_EXAMPLE_TOKEN", "page-secret-1"),
        ("action", "approve"),
    ]);
    assert_eq!(status, 200, "{done}");
    assert!(
        done.contains("approved by owner@example.com and applied"),
        "{done}"
    );
    assert!(!done.contains("page-secret-1"), "{done}");
    assert_eq!(
        owner
            .run(&["vault", "credential", "get", "EXAMPLE_TOKEN"])
            .ok()
            .stdout,
        "page-secret-1"
    );
    assert!(
        owner
            .run(&["vault", "service", "list"])
            .ok()
            .stdout
            .contains("api.example.com")
    );
    let (_, again) = browser.get(&link);
    assert!(
        again.contains("already <strong>approved</strong>"),
        "{again}"
    );
    assert!(!again.contains("value_EXAMPLE_TOKEN"), "{again}");

    // Rejection from the page, of a proposal that would replace the approved service with
    // one whose responses go unscrubbed: the page says both.
    let (_, second) = curl_json(
        "POST",
        &format!("{}/v1/proposals", server.url),
        &token,
        Some(json!({
            "services": [{
                "host": "api.example.com",
                "scrub_responses": false,
                "auth": { "type": "bearer", "token": "EXAMPLE_TOKEN" }
            }],
            "credentials": [{"key": "SECOND_KEY"}],
        })),
    );
    let second_token = second["approval_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    // The browser signed in with the approval above: it acts without a password now.
    let (_, page) = browser.get(&format!(
        "{}/approve/default/2?token={second_token}",
        server.url
    ));
    assert!(
        page.contains("<strong>responses not scrubbed</strong>")
            && page.contains("Replaces the current service"),
        "{page}"
    );
    let (status, rejected) = browser.post(
        &format!("{}/approve/default/2", server.url),
        &[
            ("token", &second_token),
            ("reason", "not today"),
            ("action", "reject"),
        ],
    );
    assert_eq!(status, 200, "{rejected}");
    assert!(rejected.contains("was rejected"), "{rejected}");
    let show = owner.run(&["vault", "proposal", "show", "2"]).ok();
    assert!(show.stdout.contains("not today"), "{show}");

    // Links with a wrong, missing or mismatched token show nothing.
    for bad in [
        format!("{}/approve/default/1?token=av_appr_nope", server.url),
        format!("{}/approve/default/1", server.url),
        format!("{}/approve/default/2?token={approval_token}", server.url),
        format!("{}/approve/ghost/1?token={approval_token}", server.url),
    ] {
        let (status, page) = browser.get(&bad);
        assert_eq!(status, 404, "{bad}: {page}");
        assert!(page.contains("not valid"), "{page}");
        assert!(!page.contains("api.example.com"), "{page}");
    }
}

#[test]
fn the_next_proxied_request_uses_an_approved_proposal() {
    let upstream = crate::upstream::Upstream::start();
    let home = TestHome::new();
    let ca_file = upstream.ca_file.display().to_string();
    let server = home.start_server(
        &[],
        "",
        &[
            ("SSL_CERT_FILE", ca_file.as_str()),
            ("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"),
        ],
    );
    let owner = Cli::owner(home, &server);
    let token = owner.token("default");
    let target = format!(
        "{}/proxy/127.0.0.1:{}/proposed/x",
        server.url, upstream.https_port
    );
    let fetch = || curl_json("GET", &target, &token, None);
    // Warm the broker's snapshot of the vault before the proposal exists.
    let (_, before) = fetch();
    assert!(!before.to_string().contains("proposed-secret"), "{before}");

    let (status, created) = curl_json(
        "POST",
        &format!("{}/v1/proposals", server.url),
        &token,
        Some(json!({
            "services": [{
                "host": format!("127.0.0.1:{}/proposed", upstream.https_port),
                "auth": { "type": "bearer", "token": "PROPOSED_TOKEN" }
            }],
            "credentials": [{ "key": "PROPOSED_TOKEN" }]
        })),
    );
    assert_eq!(status, 201, "{created}");
    owner
        .run(&[
            "vault",
            "proposal",
            "approve",
            "1",
            "PROPOSED_TOKEN=proposed-secret",
            "--yes",
        ])
        .ok();
    let (status, echo) = fetch();
    assert_eq!(status, 200, "{echo}");
    // The echoed credential comes back scrubbed: the marker stands exactly for the value.
    assert_eq!(
        echo["headers"]["authorization"],
        json!(["Bearer [agent-vault:redacted]"]),
        "{echo}"
    );
    assert!(!echo.to_string().contains("proposed-secret"), "{echo}");
}
