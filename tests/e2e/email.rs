//! Email end to end against a real SMTP server started here (Debian's python3-aiosmtpd,
//! `smtp_server.py`): plain and STARTTLS with a self-signed certificate made at test time,
//! with and without a login. Each message type arrives at the right address and the test
//! submits its code or follows its link; refusals, retries and the owner's view of failures;
//! no SMTP password or code in the server's log or environment.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    Cli, OWNER_EMAIL, OWNER_PASSWORD, Server, TestHome, contains, free_port, http,
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/smtp_server.py");
const SMTP_USER: &str = "mailer";
const SMTP_PASSWORD: &str = "smtp-password-SENTINEL-7f3a";

/// The interpreter that has aiosmtpd: Debian's package installs it for /usr/bin/python3,
/// which a `python3` earlier on PATH (pyenv, venv) may not see.
fn python() -> &'static str {
    static FOUND: OnceLock<&'static str> = OnceLock::new();
    FOUND.get_or_init(|| {
        ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|python| {
                Command::new(python)
                    .args(["-c", "import aiosmtpd"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("python3-aiosmtpd is missing: apt-get install python3-aiosmtpd (.ci/run does)")
    })
}

/// A certificate and key for 127.0.0.1 / localhost, signed by themselves.
struct SelfSigned {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl SelfSigned {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "smtp.test");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Self {
            _dir: dir,
            cert: cert_path,
            key: key_path,
        }
    }
}

#[derive(Default)]
struct SmtpOptions<'a> {
    starttls: Option<&'a SelfSigned>,
    login: bool,
    reject: Option<&'a str>,
    tempfail: u32,
}

/// The SMTP server process and the directory it writes each accepted message to.
struct Smtp {
    child: Child,
    port: u16,
    spool: tempfile::TempDir,
}

impl Smtp {
    fn start(options: SmtpOptions) -> Self {
        let spool = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(SCRIPT).arg("--spool").arg(spool.path());
        if let Some(tls) = options.starttls {
            cmd.arg("--starttls").arg(&tls.cert).arg(&tls.key);
        }
        if options.login {
            cmd.args(["--login", &format!("{SMTP_USER}:{SMTP_PASSWORD}")]);
        }
        if let Some(reject) = options.reject {
            cmd.args(["--reject", reject]);
        }
        cmd.args(["--tempfail", &options.tempfail.to_string()]);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"))
            .parse()
            .unwrap();
        Self { child, port, spool }
    }

    /// Every message accepted so far, in order.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.spool.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Messages to `to` so far.
    fn inbox(&self, to: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["rcpt_tos"].as_array().unwrap().iter().any(|r| r == to))
            .collect()
    }

    /// Waits for a message to `to` whose subject contains `subject`.
    fn wait_for(&self, to: &str, subject: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self
                .inbox(to)
                .into_iter()
                .find(|m| m["subject"].as_str().unwrap().contains(subject))
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no \"{subject}\" email for {to}; the spool holds {:#?}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server variables for this SMTP server, plus `extra`.
    fn env(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AGENT_VAULT_SMTP_HOST", "127.0.0.1".to_owned()),
            ("AGENT_VAULT_SMTP_PORT", self.port.to_string()),
            ("AGENT_VAULT_SMTP_FROM", "vault@example.com".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(home: &TestHome, extra: &[&str], env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    home.start_server(extra, "", &env)
}

/// The 6-digit code on a line of its own in a verification email.
fn code_in(message: &Value) -> String {
    message["text"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {message:#}"))
        .to_owned()
}

/// The first line of the text body that starts with `prefix`.
fn link_in(message: &Value, prefix: &str) -> String {
    message["text"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} link in {message:#}"))
        .to_owned()
}

/// Polls `owner user info` until it shows a verification code (its delivery failed).
fn owner_sees_code(owner: &Cli, email: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = owner.run(&["owner", "user", "info", email]).ok();
        if let Some(code) = info
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Verification code: "))
        {
            return code.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the owner never saw the code:\n{info}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn each_message_arrives_and_its_code_or_link_works() {
    let smtp = Smtp::start(SmtpOptions::default());
    let home = TestHome::new();
    let port = free_port();
    // Links come from AGENT_VAULT_ADDR (here a name, not the bound address).
    let addr = format!("http://localhost:{port}");
    let server = start(
        &home,
        &["--port", &port.to_string()],
        &smtp.env(&[
            ("AGENT_VAULT_ADDR", &addr),
            ("AGENT_VAULT_SMTP_FROM_NAME", "Team Vault"),
        ]),
    );
    assert_eq!(server.url, addr);
    let owner = Cli::owner(home, &server);
    assert!(smtp.messages().is_empty(), "the owner needs no code");

    // A later registration: the code goes to the inbox only, and it works.
    let bob = TestHome::new();
    let registered = bob
        .register(&server, "bob@example.com", "bob-password")
        .ok();
    assert!(registered.stdout.contains("on its way"), "{registered}");
    let mail = smtp.wait_for("bob@example.com", "Verify your Agent Vault account");
    assert_eq!(mail["from"], "Team Vault <vault@example.com>");
    assert_eq!(mail["mail_from"], "vault@example.com");
    assert_eq!(mail["content_type"], "multipart/alternative");
    assert_eq!(mail["tls"], false, "a plain server gets plain text");
    let bob_code = code_in(&mail);
    assert!(mail["html"].as_str().unwrap().contains(&bob_code));
    let info = owner
        .run(&["owner", "user", "info", "bob@example.com"])
        .ok();
    assert!(info.stdout.contains("Status:   pending"), "{info}");
    assert!(
        !info.stdout.contains("Verification code") && !info.stdout.contains(&bob_code),
        "an emailed code is not shown to the owner:\n{info}"
    );
    bob.verify(&server, "bob@example.com", &bob_code, "bob-password")
        .ok();

    // An invite: the command prints the link and the same link arrives by email.
    let invited = owner
        .run(&[
            "user",
            "invite",
            "carol@example.com",
            "--vault",
            "default:admin",
        ])
        .ok();
    let printed = invited
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Link:"))
        .expect("the link is printed")
        .trim()
        .to_owned();
    assert!(
        invited.stdout.contains("on its way to carol@example.com"),
        "{invited}"
    );
    let mail = smtp.wait_for("carol@example.com", "invited you to Agent Vault");
    assert!(mail["subject"].as_str().unwrap().starts_with(OWNER_EMAIL));
    let link = link_in(&mail, &format!("{addr}/invite/"));
    assert_eq!(link, printed);
    assert!(mail["text"].as_str().unwrap().contains("default (admin)"));
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains(&format!("href=\"{link}\""))
    );
    let page = http().get(&link).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("carol@example.com"));
    let carol = owner.accept(&link, "carol-password");

    // A proposal: each admin of the vault (owner, carol) is told, with the approval link and
    // the agent's message; bob, a member, is not.
    owner
        .run(&[
            "vault",
            "user",
            "add",
            "bob@example.com",
            "--vault",
            "default",
        ])
        .ok();
    let token = owner.token("default");
    let proposal = json!({
        "services": [{ "host": "api.example.com", "auth": { "type": "bearer", "token": "EXAMPLE_TOKEN" } }],
        "credentials": [{ "key": "EXAMPLE_TOKEN", "description": "Example API token" }],
        "message": "need the example API",
        "user_message": "Please add the Example API so I can pull <the numbers>.",
    });
    let created = http()
        .post(format!("{addr}/v1/proposals"))
        .bearer_auth(token.trim())
        .json(&proposal)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().unwrap();
    let approval_url = created["approval_url"].as_str().unwrap().to_owned();
    for admin in [OWNER_EMAIL, "carol@example.com"] {
        let mail = smtp.wait_for(admin, "Proposal #1 in vault default");
        let text = mail["text"].as_str().unwrap();
        assert!(text.contains(&approval_url), "{text}");
        assert!(
            text.contains("> Please add the Example API so I can pull <the numbers>."),
            "{text}"
        );
        assert!(text.contains("EXAMPLE_TOKEN") && text.contains("api.example.com"));
        let html = mail["html"].as_str().unwrap();
        assert!(html.contains("&lt;the numbers&gt;") && !html.contains("<the numbers>"));
    }
    let notice = smtp.wait_for("carol@example.com", "Proposal #1");
    let link = link_in(&notice, &format!("{addr}/approve/"));
    let browser = crate::harness::CurlBrowser::new();
    let (_, page) = browser.get(&link);
    assert!(page.contains("Please add the Example API"), "{page}");
    let approval_token = link.split("token=").nth(1).unwrap();
    let (status, done) = browser.post(
        &format!("{addr}/approve/default/1"),
        &[
            ("token", approval_token),
            ("email", "carol@example.com"),
            ("password", "carol-password"),
            ("value_EXAMPLE_TOKEN", "approved-through-the-email"),
            ("action", "approve"),
        ],
    );
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("approved by carol@example.com"), "{done}");
    assert_eq!(
        smtp.inbox("bob@example.com").len(),
        1,
        "bob (member) only got his code"
    );
    drop(carol);

    // The owner's test email, to themselves and to another address, with the server's answer.
    let sent = owner.run(&["owner", "email", "test"]).ok();
    assert!(
        sent.stdout.contains("Test email sent to owner@example.com"),
        "{sent}"
    );
    assert!(
        sent.stdout
            .contains("SMTP server answered: 250 2.0.0 Ok: queued as TEST"),
        "{sent}"
    );
    smtp.wait_for(OWNER_EMAIL, "Agent Vault test email");
    owner
        .run(&["owner", "email", "test", "--to", "dave@example.org"])
        .ok();
    let test_mail = smtp.wait_for("dave@example.org", "Agent Vault test email");
    assert!(test_mail["text"].as_str().unwrap().contains(&addr));

    // The owner's view: settings and counters, no error.
    let config = owner.run(&["owner", "config", "get"]).ok();
    assert!(
        config
            .stdout
            .contains(&format!("email:                 127.0.0.1:{}", smtp.port)),
        "{config}"
    );
    assert!(config.stdout.contains("0 failed"), "{config}");
    assert!(!config.stdout.contains("email_last_error"), "{config}");
    let status: Value = http()
        .get(format!("{addr}/v1/admin/email"))
        .bearer_auth(owner.home.session_token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["sent"], 6, "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");

    // Nothing secret in the server's output: the code, the invite and approval tokens.
    let (_, log) = server.stop_with("TERM");
    let invite_token = printed.rsplit('/').next().unwrap();
    for secret in [bob_code.as_str(), invite_token, approval_token] {
        assert!(!log.contains(secret), "{secret} in the server log:\n{log}");
    }
}

#[test]
fn refusals_retries_and_what_the_owner_sees() {
    let smtp = Smtp::start(SmtpOptions {
        reject: Some("nobody"),
        tempfail: 1,
        ..SmtpOptions::default()
    });
    let home = TestHome::new();
    let server = start(&home, &[], &smtp.env(&[]));
    let owner = Cli::owner(home, &server);

    // A temporary answer (451) is retried; the message arrives on the next attempt.
    owner.run(&["user", "invite", "erin@example.com"]).ok();
    let status = |owner: &Cli| owner.run(&["owner", "config", "get"]).ok().stdout;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status(&owner).contains("451 4.3.0 Temporary failure") {
        assert!(Instant::now() < deadline, "{}", status(&owner));
        std::thread::sleep(Duration::from_millis(100));
    }
    smtp.wait_for("erin@example.com", "invited you");

    // A permanent refusal: no retry; the owner sees the code and the server's exact answer.
    let nobody = TestHome::new();
    nobody
        .register(&server, "nobody@example.com", "nobody-password")
        .ok();
    let code = owner_sees_code(&owner, "nobody@example.com");
    let info = owner
        .run(&["owner", "user", "info", "nobody@example.com"])
        .ok();
    assert!(info.stdout.contains("Emailing it failed"), "{info}");
    nobody
        .verify(&server, "nobody@example.com", &code, "nobody-password")
        .ok();
    let config = status(&owner);
    assert!(
        config.contains("(verification code to nobody@example.com): the SMTP server 127.0.0.1")
            && config.contains(
                "550 5.1.1 <nobody@example.com>: Recipient address rejected: no such mailbox"
            ),
        "{config}"
    );
    assert!(config.contains("1 failed"), "{config}");

    // The test email reports the same answer and fails.
    owner
        .run(&["owner", "email", "test", "--to", "nobody@example.com"])
        .fails_with("550 5.1.1 <nobody@example.com>: Recipient address rejected");
    owner
        .run(&["owner", "email", "test", "--to", "not-an-address"])
        .fails_with("not a valid email address");
}

#[test]
fn starttls_with_a_login_checks_the_certificate_unless_told_not_to() {
    let cert = SelfSigned::new();
    let smtp = Smtp::start(SmtpOptions {
        starttls: Some(&cert),
        login: true,
        ..SmtpOptions::default()
    });
    let login = [
        ("AGENT_VAULT_SMTP_USERNAME", SMTP_USER),
        ("AGENT_VAULT_SMTP_PASSWORD", SMTP_PASSWORD),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut env = login.to_vec();
        env.extend_from_slice(extra);
        smtp.env(&env)
    };

    // required + skip-verify: STARTTLS with the self-signed certificate, then the login.
    // At debug level too, the password reaches neither the log nor the environment.
    let home = TestHome::new();
    let server = start(
        &home,
        &["--log-level", "debug"],
        &with(&[
            ("AGENT_VAULT_SMTP_TLS_MODE", "required"),
            ("AGENT_VAULT_SMTP_TLS_SKIP_VERIFY", "true"),
        ]),
    );
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    assert!(
        !contains(&environ, SMTP_PASSWORD),
        "SMTP password in environ"
    );
    assert!(!contains(&environ, "AGENT_VAULT_SMTP_PASSWORD"));
    let owner = Cli::owner(home, &server);
    owner.run(&["owner", "email", "test"]).ok();
    let mail = smtp.wait_for(OWNER_EMAIL, "test email");
    assert_eq!(mail["tls"], true, "{mail}");
    assert_eq!(mail["login"], SMTP_USER, "{mail}");
    let frank = TestHome::new();
    frank
        .register(&server, "frank@example.com", "frank-password")
        .ok();
    let code = code_in(&smtp.wait_for("frank@example.com", "Verify"));
    frank
        .verify(&server, "frank@example.com", &code, "frank-password")
        .ok();
    let (_, log) = server.stop_with("TERM");
    assert!(log.contains("email sent"), "{log}");
    for secret in [SMTP_PASSWORD, code.as_str()] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }

    // Without skip-verify the self-signed certificate is refused, and nothing is sent.
    let before = smtp.messages().len();
    let home = TestHome::new();
    let server = start(&home, &[], &with(&[]));
    let owner = Cli::owner(home, &server);
    let refused = owner
        .run(&["owner", "email", "test"])
        .fails_with("TLS with the SMTP server 127.0.0.1");
    assert!(refused.stderr.contains("certificate"), "{refused}");
    // A code whose email failed is the owner's to pass on.
    TestHome::new()
        .register(&server, "grace@example.com", "grace-password")
        .ok();
    owner_sees_code(&owner, "grace@example.com");
    assert_eq!(smtp.messages().len(), before);

    // Trusting the certificate through SSL_CERT_FILE works without skip-verify.
    let home = TestHome::new();
    let cert_file = cert.cert.to_str().unwrap().to_owned();
    let server = start(
        &home,
        &[],
        &with(&[
            ("AGENT_VAULT_SMTP_TLS_MODE", "required"),
            ("SSL_CERT_FILE", &cert_file),
        ]),
    );
    let owner = Cli::owner(home, &server);
    owner
        .run(&["owner", "email", "test", "--to", "trusted@example.com"])
        .ok();
    assert_eq!(smtp.wait_for("trusted@example.com", "test")["tls"], true);

    // A wrong password: the server's exact answer.
    let home = TestHome::new();
    let mut env = smtp.env(&[
        ("AGENT_VAULT_SMTP_USERNAME", SMTP_USER),
        ("AGENT_VAULT_SMTP_PASSWORD", "not-the-password"),
        ("AGENT_VAULT_SMTP_TLS_SKIP_VERIFY", "true"),
    ]);
    env.push(("AGENT_VAULT_SMTP_TLS_MODE", "required".into()));
    let server = start(&home, &[], &env);
    let owner = Cli::owner(home, &server);
    owner
        .run(&["owner", "email", "test"])
        .fails_with("535 5.7.8 Authentication credentials invalid");
}

#[test]
fn a_detached_server_gets_the_smtp_password_without_its_environment() {
    let cert = SelfSigned::new();
    let smtp = Smtp::start(SmtpOptions {
        starttls: Some(&cert),
        login: true,
        ..SmtpOptions::default()
    });
    let home = TestHome::new();
    let port = free_port();
    let env = smtp.env(&[
        ("AGENT_VAULT_SMTP_USERNAME", SMTP_USER),
        ("AGENT_VAULT_SMTP_PASSWORD", SMTP_PASSWORD),
        ("AGENT_VAULT_SMTP_TLS_SKIP_VERIFY", "true"),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    home.run_with(
        &[
            "server",
            "-d",
            "--port",
            &port.to_string(),
            "--mitm-port",
            "0",
        ],
        "",
        &env,
    )
    .ok();
    let pid = std::fs::read_to_string(home.state().join("agent-vault.pid")).unwrap();
    let _stop = KillOnDrop(pid.trim().to_owned());
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    assert!(
        !contains(&environ, SMTP_PASSWORD),
        "SMTP password in environ"
    );
    let url = format!("http://127.0.0.1:{port}");
    home.run_with(
        &[
            "auth",
            "register",
            "--address",
            &url,
            "--email",
            OWNER_EMAIL,
            "--password-stdin",
        ],
        &format!("{OWNER_PASSWORD}\n"),
        &[],
    )
    .ok();
    home.run(&["owner", "email", "test"]).ok();
    assert_eq!(smtp.wait_for(OWNER_EMAIL, "test")["login"], SMTP_USER);
    home.run(&["server", "stop"]).ok();
    let log = std::fs::read_to_string(home.state().join("server.log")).unwrap();
    assert!(!log.contains(SMTP_PASSWORD), "{log}");
}

/// Ends a detached server even when an assertion fails first.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Only while that PID is still our server (after `server stop` it may be reused).
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if contains(&cmdline, "agent-vault") {
            let _ = Command::new("kill").arg(&self.0).status();
        }
    }
}

#[test]
fn required_tls_refuses_a_server_without_starttls() {
    let smtp = Smtp::start(SmtpOptions::default());
    let home = TestHome::new();
    let server = start(
        &home,
        &[],
        &smtp.env(&[("AGENT_VAULT_SMTP_TLS_MODE", "required")]),
    );
    let owner = Cli::owner(home, &server);
    owner
        .run(&["owner", "email", "test"])
        .fails_with("does not offer STARTTLS");
    assert!(smtp.messages().is_empty());
}

#[test]
fn an_unreachable_server_fails_the_test_but_not_invites() {
    let home = TestHome::new();
    let closed = free_port();
    let server = start(
        &home,
        &[],
        &[
            ("AGENT_VAULT_SMTP_HOST", "127.0.0.1".into()),
            ("AGENT_VAULT_SMTP_PORT", closed.to_string()),
            ("AGENT_VAULT_SMTP_FROM", "vault@example.com".into()),
        ],
    );
    let owner = Cli::owner(home, &server);
    let failed = owner
        .run(&["owner", "email", "test"])
        .fails_with(&format!("cannot reach the SMTP server 127.0.0.1:{closed}"));
    assert!(failed.stderr.contains("Connection refused"), "{failed}");
    let invited = owner.run(&["user", "invite", "henry@example.com"]).ok();
    assert!(
        invited
            .stdout
            .contains(&format!("Link:    {}/invite/av_uinv_", server.url)),
        "{invited}"
    );
    let config = owner.run(&["owner", "config", "get"]).ok();
    assert!(config.stdout.contains("email_last_error:"), "{config}");
    assert!(config.stdout.contains("Connection refused"), "{config}");
}

/// A request never waits for email: against an SMTP server that accepts the connection and
/// never answers, `user invite` returns while the delivery attempt is still hanging.
#[test]
fn a_stalled_smtp_server_does_not_hold_up_requests() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // 0: nothing yet, 1: a connection is open, 2: it was closed.
    let state = Arc::new(AtomicU8::new(0));
    let seen = state.clone();
    std::thread::spawn(move || {
        let (mut socket, _) = silent.accept().unwrap();
        seen.store(1, Ordering::SeqCst);
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink);
        seen.store(2, Ordering::SeqCst);
    });
    let home = TestHome::new();
    let server = start(
        &home,
        &[],
        &[
            ("AGENT_VAULT_SMTP_HOST", "127.0.0.1".into()),
            ("AGENT_VAULT_SMTP_PORT", port.to_string()),
            ("AGENT_VAULT_SMTP_FROM", "vault@example.com".into()),
        ],
    );
    let owner = Cli::owner(home, &server);
    let invited = owner.run(&["user", "invite", "kate@example.com"]).ok();
    assert!(invited.stdout.contains("Link:"), "{invited}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the mail queue never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        state.load(Ordering::SeqCst),
        1,
        "the invite answered only after the stalled delivery gave up"
    );
}

#[test]
fn bad_smtp_settings_stop_the_server_naming_the_variable() {
    let base = [
        ("AGENT_VAULT_SMTP_HOST", "127.0.0.1"),
        ("AGENT_VAULT_SMTP_FROM", "vault@example.com"),
    ];
    for (extra, variable) in [
        (
            ("AGENT_VAULT_SMTP_TLS_MODE", "starttls"),
            "AGENT_VAULT_SMTP_TLS_MODE",
        ),
        (
            ("AGENT_VAULT_SMTP_PORT", "twenty-five"),
            "AGENT_VAULT_SMTP_PORT",
        ),
        (
            ("AGENT_VAULT_SMTP_TLS_SKIP_VERIFY", "perhaps"),
            "AGENT_VAULT_SMTP_TLS_SKIP_VERIFY",
        ),
        (("AGENT_VAULT_SMTP_FROM", ""), "AGENT_VAULT_SMTP_FROM"),
    ] {
        let mut env = base.to_vec();
        env.retain(|(k, _)| *k != extra.0);
        env.push(extra);
        let home = TestHome::new();
        let refused = home
            .try_start_server(&[], "", &env)
            .err()
            .unwrap_or_else(|| panic!("{variable}: the server started"));
        assert!(!refused.status.success());
        assert!(refused.stderr.contains(variable), "{variable}: {refused}");
        assert!(
            !home.state().join("agent-vault.pid").exists(),
            "{variable}: nothing starts"
        );
    }
}

#[test]
fn without_smtp_the_owner_relays_codes_and_the_test_says_so() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner
        .run(&["owner", "email", "test"])
        .fails_with("email is not configured on this server");
    let member = owner.add_person("kim@example.com", &[], "kim-password");
    member
        .run(&["owner", "email", "test"])
        .fails_with("only an instance owner");
    let config = owner.run(&["owner", "config", "get"]).ok();
    assert!(
        config.stdout.contains("email:                 off"),
        "{config}"
    );
    let invited = owner.run(&["user", "invite", "ivy@example.com"]).ok();
    assert!(invited.stdout.contains("Send them the link"), "{invited}");
    TestHome::new()
        .register(&server, "jack@example.com", "jack-password")
        .ok();
    owner_sees_code(&owner, "jack@example.com");
}
