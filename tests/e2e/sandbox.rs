//! The container sandbox against the real Docker engine: the allowed path through the
//! broker, an egress battery aimed only at decoys this test runs, mount refusals, `--keep`,
//! exit codes, concurrent runs, and no leftovers.
//!
//! Images come from local material only: `scripts/build-test-image.sh` (run by `.ci/run`)
//! makes `agent-vault-test/base:latest` with debootstrap; the sandbox builds its firewall
//! image on top of it.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::broker::{BEARER, Rig, header};
use crate::harness::Run;
use crate::upstream::Upstream;

const BASE: &str = "agent-vault-test/base:latest";

/// Docker tests share one engine: they take turns (a lock across test processes). A turn
/// remembers the labelled resources that existed when it began — a user's `--keep`, an
/// earlier crashed run — so a test checks only what *it* left behind, and whatever it did
/// leave is removed when the turn ends, even if the test panicked.
struct DockerTurn {
    _lock: nix::fcntl::Flock<File>,
    before: BTreeSet<String>,
}

fn docker_turn() -> DockerTurn {
    let image = Command::new("docker")
        .args(["image", "inspect", BASE])
        .output()
        .expect("docker CLI");
    assert!(
        image.status.success(),
        "the test image {BASE} is missing: run scripts/build-test-image.sh (.ci/run does)"
    );
    let file = File::create(std::env::temp_dir().join("agent-vault-docker-tests.lock")).unwrap();
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    DockerTurn {
        _lock: lock,
        before: labelled(),
    }
}

impl DockerTurn {
    /// Labelled resources made since the turn began that still exist.
    fn leftovers(&self) -> String {
        let added: Vec<String> = labelled().difference(&self.before).cloned().collect();
        added.join(" ")
    }
}

impl Drop for DockerTurn {
    fn drop(&mut self) {
        for resource in labelled().difference(&self.before) {
            let (kind, id) = resource.split_once(':').unwrap_or(("", resource));
            let args: &[&str] = match kind {
                "container" => &["rm", "-f", "-v", id],
                "network" => &["network", "rm", id],
                _ => &["volume", "rm", "-f", id],
            };
            docker(args);
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every labelled resource on the engine (containers incl. stopped, networks, volumes) as
/// `kind:id`; containers first so a drop removes them before what they use.
fn labelled() -> BTreeSet<String> {
    let filter = "label=dev.agent-vault.run";
    let mut all = BTreeSet::new();
    for (kind, args) in [
        ("container", &["ps", "-aq", "--filter", filter][..]),
        ("network", &["network", "ls", "-q", "--filter", filter]),
        ("volume", &["volume", "ls", "-q", "--filter", filter]),
    ] {
        all.extend(docker(args).lines().map(|id| format!("{kind}:{id}")));
    }
    all
}

fn sandbox_rig() -> Rig {
    Rig::start_with(true, Upstream::start_on("127.0.0.2"))
}

fn sandboxed_command(rig: &Rig, dir: &Path, extra: &[&str], command: &[&str]) -> Command {
    let mut args = vec!["vault", "run", "--sandbox", "container", "--image", BASE];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    let mut cmd = rig.home.command(&args);
    cmd.current_dir(dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE);
    cmd
}

fn sandboxed(rig: &Rig, dir: &Path, extra: &[&str], command: &[&str]) -> Run {
    crate::harness::run_command(sandboxed_command(rig, dir, extra, command), "")
}

/// A working directory the agent (a non-root user in the container) may write to.
fn workspace(rig: &Rig, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = rig.home.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn allowed_path_reaches_the_upstream_with_the_credential_injected() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "allowed");
    let url = rig.https("/bearer/in-sandbox");
    let script = format!(
        "set -e; curl -sS {url} > /workspace/curl.json; \
         python3 -c \"import requests, json; print(json.dumps(requests.get('{url}').json()))\" > /workspace/python.json; \
         env > /workspace/env.txt; id -u > /workspace/uid.txt; \
         grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status > /workspace/caps.txt"
    );
    let run = sandboxed(&rig, &dir, &[], &["sh", "-c", &script]);
    assert!(run.status.success(), "{run}");
    for file in ["curl.json", "python.json"] {
        let echo: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        assert_eq!(
            header(&echo, "authorization"),
            vec![format!("Bearer {BEARER}")],
            "{file}"
        );
        assert!(header(&echo, "proxy-authorization").is_empty());
    }
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    assert!(
        !env.contains(BEARER),
        "the container's environment holds a credential value"
    );
    assert!(
        env.contains("HTTPS_PROXY=http://av_sess_")
            && env.contains("SSL_CERT_FILE=/etc/agent-vault/ca.pem"),
        "{env}"
    );
    assert_ne!(
        std::fs::read_to_string(dir.join("uid.txt")).unwrap().trim(),
        "0",
        "the agent is not root"
    );
    let caps = std::fs::read_to_string(dir.join("caps.txt")).unwrap();
    for line in caps.lines() {
        assert!(
            line.ends_with("0000000000000000"),
            "the agent holds capabilities: {caps}"
        );
    }
    assert_eq!(turn.leftovers(), "", "resources left behind");
}

/// Counts what reaches a decoy: TCP connections and UDP datagrams.
struct Decoy {
    tcp_port: u16,
    udp_port: u16,
    hits: Arc<AtomicUsize>,
}

impl Decoy {
    fn start() -> Self {
        let tcp = TcpListener::bind("0.0.0.0:0").unwrap();
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let decoy = Self {
            tcp_port: tcp.local_addr().unwrap().port(),
            udp_port: udp.local_addr().unwrap().port(),
            hits: hits.clone(),
        };
        let tcp_hits = hits.clone();
        std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                tcp_hits.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while udp.recv_from(&mut buf).is_ok() {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        });
        decoy
    }
}

const BATTERY: &str = r#"
import json, os, socket, subprocess, sys, time
gw = os.environ["AGENT_VAULT_ADDR"].split("//")[1].rsplit(":", 1)[0]
tcp_port, udp_port = int(sys.argv[1]), int(sys.argv[2])
while not os.path.exists("/workspace/decoy-ip"):
    time.sleep(0.2)
decoy_ip = open("/workspace/decoy-ip").read().strip()
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "REACHED"
    except Exception as e:
        results[name] = "blocked: " + type(e).__name__ + ": " + str(e)[:80]
def tcp(host, port):
    socket.create_connection((host, port), timeout=3).close()
def udp(host, port, payload=b"exfil"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(payload, (host, port))
    s.recvfrom(16)
def run(cmd):
    code = subprocess.run(cmd, capture_output=True, timeout=20).returncode
    if code != 0:
        raise RuntimeError("exit status %d" % code)
def icmp_echo(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(2)
    s.sendto(b"\x08\x00\x00\x00\x00\x01\x00\x01agent-vault", (host, 0))
    s.recvfrom(64)
dns_query = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
attempt("tcp_to_host_decoy", lambda: tcp(gw, tcp_port))
attempt("udp_to_host_decoy", lambda: udp(gw, udp_port))
attempt("dns_to_decoy_resolver", lambda: udp(gw, udp_port, dns_query))
attempt("dns_via_docker_resolver", lambda: socket.getaddrinfo("example.com", 443))
attempt("tcp_to_other_container", lambda: tcp(decoy_ip, 8000))
attempt("icmp_echo_to_gateway", lambda: icmp_echo(gw))
attempt("icmp_echo_to_other_container", lambda: icmp_echo(decoy_ip))
attempt("raw_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
attempt("ipv6", lambda: tcp("fd00::1", tcp_port))
attempt("ipv4_mapped_ipv6", lambda: tcp("::ffff:" + gw, tcp_port))
attempt("iptables_flush", lambda: run(["iptables", "-F"]))
attempt("iptables_legacy_flush", lambda: run(["iptables-legacy", "-F"]))
attempt("tcp_after_flush_attempts", lambda: tcp(gw, tcp_port))
attempt("docker_socket", lambda: socket.socket(socket.AF_UNIX).connect("/var/run/docker.sock"))
attempt("curl_noproxy", lambda: run(["curl", "-sS", "--noproxy", "*", "--max-time", "3", "http://%s:%d/" % (gw, tcp_port)]))
open("/workspace/battery.json", "w").write(json.dumps(results))
while not os.path.exists("/workspace/decoy-removed"):
    time.sleep(0.2)
"#;

#[test]
fn egress_battery_every_attempt_fails() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "battery");
    std::fs::write(dir.join("battery.py"), BATTERY).unwrap();
    let decoy = Decoy::start();

    let mut args = vec![
        "vault",
        "run",
        "--sandbox",
        "container",
        "--image",
        BASE,
        "--",
        "python3",
        "/workspace/battery.py",
    ];
    let (tcp, udp) = (decoy.tcp_port.to_string(), decoy.udp_port.to_string());
    args.extend([tcp.as_str(), udp.as_str()]);
    let mut cmd = rig.home.command(&args);
    cmd.current_dir(&dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();

    // A second container on the run's network, as a decoy the agent must not reach.
    let network = (0..600)
        .find_map(|_| {
            let found = docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=dev.agent-vault.pid={}", child.id()),
            ]);
            if found.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                None
            } else {
                Some(found)
            }
        })
        .expect("the run created no network");
    let decoy_container = docker(&[
        "run",
        "-d",
        "--network",
        &network,
        "--label",
        "agent-vault-test=decoy",
        BASE,
        "python3",
        "-m",
        "http.server",
        "8000",
    ]);
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &decoy_container,
    ]);
    assert!(!ip.is_empty(), "decoy container has no address");
    std::fs::write(dir.join("decoy-ip"), &ip).unwrap();
    for _ in 0..1200 {
        if dir.join("battery.json").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let decoy_log = docker(&["logs", &decoy_container]);
    docker(&["rm", "-f", &decoy_container]);
    std::fs::write(dir.join("decoy-removed"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("battery.json")).unwrap()).unwrap();
    let reached: Vec<String> = results
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.as_str().unwrap_or_default().starts_with("blocked"))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    assert!(
        reached.is_empty(),
        "egress not blocked:\n{}\nall results: {results:#}",
        reached.join("\n")
    );
    assert_eq!(results.as_object().unwrap().len(), 15, "{results:#}");
    assert_eq!(
        decoy.hits.load(Ordering::SeqCst),
        0,
        "the host decoy received traffic"
    );
    assert!(
        !decoy_log.contains("GET"),
        "the decoy container was reached: {decoy_log}"
    );
    assert_eq!(turn.leftovers(), "", "resources left behind");
}

#[test]
fn mounts_exposing_the_store_or_docker_are_refused() {
    let rig = sandbox_rig();
    let dir = workspace(&rig, "mounts");
    let state = rig.home.state();
    std::os::unix::fs::symlink(&state, dir.join("link")).unwrap();
    let link = dir.join("link");
    for (spec, why) in [
        (format!("{}:/mnt/x", state.display()), ".agent-vault"),
        (
            format!("{}:/mnt/x", state.join("ca").display()),
            ".agent-vault",
        ),
        (
            format!("{}:/mnt/x", rig.home.path().display()),
            ".agent-vault",
        ),
        (format!("{}:/mnt/x", link.display()), ".agent-vault"),
        (
            "/var/run/docker.sock:/mnt/docker.sock".to_owned(),
            "Docker socket",
        ),
        ("/var/run:/mnt/run".to_owned(), "Docker socket"),
        (format!("{}:/etc", dir.display()), "reserved"),
    ] {
        let run = sandboxed(&rig, &dir, &["--mount", &spec], &["true"]);
        assert!(
            !run.status.success() && run.stderr.contains(why),
            "{spec}: {run}"
        );
    }
    // The working directory is checked the same way.
    let run = sandboxed(&rig, &state, &[], &["true"]);
    assert!(run.stderr.contains(".agent-vault"), "{run}");
}

#[test]
fn exit_codes_keep_and_concurrent_runs() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "lifecycle");
    let run = sandboxed(&rig, &dir, &[], &["sh", "-c", "exit 42"]);
    assert_eq!(run.status.code(), Some(42), "{run}");

    // Two runs at once: separate tokens, networks and homes; both succeed.
    let runs: Vec<_> = (0..2)
        .map(|i| {
            let dir = workspace(&rig, &format!("concurrent-{i}"));
            let script = format!("echo {i} > $HOME/.claude/mine; sleep 2; cat $HOME/.claude/mine; printf %s \"$AGENT_VAULT_SESSION_TOKEN\"");
            let cmd = sandboxed_command(&rig, &dir, &[], &["sh", "-c", &script]);
            std::thread::spawn(move || crate::harness::run_command(cmd, ""))
        })
        .collect();
    let outputs: Vec<Run> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, run) in outputs.iter().enumerate() {
        assert!(run.status.success(), "{run}");
        assert!(
            run.stdout.starts_with(&format!("{i}\n")),
            "runs shared a home: {run}"
        );
    }
    assert_ne!(outputs[0].stdout, outputs[1].stdout, "runs shared a token");

    // --keep keeps the stopped agent container (and its home) for inspection; the turn
    // removes them when the test ends.
    let kept = sandboxed(&rig, &dir, &["--keep"], &["sh", "-c", "echo kept-output"]);
    assert!(kept.status.success(), "{kept}");
    let container = kept
        .stderr
        .split("kept the agent container ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kept container named: {kept}"))
        .to_owned();
    assert!(docker(&["logs", &container]).contains("kept-output"));
    let left = turn.leftovers();
    assert!(
        left.contains(&format!("container:{}", &container[..12])) && left.contains("volume:"),
        "the agent container and its home were not kept: {left}"
    );
}

/// A machine used before: a user's `--keep` left a stopped agent container and its home
/// volume. New runs neither touch them nor trip over them.
#[test]
fn earlier_kept_resources_do_not_disturb_new_runs() {
    let mut turn = docker_turn();
    let labels = [
        "--label",
        "dev.agent-vault.run=earlier0000000",
        "--label",
        "dev.agent-vault.keep=1",
        "--label",
        "dev.agent-vault.created=0",
        "--label",
        "dev.agent-vault.pid=2147483646",
    ];
    let mut volume = vec!["volume", "create"];
    volume.extend(labels);
    let volume = docker(&volume);
    let mut container = vec!["create"];
    container.extend(labels);
    let bind = format!("{volume}:/data");
    container.extend(["-v", &bind, BASE, "true"]);
    let container = docker(&container);
    let planted = Planted(vec![container.clone()], vec![volume.clone()]);
    turn.before = labelled();

    let rig = sandbox_rig();
    let dir = workspace(&rig, "used-before");
    let run = sandboxed(&rig, &dir, &[], &["true"]);
    assert!(run.status.success(), "{run}");
    assert_eq!(turn.leftovers(), "", "resources left behind");
    let still = labelled();
    assert!(
        still.contains(&format!("container:{}", &container[..12]))
            && still.contains(&format!("volume:{volume}")),
        "a kept resource of an earlier run was removed: {still:?}"
    );
    drop(planted);
}

/// Resources a test made outside a run, removed when it ends.
struct Planted(Vec<String>, Vec<String>);

impl Drop for Planted {
    fn drop(&mut self) {
        for container in &self.0 {
            docker(&["rm", "-f", container]);
        }
        for volume in &self.1 {
            docker(&["volume", "rm", "-f", volume]);
        }
    }
}

#[test]
fn the_default_agent_image_builds_from_local_material() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "default-image");
    let mut cmd = rig.home.command(&[
        "vault",
        "run",
        "--sandbox",
        "container",
        "--",
        "sh",
        "-c",
        "id -un; node --version; git --version",
    ]);
    cmd.current_dir(&dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE)
        .env("AGENT_VAULT_CLAUDE_CODE_VERSION", "none");
    let run = crate::harness::run_command(cmd, "");
    assert!(run.status.success(), "{run}");
    assert!(run.stdout.starts_with("claude\nv"), "{run}");
    assert_eq!(turn.leftovers(), "");
}

#[test]
fn env_selection_shared_home_tty_and_a_missing_engine() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "modes");

    // AGENT_VAULT_SANDBOX=container selects the mode like the flag; the shared home persists.
    // A user's own shared home is left as it was found.
    let shared_existed =
        !docker(&["volume", "ls", "-q", "--filter", "name=^agent-vault-home$"]).is_empty();
    let mut first = rig.home.command(&[
        "vault",
        "run",
        "--image",
        BASE,
        "--home-volume-shared",
        "--",
        "sh",
        "-c",
        "echo remembered > $HOME/.claude/note",
    ]);
    first
        .current_dir(&dir)
        .env("AGENT_VAULT_SANDBOX", "container")
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE);
    crate::harness::run_command(first, "").ok();
    let second = sandboxed(
        &rig,
        &dir,
        &["--home-volume-shared"],
        &["cat", "/home/claude/.claude/note"],
    );
    assert_eq!(second.stdout.trim(), "remembered", "{second}");
    let fresh = sandboxed(
        &rig,
        &dir,
        &[],
        &[
            "sh",
            "-c",
            "cat $HOME/.claude/note 2>/dev/null || echo empty",
        ],
    );
    assert_eq!(fresh.stdout.trim(), "empty", "the default home is per run");
    if shared_existed {
        sandboxed(
            &rig,
            &dir,
            &["--home-volume-shared"],
            &["rm", "-f", "/home/claude/.claude/note"],
        );
    } else {
        docker(&["volume", "rm", "agent-vault-home"]);
    }

    // With a terminal the container gets one too.
    let line = format!(
        "{} vault run --sandbox container --image {BASE} -- sh -c 'test -t 0 && test -t 1 && echo has-a-tty'",
        crate::harness::BIN
    );
    let mut tty = Command::new("script");
    tty.args(["-qec", &line, "/dev/null"]).env_clear();
    for (key, value) in rig.home.command(&[]).get_envs() {
        if let Some(value) = value {
            tty.env(key, value);
        }
    }
    tty.current_dir(&dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE);
    let out = crate::harness::run_command(tty, "");
    assert!(out.stdout.contains("has-a-tty"), "{out}");

    // No engine: a clear error naming what to do.
    let mut no_engine = sandboxed_command(&rig, &dir, &[], &["true"]);
    no_engine.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let run = crate::harness::run_command(no_engine, "");
    assert!(
        !run.status.success()
            && run.stderr.contains("cannot reach the Docker engine")
            && run.stderr.contains("Install Docker"),
        "{run}"
    );
    assert_eq!(turn.leftovers(), "");
}
