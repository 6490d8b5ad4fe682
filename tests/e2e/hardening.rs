//! Small hardening through the real binary: path scopes that cannot be escaped, upstream
//! errors that tell the agent no more than it needs, and ended sessions purged.

use std::process::Command;

use serde_json::Value;

use crate::broker::{BEARER, Rig, header};
use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD, TestHome, free_port, poll};
use crate::upstream::Upstream;

/// Paths under the `/bearer` scope that a server on the way could resolve elsewhere.
const ESCAPES: [&str; 17] = [
    "/bearer/..;/admin",
    "/bearer/..;jsessionid=1/admin",
    "/bearer/%2e%2e;/admin",
    "/bearer/%252e%252e/admin",
    "/bearer/%25252e%25252e/admin",
    "/bearer%252f..%252fadmin",
    "/bearer/%c0%ae%c0%ae/admin",
    "/bearer/%e0%80%ae%e0%80%ae/admin",
    "/bearer/%ef%bc%8e%ef%bc%8e/admin",
    "/bearer/%5c..%5cadmin",
    "/bearer/%255cadmin",
    "/bearer/..%00/admin",
    "/bearer/%e2%80%a5/admin",
    "/bearer/%ef%b8%b0/admin",
    "/bearer/%u002e%u002e/admin",
    "/bearer/..%20/admin",
    "/bearer/..%2e%20/..%20/admin",
];

#[test]
fn escaping_path_forms_never_carry_a_path_scoped_credential() {
    let rig = Rig::start(true);
    // The scope works: inside it the credential goes in — and headers that some servers
    // route on instead of the path (or build links from) do not go with it.
    let overrides = [
        "X-Original-URL: /admin",
        "X-Rewrite-URL: /admin",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Host: evil.example",
        "Forwarded: host=evil.example",
    ];
    let mut args = vec!["--path-as-is"];
    for line in &overrides {
        args.extend(["-H", line]);
    }
    let inside = rig.echo(&args, "/bearer/v1");
    assert_eq!(
        header(&inside, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    for line in overrides {
        let name = line.split(':').next().unwrap().to_lowercase();
        assert!(header(&inside, &name).is_empty(), "{name}: {inside}");
    }
    // Without a credential they are the agent's own business and pass.
    let plain = rig.echo(&["-H", "X-Forwarded-Host: mine.example"], "/passthrough/x");
    assert_eq!(header(&plain, "x-forwarded-host"), ["mine.example"]);
    for path in ESCAPES {
        // Through the MITM proxy (no service matches: forwarded without a credential).
        let echo = rig.echo(&["--path-as-is"], path);
        assert!(
            header(&echo, "authorization").is_empty(),
            "MITM {path}: {echo}"
        );
        // Through the explicit endpoint on the API port.
        let out = Command::new("curl")
            .args(["-sS", "--path-as-is", "--noproxy", "*", "-H"])
            .arg(format!("Authorization: Bearer {}", rig.token.trim()))
            .args(["-H", "X-Vault: default"])
            .arg(format!(
                "{}/proxy/127.0.0.1:{}{path}",
                rig.server.url, rig.upstream.https_port
            ))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(!body.contains(BEARER), "explicit {path}: {body}");
        let echo: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert!(echo["headers"].is_object(), "explicit {path}: {body}");
    }
}

#[test]
fn upstream_tls_errors_do_not_list_the_certificate_names() {
    // The upstream's certificate does not name 127.0.0.5, where it listens.
    let rig = Rig::start_with(true, Upstream::start_on("127.0.0.5"));
    let (status, body, _) = rig.curl(&[], &rig.https("/bearer"));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_error"), "{body}");
    assert!(body.contains("not valid for this name"), "{body}");
    for name in ["localhost", "api.anthropic.com", "127.0.0.2"] {
        assert!(!body.contains(name), "the agent learns {name}: {body}");
    }
    let (_, output) = rig.server.stop_with("TERM");
    assert!(
        output.contains("api.anthropic.com"),
        "the server log has the detail: {output}"
    );
}

fn session_kinds(home: &TestHome) -> Vec<String> {
    let db = rusqlite::Connection::open(home.state().join("agent-vault.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT kind FROM sessions ORDER BY kind")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn ended_sessions_are_purged() {
    let home = TestHome::new();
    // One address across the restart, so the saved login still applies.
    let port = free_port().to_string();
    let server = home.start_server(&["--port", &port], "", &[]);
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
    home.run(&["vault", "token"]).ok();
    let (_, _) = server.stop_with("TERM");
    assert_eq!(session_kinds(&home), ["scoped", "user"]);
    // The token ended an hour ago (as if the server had been down meanwhile).
    {
        let db = rusqlite::Connection::open(home.state().join("agent-vault.db")).unwrap();
        let past = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 3600;
        db.execute(
            "UPDATE sessions SET expires_at = ?1, max_expires_at = NULL WHERE kind = 'scoped'",
            [past],
        )
        .unwrap();
    }
    let server = home.start_server(&["--port", &port], "", &[]);
    poll(
        "the ended token to be purged",
        std::time::Duration::from_millis(100),
        || (session_kinds(&home) == ["user"]).then_some(()),
    );
    // The live login is kept and still works.
    home.run(&["account", "whoami"]).ok();
    drop(server);
}

/// A substitution without `in` replaces its placeholder in the path and the query only: in a
/// header or a body the agent could place the value anywhere (a message it stores and reads
/// back), so those surfaces must be listed — as the reference implementation has it.
#[test]
fn a_substitution_without_in_applies_to_the_path_and_the_query() {
    let rig = Rig::start(true);
    rig.add_services(&format!(
        "services:
  - host: {ip}
    port: {port}
    path: /implicit
    scrub_responses: false
    auth: {{type: passthrough}}
    substitutions:
      - placeholder: __implicit__
        key: SUB_KEY
",
        ip = rig.upstream.ip,
        port = rig.upstream.https_port
    ));
    let echo = rig.echo(
        &["-H", "x-note: __implicit__", "--data", "note=__implicit__"],
        "/implicit/__implicit__?k=__implicit__",
    );
    let value = "SENTINEL-sub-44%26x%2Fy";
    assert_eq!(echo["path"], format!("/implicit/{value}"), "{echo}");
    assert_eq!(echo["query"], format!("k={value}"), "{echo}");
    assert_eq!(header(&echo, "x-note"), ["__implicit__"], "{echo}");
    assert_eq!(echo["body"], "note=__implicit__", "{echo}");
}

/// A program of another account listening on a loopback port (as one could while your server
/// is stopped) gets neither a password nor a token: the CLI names the account and sends
/// nothing, unless told that account runs the server.
#[test]
fn a_loopback_listener_of_another_account_gets_nothing() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::getuid().is_root() {
        return; // listening as another account needs root
    }
    let home = TestHome::new();
    let squatter = home.path().join("squatter.py");
    std::fs::write(
        &squatter,
        "import socket, sys\n\
         s = socket.create_server(('127.0.0.1', 0))\n\
         print(s.getsockname()[1], flush=True)\n\
         while True:\n\
         \x20   c, _ = s.accept()\n\
         \x20   print('connected', flush=True)\n\
         \x20   c.close()\n",
    )
    .unwrap();
    let mut child = Command::new("python3")
        .arg(&squatter)
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let squatting = crate::harness::KillOnDrop(child);
    let port = lines.next().unwrap().unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let login = |envs: &[(&str, &str)]| {
        home.run_with(
            &[
                "auth",
                "login",
                "--address",
                &address,
                "--email",
                OWNER_EMAIL,
                "--password-stdin",
            ],
            &format!("{OWNER_PASSWORD}\n"),
            envs,
        )
    };
    login(&[])
        .fails_with("served by another account")
        .fails_with("AGENT_VAULT_SERVER_UID=65534");
    // Told that account runs the server, the CLI connects (and this one answers nothing).
    assert!(
        !login(&[("AGENT_VAULT_SERVER_UID", "65534")])
            .status
            .success()
    );
    drop(squatting);
    let seen: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(seen, ["connected"], "only the allowed attempt reached it");
}

/// An invite link names the server the password goes to. One the person never logged in to
/// (a link from anyone, answering that an account exists) is named before the password goes.
#[test]
fn an_invite_link_to_an_unknown_server_is_named_before_the_password_goes() {
    use std::io::BufRead;
    let home = TestHome::new();
    let fake = home.path().join("fake.py");
    std::fs::write(
        &fake,
        r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.reply(200, {"email": "you@example.com", "role": "member", "status": "pending",
                         "account_exists": True, "vaults": []})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.reply(401, {"error": "unauthorized", "message": "no"})
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#,
    )
    .unwrap();
    let mut child = Command::new("python3")
        .arg(&fake)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _fake = crate::harness::KillOnDrop(child);
    let port = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let link = format!("http://127.0.0.1:{port}/invite/av_uinv_fake");
    let run = home.accept_invite(&link, "my-real-password");
    assert!(!run.status.success(), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "you have never logged in to http://127.0.0.1:{port}"
        )),
        "{run}"
    );
}

/// DNS rebinding: a page that points a name of its own at the server reads it as its own
/// origin, and its requests name it in `Host`. The API port answers only the server's names
/// (here `localhost`) and IP addresses; the web UI too, before any account exists.
#[test]
fn the_api_port_answers_only_its_own_names() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let ask = |host: &str, path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Host: {host}"))
            .arg(format!("{}{path}", server.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for path in ["/v1/status", "/", "/v1/auth/register"] {
        assert_eq!(
            ask(&format!("rebound.example:{port}"), path),
            "421",
            "{path}"
        );
    }
    assert_eq!(ask(&format!("localhost:{port}"), "/v1/status"), "200");
    assert_eq!(ask(&format!("127.0.0.1:{port}"), "/v1/status"), "200");
    assert_eq!(ask("rebound.example", "/health"), "200");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Host: rebound.example",
            "-H",
            "Content-Type: application/json",
        ])
        .args([
            "--data",
            r#"{"email":"a@example.com","password":"password-1234"}"#,
        ])
        .arg(format!("{}/v1/auth/register", server.url))
        .output()
        .unwrap();
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["error"], "unknown_host", "{reply}");
    // Nothing was registered: the first owner is still to come.
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
}
