//! The network side: the allowed path through the broker, every other way out refused
//! (aimed only at decoys the test runs), the relay closed to other containers, and the
//! agent without privileges.

use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::{BASE, docker, docker_turn, sandbox_rig, sandboxed, workspace};
use crate::broker::{BEARER, header};
use crate::harness::{poll, written};

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
    // A slot made ahead of time is what runs get by default: the battery runs in one.
    let warm_up = super::sandboxed(&rig, &dir, &[], &["true"]);
    assert!(warm_up.status.success(), "{warm_up}");
    super::wait_for_maintainers();
    let mut cmd = rig.home.command(&args);
    cmd.current_dir(&dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();

    // A second container on the run's network, as a decoy the agent must not reach.
    let network = poll("the run's network", Duration::from_millis(100), || {
        super::network_of_run(child.id())
    });
    assert!(
        super::made_by_another_process(&network, child.id()),
        "the battery did not run in a ready slot"
    );
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
fn the_relay_serves_only_its_own_run() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "relay");
    // A listener of the test on every host address: proof that a container on the default
    // bridge reaches the run's gateway at all, so the relay's refusal is the relay's doing.
    let decoy = TcpListener::bind("0.0.0.0:0").unwrap();
    let decoy_port = decoy.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in decoy.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut &stream, b"HTTP/1.0 200 OK\r\n\r\ndecoy");
        }
    });
    let script = "echo \"$AGENT_VAULT_ADDR $HTTPS_PROXY\" > /workspace/addr.tmp; \
        curl -sS \"$AGENT_VAULT_ADDR/health\" > /workspace/inside; mv /workspace/addr.tmp /workspace/addr; \
        while [ ! -e /workspace/done ]; do sleep 0.2; done";
    let mut cmd = super::sandboxed_command(&rig, &dir, &[], &["sh", "-c", script]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let addr = poll("the agent", Duration::from_millis(100), || {
        written(&dir.join("addr"))
    });
    assert!(
        std::fs::read_to_string(dir.join("inside"))
            .unwrap()
            .contains("ok"),
        "the run's own agent reaches the broker"
    );
    let (api, proxy) = addr.trim().split_once(' ').unwrap();
    let gateway = api
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap()
        .0;
    let proxy_port = proxy.rsplit_once(':').unwrap().1;
    let from_bridge = |url: String| {
        std::process::Command::new("docker")
            .args(["run", "--rm", "--label", "agent-vault-test=bridge", BASE])
            .args(["curl", "-sS", "--max-time", "5", &url])
            .output()
            .unwrap()
    };
    let control = from_bridge(format!("http://{gateway}:{decoy_port}/"));
    assert_eq!(
        String::from_utf8_lossy(&control.stdout),
        "decoy",
        "a container on the default bridge cannot reach the host at all: {}",
        String::from_utf8_lossy(&control.stderr)
    );
    for url in [
        format!("{api}/health"),
        format!("http://{gateway}:{proxy_port}/"),
    ] {
        let out = from_bridge(url.clone());
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "a container on the default bridge used the relay at {url}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    std::fs::write(dir.join("done"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(turn.leftovers(), "");
}

/// The agent holds no capability (none even to regain), cannot gain privileges through a
/// setuid binary, runs under Docker's seccomp filter, and is not root.
#[test]
fn the_agent_runs_unprivileged() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "privileges");
    let run = sandboxed(&rig, &dir, &[], &["cat", "/proc/self/status"]);
    assert!(run.status.success(), "{run}");
    let field = |name: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {run}"))
            .to_owned()
    };
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2", "filter mode");
    for caps in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(field(caps), "0000000000000000", "{caps}");
    }
    let uid = field("Uid");
    assert!(!uid.split_whitespace().any(|id| id == "0"), "root: {uid}");
    assert_eq!(turn.leftovers(), "");
}

#[test]
fn a_remote_broker_is_reached_through_its_tls_proxy() {
    let turn = docker_turn();
    let rig = crate::broker::Rig::start_with_args(
        crate::upstream::Upstream::start_on("127.0.0.2"),
        &["--host", "0.0.0.0", "--proxy-tls-port", "auto"],
    );
    let tls_port = rig.server.proxy_tls_port.expect("the TLS proxy listens");
    let api_port = rig.server.url.rsplit(':').next().unwrap();
    let remote = format!(
        "http://{}:{api_port}",
        crate::agents::non_loopback_address()
    );
    crate::agents::login_at(&rig, &remote);
    let dir = workspace(&rig, "remote");
    let url = rig.https("/bearer/remote-sandbox");
    let script = format!("set -e; curl -sS {url} > /workspace/curl.json");
    let run = sandboxed(&rig, &dir, &["--address", &remote], &["sh", "-c", &script]);
    assert!(run.status.success(), "{run}");
    assert!(!run.stderr.contains("plain HTTP"), "{run}");
    let echo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("curl.json")).unwrap()).unwrap();
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    assert!(
        run.stderr.contains(&format!(":{tls_port} over TLS")),
        "{run}"
    );
    assert_eq!(turn.leftovers(), "", "resources left behind");
}

/// A remote broker whose API is served over `https://` (behind a TLS front, as on a team
/// server): the agent reaches it at its plain `AGENT_VAULT_ADDR` on the run's network, the
/// relay carrying it on inside TLS, verified as the CLI verifies it (`SSL_CERT_FILE` here).
#[test]
fn a_remote_brokers_https_api_is_reached_from_the_sandbox() {
    let turn = docker_turn();
    let rig = crate::broker::Rig::start_with_args(
        crate::upstream::Upstream::start_on("127.0.0.2"),
        &["--host", "0.0.0.0", "--proxy-tls-port", "auto"],
    );
    let ip = crate::agents::non_loopback_address();
    let api_port: u16 = rig.server.url.rsplit(':').next().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cert = crate::upstream::TestCert::mint_for(&[&ip]);
    let front = cert.tls_front(&runtime, &ip, api_port);
    let front_ca = rig.home.path().join("front-ca.pem");
    std::fs::write(&front_ca, &cert.ca_pem).unwrap();
    let trust = [("SSL_CERT_FILE", front_ca.to_str().unwrap())];
    let remote = format!("https://{ip}:{front}");
    crate::agents::login_at_with(&rig, &remote, &trust);

    let dir = workspace(&rig, "https-api");
    let script = "set -e; curl -sS -H \"Authorization: Bearer $AGENT_VAULT_SESSION_TOKEN\" \"$AGENT_VAULT_ADDR/v1/discover\" > /workspace/discover.json";
    let mut cmd =
        super::sandboxed_command(&rig, &dir, &["--address", &remote], &["sh", "-c", script]);
    cmd.envs(trust);
    let run = crate::harness::run_command(cmd, "");
    assert!(run.status.success(), "{run}");
    let discover = std::fs::read_to_string(dir.join("discover.json")).unwrap();
    let discover: Value =
        serde_json::from_str(&discover).unwrap_or_else(|e| panic!("{e}: {discover}"));
    assert_eq!(discover["vault"], "default", "{discover}");
    assert_eq!(turn.leftovers(), "", "resources left behind");
}
