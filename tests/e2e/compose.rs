//! The compose `scale` profile built and run for real: the server, PostgreSQL and balancer
//! images built from the local base image (the server image from the debug binary this suite
//! already built, through its `AGENT_VAULT_BINARY` build argument), then PostgreSQL, two
//! brokers and HAProxy under a project name of the test's own. Through the balancer: an owner
//! registers and logs in, sets a credential and a service, and a request through the MITM port
//! to an HTTPS upstream on the compose network arrives with the credential. Everything the
//! project made but its images is removed at the end, however the test ends.
//!
//! Skipped (with the reason printed) only when there is no Docker engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{BIN, TestHome, free_port, http};

const SECRET: &str = "compose-scale-secret-value";
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// One compose project; `down -v` on drop.
struct Project {
    /// `docker-compose` or `docker compose`.
    program: [&'static str; 2],
    name: String,
    override_file: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.program[0]);
        cmd.args(self.program[1..].iter().filter(|a| !a.is_empty()))
            .current_dir(MANIFEST_DIR)
            .args(["-f", "docker-compose.yml", "-f"])
            .arg(&self.override_file)
            .args(["-p", &self.name, "--profile", "scale", "--ansi", "never"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.output().expect("docker-compose")
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What is left of the project on the engine (containers, networks, volumes).
    fn leftovers(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.name);
        [
            &["ps", "-a", "-q", "--filter", &label][..],
            &["network", "ls", "-q", "--filter", &label],
            &["volume", "ls", "-q", "--filter", &label],
        ]
        .iter()
        .map(|args| crate::sandbox::docker(args))
        .filter(|out| !out.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.compose(&["logs", "--no-color", "--tail", "40"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

/// Compose v1 (`docker-compose`, Debian's package) or the v2 plugin (`docker compose`).
fn compose_program() -> Option<[&'static str; 2]> {
    let works = |program: [&str; 2]| {
        Command::new(program[0])
            .args(program[1..].iter().filter(|a| !a.is_empty()))
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    [["docker-compose", ""], ["docker", "compose"]]
        .into_iter()
        .find(|p| works(*p))
}

fn docker_engine_present() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The upstream's CA and leaf for `upstream`, its echo server, world-readable (the brokers
/// run as an unprivileged user).
fn upstream_material(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let cert = crate::upstream::TestCert::mint_for(&["upstream"]);
    std::fs::write(dir.join("ca.pem"), &cert.ca_pem).unwrap();
    std::fs::write(dir.join("upstream.pem"), &cert.leaf_pem).unwrap();
    std::fs::write(dir.join("upstream-key.pem"), &cert.key_pem).unwrap();
    std::fs::write(
        dir.join("echo.py"),
        r#"
import hashlib, http.server, json, ssl
# The Authorization header comes back as its SHA-256: the broker scrubs a reflected credential.
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("authorization", "").encode()
        body = json.dumps({"path": self.path,
                           "authorization_sha256": hashlib.sha256(auth).hexdigest()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("/trust/upstream.pem", "/trust/upstream-key.pem")
server = http.server.ThreadingHTTPServer(("", 8443), Echo)
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#,
    )
    .unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn scale_profile_builds_and_serves_through_the_balancer() {
    if !docker_engine_present() {
        eprintln!("SKIPPED compose::scale_profile: no Docker engine answers `docker info`");
        return;
    }
    let program = compose_program().expect(
        "the compose test needs Docker Compose: apt-get install docker-compose (.ci/run does), or the compose plugin",
    );
    // Docker tests take turns on the engine; the turn also checks the base image is there.
    let _turn = crate::sandbox::docker_turn();
    let binary = Path::new(BIN)
        .strip_prefix(MANIFEST_DIR)
        .unwrap_or_else(|_| {
            panic!("the compose test sends {BIN} as the server image's binary, so it must be inside {MANIFEST_DIR} (unset CARGO_TARGET_DIR)")
        })
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        binary, "target/debug/agent-vault",
        ".dockerignore admits only target/{{debug,release}}/agent-vault"
    );

    let work = tempfile::tempdir().unwrap();
    let trust = work.path().join("trust");
    std::fs::create_dir(&trust).unwrap();
    upstream_material(&trust);
    let broker_extra = format!(
        "    environment:\n      SSL_CERT_FILE: /trust/ca.pem\n      AGENT_VAULT_NETWORK_ALLOWLIST: 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16\n    volumes:\n      - {}:/trust:ro\n",
        trust.display()
    );
    let override_file = work.path().join("override.yml");
    std::fs::write(
        &override_file,
        format!(
            "version: \"2.4\"\nservices:\n  broker-a:\n{broker_extra}  broker-b:\n{broker_extra}  upstream:\n    profiles: [scale]\n    image: {base}\n    command: [python3, /trust/echo.py]\n    volumes:\n      - {trust}:/trust:ro\n    networks: [scale]\n",
            base = crate::sandbox::BASE,
            trust = trust.display(),
        ),
    )
    .unwrap();

    let (api, mitm) = (free_port(), free_port());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let project = Project {
        program,
        name: format!("avscale{}x{nanos}", std::process::id()),
        override_file,
        env: vec![
            ("AGENT_VAULT_BASE_IMAGE", crate::sandbox::BASE.to_owned()),
            ("AGENT_VAULT_BINARY", binary),
            ("AGENT_VAULT_IMAGE_TAG", "e2e".to_owned()),
            ("AGENT_VAULT_SCALE_API_PORT", api.to_string()),
            ("AGENT_VAULT_SCALE_MITM_PORT", mitm.to_string()),
            ("AGENT_VAULT_DEV_DB_PASSWORD", format!("db-{nanos}")),
            ("AGENT_VAULT_DEV_MASTER_PASSWORD", format!("master-{nanos}")),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ],
    };
    let started = std::time::Instant::now();
    project.compose_ok(&["build", "postgres", "broker-a", "balancer"]);
    let built = started.elapsed();
    project.compose_ok(&[
        "up",
        "-d",
        "--no-build",
        "postgres",
        "broker-a",
        "broker-b",
        "balancer",
        "upstream",
    ]);

    // Through the balancer: healthy, on PostgreSQL, once a broker is up.
    let url = format!("http://127.0.0.1:{api}");
    let health: Value =
        crate::harness::poll("the balanced /health", Duration::from_millis(500), || {
            let response = http().get(format!("{url}/health")).send().ok()?;
            (response.status() == 200).then(|| response.json().ok())?
        });
    assert_eq!(health["database"]["engine"], "postgres", "{health}");
    assert_eq!(health["database"]["reachable"], true, "{health}");
    // Both brokers answer, so the balancer has both in rotation (it checks every second).
    let inside = |broker: &str, args: &[&str]| {
        let mut all = vec!["exec", "-T", broker, "curl", "-sS", "--max-time", "5"];
        all.extend_from_slice(args);
        project.compose(&all)
    };
    for broker in ["broker-a", "broker-b"] {
        crate::harness::poll(broker, Duration::from_millis(500), || {
            inside(broker, &["-f", "http://127.0.0.1:14321/health"])
                .status
                .success()
                .then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(2500));

    // An owner registers and logs in through the balancer, and sets everything up.
    let home = TestHome::on_sqlite();
    let password = "compose-owner-password";
    let register = home.run_with(
        &[
            "auth",
            "register",
            "--address",
            &url,
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        &format!("{password}\n"),
        &[],
    );
    assert!(register.status.success(), "{register}");
    home.run(&["auth", "logout"]).ok();
    home.run_with(
        &[
            "auth",
            "login",
            "--address",
            &url,
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        &format!("{password}\n"),
        &[],
    )
    .ok();
    home.run(&[
        "vault",
        "credential",
        "set",
        &format!("DEMO_TOKEN={SECRET}"),
    ])
    .ok();
    std::fs::write(
        home.path().join("upstream.yaml"),
        "services:\n  - host: upstream\n    port: 8443\n    auth: {type: bearer, token: DEMO_TOKEN}\n",
    )
    .unwrap();
    home.run(&["vault", "service", "add", "-f", "upstream.yaml"])
        .ok();
    let token = home.run(&["vault", "token"]).ok().stdout.trim().to_owned();
    let ca = home.path().join("broker-ca.pem");
    home.run(&["ca", "fetch", "-o", ca.to_str().unwrap()]).ok();

    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!("Bearer {SECRET}").as_bytes()))
    };
    // Through the balancer's MITM port, several times (round robin: both brokers serve).
    for i in 0..4 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&ca)
            .arg("--proxy")
            .arg(format!("http://127.0.0.1:{mitm}"))
            .arg("--proxy-user")
            .arg(format!("{token}:default"))
            .arg(format!("https://upstream:8443/through-the-balancer/{i}"))
            .output()
            .unwrap();
        let echo: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "request {i}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(
            echo["authorization_sha256"], expected,
            "request {i}: the credential did not arrive: {echo}"
        );
        assert_eq!(echo["path"], format!("/through-the-balancer/{i}"));
    }
    // Each replica served some of them (its own /metrics, asked from inside its container).
    let owner = home.session_token();
    for broker in ["broker-a", "broker-b"] {
        let out = inside(
            broker,
            &[
                "-H",
                &format!("Authorization: Bearer {owner}"),
                "http://127.0.0.1:14321/metrics",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let served = crate::agents::metric(
            &text,
            "agent_vault_proxied_requests_total{ingress=\"mitm\",status=\"2xx\",error=\"\"}",
        );
        assert!(
            served >= 1.0,
            "{broker} served none of the requests:\n{text}"
        );
    }
    let served = project.compose_ok(&["logs", "--no-color", "broker-a", "broker-b"]);
    assert!(
        !served.contains(SECRET),
        "a credential in the brokers' logs"
    );

    let ran = started.elapsed();
    project_down(&project);
    eprintln!(
        "compose scale profile: built in {:.1}s, up and served in {:.1}s",
        built.as_secs_f64(),
        (ran - built).as_secs_f64()
    );
}

/// Tears the project down and checks nothing of it is left but its images.
fn project_down(project: &Project) {
    project.compose_ok(&["down", "-v", "--remove-orphans", "-t", "2"]);
    let left = project.leftovers();
    assert!(left.is_empty(), "the project {} left: {left}", project.name);
}
