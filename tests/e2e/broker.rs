//! The broker end to end: real clients (curl, python requests) through the real binary's
//! MITM proxy and explicit endpoint to a local TLS upstream that echoes what it receives.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD, Server, TestHome, all_files, contains};
use crate::upstream::Upstream;

pub const BEARER: &str = "SENTINEL-bearer-7f3a";
const USER: &str = "SENTINEL-user-11";
const PASS: &str = "SENTINEL-pass-22";
const API_KEY: &str = "SENTINEL-apikey-33";
pub const SUBST: &str = "SENTINEL-sub-44&x/y";
const SECRETS: [&str; 5] = [BEARER, USER, PASS, API_KEY, "SENTINEL-sub-44"];

pub struct Rig {
    pub home: TestHome,
    pub server: Server,
    pub upstream: Upstream,
    pub mitm: u16,
    pub token: String,
    pub ca: PathBuf,
}

/// The rig's services. Response scrubbing is off on these, since the tests read the injected
/// values back from the echo; `/scrubbed` and `/scrubbed-sub` keep the default (on).
pub fn services_yaml_on(host: &str, port: u16) -> String {
    let services = format!(
        r#"services:
  - host: {host}
    port: {port}
    path: /bearer
    auth: {{type: bearer, token: BEARER_TOKEN}}
  - host: {host}
    port: {port}
    path: /basic
    auth: {{type: basic, username: BASIC_USER, password: BASIC_PASS}}
  - host: {host}
    port: {port}
    path: /apikey
    auth: {{type: api-key, key: API_KEY, header: x-api-key, prefix: "Key "}}
  - host: {host}
    port: {port}
    path: /custom
    auth:
      type: custom
      headers:
        X-Custom: "user={{{{ BASIC_USER }}}}; key={{{{ API_KEY }}}}"
  - host: {host}
    port: {port}
    path: /passthrough
    auth: {{type: passthrough}}
  - host: {host}
    port: {port}
    path: /sub
    auth: {{type: passthrough}}
    substitutions:
      - placeholder: __sub_value__
        key: SUB_KEY
        in: [header, query, body, path]
  - host: {host}
    port: {port}
    path: /off
    enabled: false
    auth: {{type: bearer, token: BEARER_TOKEN}}
  - host: {host}
    port: {port}
    path: /missing
    auth: {{type: bearer, token: NOT_SET_KEY}}
"#
    );
    let mut services = services.replace("    auth:", "    scrub_responses: false\n    auth:");
    services.push_str(&format!(
        r#"  - host: {host}
    port: {port}
    path: /scrubbed
    auth: {{type: bearer, token: BEARER_TOKEN}}
  - host: {host}
    port: {port}
    path: /scrubbed-sub
    auth: {{type: passthrough}}
    substitutions:
      - placeholder: __sub_value__
        key: SUB_KEY
        in: [query, body]
"#
    ));
    services
}

impl Rig {
    pub fn start(allowlist: bool) -> Self {
        Self::start_with(allowlist, Upstream::start())
    }

    pub fn start_with(allowlist: bool, upstream: Upstream) -> Self {
        Self::start_trusting(allowlist, upstream, &[])
    }

    /// Like `start_with`, the server also trusting the CAs in `extra_cas` (PEM files) for
    /// upstream TLS, e.g. an nginx the test started.
    pub fn start_trusting(allowlist: bool, upstream: Upstream, extra_cas: &[&Path]) -> Self {
        Self::start_full(TestHome::new(), allowlist, upstream, extra_cas, &[])
    }

    /// Like `start`, with extra environment for the server (e.g. rate-limit knobs).
    pub fn start_env(extra_env: &[(&str, &str)]) -> Self {
        Self::start_full(TestHome::new(), true, Upstream::start(), &[], extra_env)
    }

    /// Like `start_trusting`, with more environment for the server.
    pub fn start_with_env(
        allowlist: bool,
        upstream: Upstream,
        extra_cas: &[&Path],
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::start_full(TestHome::new(), allowlist, upstream, extra_cas, extra_env)
    }

    /// Like `start_trusting`, in a home the caller made (e.g. one on PostgreSQL).
    pub fn start_in(
        home: TestHome,
        allowlist: bool,
        upstream: Upstream,
        extra_cas: &[&Path],
    ) -> Self {
        Self::start_full(home, allowlist, upstream, extra_cas, &[])
    }

    /// Like `start_with`, with more server flags (e.g. `--host`).
    pub fn start_with_args(upstream: Upstream, server_args: &[&str]) -> Self {
        Self::start_full_args(TestHome::new(), true, upstream, &[], &[], server_args)
    }

    fn start_full(
        home: TestHome,
        allowlist: bool,
        upstream: Upstream,
        extra_cas: &[&Path],
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::start_full_args(home, allowlist, upstream, extra_cas, extra_env, &[])
    }

    fn start_full_args(
        home: TestHome,
        allowlist: bool,
        upstream: Upstream,
        extra_cas: &[&Path],
        extra_env: &[(&str, &str)],
        server_args: &[&str],
    ) -> Self {
        let mut bundle = std::fs::read_to_string(&upstream.ca_file).unwrap();
        for extra in extra_cas {
            bundle.push_str(&std::fs::read_to_string(extra).unwrap());
        }
        let bundle_file = home.path().join("upstream-cas.pem");
        std::fs::write(&bundle_file, bundle).unwrap();
        let ca_file = bundle_file.display().to_string();
        let mut env = vec![("SSL_CERT_FILE", ca_file.as_str())];
        if allowlist {
            env.push(("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"));
        }
        env.extend_from_slice(extra_env);
        let mut args = vec!["--mitm-port", "auto", "--log-level", "debug"];
        args.extend_from_slice(server_args);
        let server = home.start_server(&args, "", &env);
        let mitm = server.mitm_port.expect("the MITM proxy listens");
        Self::on_server(home, server, mitm, upstream)
    }

    /// Registers the owner on `server` (MITM proxy on `mitm`) and sets up the vault.
    pub fn on_server(home: TestHome, server: Server, mitm: u16, upstream: Upstream) -> Self {
        let registered = home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
        assert!(!registered.stderr.contains("in the clear"), "{registered}");
        home.run(&[
            "vault",
            "credential",
            "set",
            &format!("BEARER_TOKEN={BEARER}"),
            &format!("BASIC_USER={USER}"),
            &format!("BASIC_PASS={PASS}"),
            &format!("API_KEY={API_KEY}"),
            &format!("SUB_KEY={SUBST}"),
        ])
        .ok();
        std::fs::write(
            home.path().join("services.yaml"),
            services_yaml_on(&upstream.ip, upstream.https_port),
        )
        .unwrap();
        home.run(&["vault", "service", "set", "-f", "services.yaml"])
            .ok();
        home.run(&["ca", "fetch", "-o", "ca.pem"]).ok();
        let token = home.run(&["vault", "token"]).ok().stdout;
        let ca = home.path().join("ca.pem");
        Self {
            home,
            server,
            upstream,
            mitm,
            token,
            ca,
        }
    }

    pub fn proxy_url(&self) -> String {
        format!("http://{}:default@127.0.0.1:{}", self.token, self.mitm)
    }

    pub fn https(&self, path: &str) -> String {
        format!(
            "https://{}:{}{path}",
            self.upstream.ip, self.upstream.https_port
        )
    }

    /// curl through the proxy with HTTPS_PROXY and the fetched CA; returns (status, body, headers).
    pub fn curl(&self, extra: &[&str], url: &str) -> (u16, String, String) {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "--cacert"])
            .arg(&self.ca)
            .args(extra)
            .arg(url)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HTTPS_PROXY", self.proxy_url())
            .env("http_proxy", self.proxy_url())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The last header block belongs to the final response (CONNECT's 200 comes first).
        let (head, body) = text.rsplit_once("\r\n\r\n").unwrap_or((&text, ""));
        let last = head.rsplit("\r\n\r\n").next().unwrap_or(head);
        let status = last
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, body.to_owned(), last.to_lowercase())
    }

    pub fn echo(&self, extra: &[&str], path: &str) -> Value {
        let (status, body, _) = self.curl(extra, &self.https(path));
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

pub fn header<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn curl_gets_each_auth_type_injected() {
    each_auth_type_injected(&Rig::start(true));
}

#[test]
fn curl_gets_each_auth_type_injected_on_postgres() {
    each_auth_type_injected(&Rig::start_in(
        TestHome::on_postgres(),
        true,
        Upstream::start(),
        &[],
    ));
}

pub fn each_auth_type_injected(rig: &Rig) {
    let echo = rig.echo(
        &["-H", "Authorization: Bearer agent-fake"],
        "/bearer/v1/things?x=1",
    );
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    assert!(
        header(&echo, "proxy-authorization").is_empty(),
        "Proxy-Authorization reached the upstream"
    );
    assert_eq!(echo["path"], "/bearer/v1/things");
    assert_eq!(echo["query"], "x=1");
    let host = header(&echo, "host");
    let authority = echo["headers"][":authority"].as_str();
    assert!(
        host == vec![format!("127.0.0.1:{}", rig.upstream.https_port)]
            || authority.is_some()
            || echo["version"] == "HTTP/2.0",
        "{echo}"
    );

    let basic = rig.echo(&[], "/basic");
    let expected = base64_encode(&format!("{USER}:{PASS}"));
    assert_eq!(
        header(&basic, "authorization"),
        vec![format!("Basic {expected}")]
    );
    let keyed = rig.echo(&["-H", "X-Api-Key: fake"], "/apikey");
    assert_eq!(header(&keyed, "x-api-key"), vec![format!("Key {API_KEY}")]);
    let custom = rig.echo(&[], "/custom");
    assert_eq!(
        header(&custom, "x-custom"),
        vec![format!("user={USER}; key={API_KEY}")]
    );
    let passthrough = rig.echo(
        &["-H", "Authorization: Bearer mine", "-H", "Cookie: a=b"],
        "/passthrough",
    );
    assert_eq!(header(&passthrough, "authorization"), vec!["Bearer mine"]);
    assert_eq!(header(&passthrough, "cookie"), vec!["a=b"]);
}

pub fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn substitution_in_header_query_path_and_body() {
    let rig = Rig::start(true);
    let echo = rig.echo(
        &[
            "-H",
            "X-Token: tok=__sub_value__",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"secret":"__sub_value__","keep":"__other__"}"#,
        ],
        "/sub/__sub_value__/x?key=__sub_value__&other=1",
    );
    assert_eq!(header(&echo, "x-token"), vec![format!("tok={SUBST}")]);
    assert_eq!(echo["query"], "key=SENTINEL-sub-44%26x%2Fy&other=1");
    assert_eq!(
        echo["path"], "/sub/SENTINEL-sub-44%26x%2Fy/x",
        "encoded: still one segment"
    );
    let body: Value = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["secret"], SUBST);
    assert_eq!(body["keep"], "__other__");
    let form = rig.echo(&["--data", "a=__sub_value__&b=2"], "/sub/form");
    assert_eq!(form["body"], "a=SENTINEL-sub-44%26x%2Fy&b=2");
    // Outside a declared service the placeholder stays literal.
    let other = rig.echo(&["-H", "X-Token: __sub_value__"], "/passthrough");
    assert_eq!(header(&other, "x-token"), vec!["__sub_value__"]);
}

#[test]
fn placeholders_cannot_swell_a_request_past_its_limits() {
    let rig = Rig::start(true);
    // The largest credential value the store takes, behind a placeholder of 13 bytes.
    let value = "v".repeat(64 * 1024);
    rig.home
        .run(&["vault", "credential", "set", &format!("SUB_KEY={value}")])
        .ok();
    let one = rig.echo(
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"s":"__sub_value__"}"#,
        ],
        "/sub/one",
    );
    assert_eq!(one["body"], format!(r#"{{"s":"{value}"}}"#));

    // Five in a header would make it 320 KiB; 600 in an 8 KB body, 39 MB.
    let header = format!("X-Token: {}", "__sub_value__".repeat(5));
    let (status, body, _) = rig.curl(&["-H", &header], &rig.https("/sub/header"));
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("over 256 KiB"), "{body}");
    let swelling = format!(r#"{{"s":"{}"}}"#, "__sub_value__".repeat(600));
    let (status, body, _) = rig.curl(
        &["-H", "Content-Type: application/json", "--data", &swelling],
        &rig.https("/sub/body"),
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("over 32 MiB with its credentials substituted"),
        "{body}"
    );
    assert!(!body.contains(&value[..64]));
    // The server still serves.
    let after = rig.echo(&[], "/sub/after");
    assert_eq!(after["path"], "/sub/after");
}

#[test]
fn refusals_are_json_broker_errors() {
    let rig = Rig::start(true);
    let (status, body, headers) = rig.curl(&[], &rig.https("/off"));
    assert_eq!(status, 403, "{body}");
    assert!(
        headers.contains("x-agent-vault-proxy-error: true"),
        "{headers}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "service_disabled"
    );
    let (status, body, _) = rig.curl(&[], &rig.https("/missing"));
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("credential_not_found") && body.contains("NOT_SET_KEY"),
        "{body}"
    );

    // Unmatched host: forwarded without credentials by default, refused under `deny` — from
    // the very next request on.
    let open = rig.echo(&["-H", "Authorization: Bearer mine"], "/elsewhere");
    assert_eq!(header(&open, "authorization"), vec!["Bearer mine"]);
    rig.home
        .run(&[
            "vault",
            "settings",
            "set",
            "--unmatched-host-policy",
            "deny",
        ])
        .ok();
    let (status, body, headers) = rig.curl(&[], &rig.https("/elsewhere"));
    assert_eq!(status, 403, "{body}");
    assert!(headers.contains("x-agent-vault-proxy-error"));
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["error"], "forbidden");
    assert!(
        parsed["hint"]["proposal"]
            .as_str()
            .unwrap()
            .contains("proposal create"),
        "{body}"
    );
    rig.home
        .run(&[
            "vault",
            "settings",
            "set",
            "--unmatched-host-policy",
            "forward",
        ])
        .ok();

    // A changed credential is used on the next request.
    rig.home
        .run(&[
            "vault",
            "credential",
            "set",
            "BEARER_TOKEN=SENTINEL-rotated-55",
        ])
        .ok();
    let echo = rig.echo(&[], "/bearer");
    assert_eq!(
        header(&echo, "authorization"),
        vec!["Bearer SENTINEL-rotated-55"]
    );
    // A disabled-then-enabled service follows too.
    rig.home
        .run(&[
            "vault",
            "service",
            "disable",
            &format!("127.0.0.1:{}/bearer", rig.upstream.https_port),
        ])
        .ok();
    assert_eq!(rig.curl(&[], &rig.https("/bearer")).0, 403);

    // Proxy authentication.
    let plain = |proxy: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_connect}",
                "--cacert",
            ])
            .arg(&rig.ca)
            .args(["--proxy", proxy, &rig.https("/bearer")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(plain(&format!("http://127.0.0.1:{}", rig.mitm)), "407");
    assert_eq!(
        plain(&format!(
            "http://av_sess_nope:default@127.0.0.1:{}",
            rig.mitm
        )),
        "407"
    );
    assert_eq!(
        plain(&format!(
            "http://{}:other@127.0.0.1:{}",
            rig.token, rig.mitm
        )),
        "403"
    );
}

#[test]
fn python_requests_through_the_proxy() {
    let rig = Rig::start(true);
    let script = format!(
        r#"
import json, requests
proxies = {{"https": "{proxy}", "http": "{proxy}"}}
r = requests.post("{url}", json={{"hello": "world"}}, proxies=proxies, verify="{ca}", headers={{"Authorization": "Bearer fake"}})
print(json.dumps({{"status": r.status_code, "echo": r.json()}}))
"#,
        proxy = rig.proxy_url(),
        url = rig.https("/bearer/py"),
        ca = rig.ca.display()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], 200);
    assert_eq!(
        header(&result["echo"], "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    assert_eq!(result["echo"]["method"], "POST");
    assert_eq!(result["echo"]["body"], r#"{"hello": "world"}"#);
}

#[test]
fn explicit_endpoint_and_plain_http() {
    let rig = Rig::start(true);
    let api = format!(
        "{}/proxy/127.0.0.1:{}/bearer/x?y=1",
        rig.server.url, rig.upstream.https_port
    );
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-H"])
        .arg(format!("Authorization: Bearer {}", rig.token))
        .args(["-H", "X-Vault: default", &api])
        .output()
        .unwrap();
    let echo: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    assert!(header(&echo, "x-vault").is_empty());
    assert_eq!(
        (echo["path"].as_str(), echo["query"].as_str()),
        (Some("/bearer/x"), Some("y=1"))
    );

    // Absolute-form http:// works for passthrough; credentials never go out in clear text.
    let http = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}", "--proxy"])
            .arg(format!("http://127.0.0.1:{}", rig.mitm))
            .arg("--proxy-user")
            .arg(format!("{}:default", rig.token))
            .arg(format!("http://127.0.0.1:{}{path}", rig.upstream.http_port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    let (status, body) = http("/plain");
    assert_eq!(status, "200", "{body}");
    assert!(!body.contains("proxy-authorization"), "{body}");
    // The http port is another port: no service matches it, so it passed through. A service
    // bound to it with a credential is refused over http.
    std::fs::write(
        rig.home.path().join("plain.yaml"),
        format!("services:\n  - host: 127.0.0.1\n    port: {}\n    auth: {{type: bearer, token: BEARER_TOKEN}}\n", rig.upstream.http_port),
    )
    .unwrap();
    rig.home
        .run(&["vault", "service", "add", "-f", "plain.yaml"])
        .ok();
    let (status, body) = http("/plain");
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("insecure_upstream"), "{body}");
}

#[test]
fn a_token_given_another_vaults_name_is_refused_and_the_log_says_why() {
    let rig = Rig::start(true);
    let proxy = format!("http://{}:other@127.0.0.1:{}", rig.token, rig.mitm);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "--proxy",
            &proxy,
        ])
        .arg("--cacert")
        .arg(&rig.ca)
        .arg(rig.https("/bearer"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    // The agent's curl says only that CONNECT failed; the server's debug log says why.
    let (_, log) = rig.server.stop_with("TERM");
    assert!(
        log.contains("vault_mismatch") && log.contains("not \"other\""),
        "{log}"
    );
    assert!(!log.contains(rig.token.as_str()), "{log}");
}

#[test]
fn private_destinations_need_the_allowlist() {
    let rig = Rig::start(false);
    let (status, body, _) = rig.curl(&[], &rig.https("/bearer"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("blocked_destination"), "{body}");
    // Which range the name fell in is for the server log only, not the agent.
    assert!(!body.contains("network policy ("), "{body}");
    let (_, output) = rig.server.stop_with("TERM");
    assert!(output.contains("network guard refused"), "{output}");
}

/// A Docker network the test made, removed when dropped.
struct DockerNetwork(String);

impl Drop for DockerNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

/// The broker's own machine is refused on any address it holds, public ones included: here a
/// bridge the test has Docker make in a public range gives the host such an address, and a
/// service listening on all of the host's addresses must not be reached through it.
#[test]
fn this_machines_own_public_address_is_refused() {
    use std::io::{Read, Write};
    // A second octet of our own keeps parallel runs of the suite apart.
    let (name, gateway) = (0..20)
        .find_map(|n| {
            let octet = (std::process::id() as usize + n) % 200 + 20;
            let name = format!("avtest-this-machine-{}-{n}", std::process::id());
            let made = Command::new("docker")
                .args(["network", "create", "--subnet"])
                .arg(format!("11.{octet}.7.0/24"))
                .arg(&name)
                .output()
                .unwrap();
            made.status
                .success()
                .then(|| (name, format!("11.{octet}.7.1")))
        })
        .expect("docker network create");
    let _network = DockerNetwork(name);
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn({
        let reached = reached.clone();
        move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                if stream.read(&mut buf).is_ok_and(|n| n > 0) {
                    reached.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\nhost-only secret",
                    );
                }
            }
        }
    });
    let rig = Rig::start(true);
    for url in [
        format!("http://{gateway}:{port}/"),
        format!("https://{gateway}:{port}/"),
    ] {
        let (status, body, _) = rig.curl(&[], &url);
        assert_eq!(status, 403, "{url}: {body}");
        assert!(body.contains("blocked_destination"), "{url}: {body}");
        assert!(
            !body.contains("this machine"),
            "the range is for the log: {body}"
        );
    }
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
    let (_, log) = rig.server.stop_with("TERM");
    assert!(log.contains("this machine's own address"), "{log}");
}

#[test]
fn large_responses_stream_with_flat_memory() {
    let rig = Rig::start(true);
    let size = 200 * 1024 * 1024;
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            "--cacert",
        ])
        .arg(&rig.ca)
        .arg(rig.https(&format!("/big/{size}")))
        .env_clear()
        .env("HTTPS_PROXY", rig.proxy_url())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("200 {size}"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", rig.server.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        peak_kib < 100 * 1024,
        "server peak RSS {peak_kib} KiB: the body was buffered"
    );
}

#[test]
fn credential_values_never_leak_into_logs_or_files() {
    let rig = Rig::start(true);
    let answered: Vec<(&str, u16)> = [
        "/bearer",
        "/basic",
        "/apikey",
        "/custom",
        "/sub/__sub_value__",
        "/missing",
        "/off",
        "/elsewhere",
    ]
    .into_iter()
    .map(|path| {
        let (status, _, _) = rig.curl(&["-H", "X-Token: __sub_value__"], &rig.https(path));
        (path, status)
    })
    .collect();
    // The writer flushes in batches (every 100 ms under load).
    let rows = log_rows(&rig, 8);
    // Each row has the status the agent got, refusals included (403 off, 502 missing).
    for (path, status) in &answered {
        let row = rows.iter().find(|r| r["path"] == *path);
        let row = row.unwrap_or_else(|| panic!("no row for {path}: {rows:?}"));
        assert_eq!(row["status"], *status, "{path}: {row}");
    }
    assert!(answered.contains(&("/off", 403)) && answered.contains(&("/missing", 502)));
    let bearer = rows.iter().find(|r| r["path"] == "/bearer").unwrap();
    assert_eq!(
        bearer["credential_keys"],
        serde_json::json!(["BEARER_TOKEN"])
    );
    assert_eq!(bearer["status"], 200);
    let missing = rows.iter().find(|r| r["path"] == "/missing").unwrap();
    assert_eq!(missing["error_code"], "credential_not_found");
    // Refused rows keep what was matched: the service and the keys it needs.
    assert_eq!(
        missing["service"],
        format!("{}:{}/missing", rig.upstream.ip, rig.upstream.https_port)
    );
    assert_eq!(
        missing["credential_keys"],
        serde_json::json!(["NOT_SET_KEY"])
    );
    let off = rows.iter().find(|r| r["path"] == "/off").unwrap();
    assert_eq!(off["error_code"], "service_disabled");
    assert_eq!(
        off["service"],
        format!("{}:{}/off", rig.upstream.ip, rig.upstream.https_port)
    );
    assert_eq!(off["credential_keys"], serde_json::json!(["BEARER_TOKEN"]));
    // A vault token's requests name the person who minted it.
    assert_eq!(bearer["actor_type"], "user");
    assert!(bearer["actor_id"].is_string(), "{bearer}");
    assert_eq!(bearer["actor"], crate::harness::OWNER_EMAIL, "{bearer}");

    // A proposal filed with the vault token records who filed it, never the token itself.
    let filed = crate::harness::http()
        .post(format!("{}/v1/proposals", rig.server.url))
        .bearer_auth(rig.token.trim())
        .json(&serde_json::json!({"credentials": ["NEW_KEY"], "message": "need it"}))
        .send()
        .unwrap();
    assert_eq!(filed.status(), 201, "{}", filed.text().unwrap_or_default());
    let token = rig.token.trim().to_owned();

    let Rig { home, server, .. } = rig;
    let (_, output) = server.stop_with("TERM");
    for (path, bytes) in all_files(&home.state()) {
        assert!(
            !contains(&bytes, &token),
            "{} holds the raw vault token",
            path.display()
        );
    }
    assert!(
        output.contains("proxied request"),
        "debug line per request:\n{output}"
    );
    assert!(output.contains("BEARER_TOKEN"), "key names are logged");
    for secret in SECRETS {
        assert!(!output.contains(secret), "server output leaked {secret}");
        for (path, bytes) in all_files(&home.state()) {
            assert!(
                !contains(&bytes, secret),
                "{} holds {secret}",
                path.display()
            );
        }
    }
}

#[test]
fn ca_fetch_prints_the_root_or_explains_why_not() {
    let rig = Rig::start(true);
    let pem = rig.home.run(&["ca", "fetch"]).ok().stdout;
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(pem, std::fs::read_to_string(&rig.ca).unwrap());
    assert_eq!(
        pem,
        std::fs::read_to_string(rig.home.state().join("ca/ca.crt.pem")).unwrap()
    );
    let headers = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--noproxy", "*"])
        .arg(format!("{}/v1/mitm/ca.pem", rig.server.url))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    assert!(
        headers.contains(&format!("x-mitm-port: {}", rig.mitm)),
        "{headers}"
    );

    let without = TestHome::new();
    let server = without.start_server(&[], "", &[]);
    without
        .run(&["ca", "fetch", "--address", &server.url])
        .fails_with("without the MITM proxy");
}

/// Waits until the request log holds `count` rows (the writer flushes in batches).
fn log_rows(rig: &Rig, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let logs = rig.home.run(&["vault", "logs", "--json"]).ok();
        let rows: Vec<Value> = serde_json::from_str(&logs.stdout).unwrap();
        if rows.len() >= count {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the request log never reached {count} rows");
}

#[test]
fn owners_set_log_retention_and_the_environment_wins() {
    let rig = Rig::start(true);
    for _ in 0..4 {
        rig.curl(&[], &rig.https("/bearer"));
    }
    assert_eq!(log_rows(&rig, 4).len(), 4);
    let shown = rig.home.run(&["owner", "config", "get"]).ok();
    assert!(
        shown.stdout.contains("168 hours (default)")
            && shown.stdout.contains("10000 per vault (default)"),
        "{shown}"
    );
    // A lower cap applies at once, not at the next 15-minute pass.
    let set = rig
        .home
        .run(&["owner", "config", "set", "--logs-max-rows-per-vault", "2"])
        .ok();
    assert!(set.stdout.contains("2 per vault (setting)"), "{set}");
    assert_eq!(log_rows(&rig, 0).len(), 2);
    rig.home
        .run(&["owner", "config", "set", "--logs-max-age-hours", "100000"])
        .fails_with("between 0 (no limit)");

    // Pinned by the environment: the env value is reported and owner changes are refused.
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[
            ("AGENT_VAULT_LOGS_MAX_AGE_HOURS", "12"),
            ("AGENT_VAULT_LOGS_RETENTION_LOCK", "true"),
        ],
    );
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
    let shown = home.run(&["owner", "config", "get"]).ok();
    assert!(
        shown.stdout.contains("12 hours (env)") && shown.stdout.contains("pinned"),
        "{shown}"
    );
    home.run(&["owner", "config", "set", "--logs-max-rows-per-vault", "5"])
        .fails_with("pinned by AGENT_VAULT_LOGS_RETENTION_LOCK");
}

/// The age limit through the real server: rows older than it go when the owner sets it (a
/// pass at once), including one written after younger rows, as a long request's row is;
/// younger rows stay.
#[test]
fn the_age_limit_removes_old_rows_wherever_they_lie() {
    let rig = Rig::start(true);
    for _ in 0..3 {
        rig.curl(&[], &rig.https("/bearer"));
    }
    assert_eq!(log_rows(&rig, 3).len(), 3);
    let db = rusqlite::Connection::open(rig.home.state().join("agent-vault.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    // Two days old, written after the three young rows.
    db.execute(
        "INSERT INTO request_log (vault_id, ingress, method, host, path, status, duration_ms, created_at)
         SELECT vault_id, 'mitm', 'GET', host, '/old', 200, 1, CAST(strftime('%s', 'now') AS INTEGER) - 172800
         FROM request_log LIMIT 1",
        [],
    )
    .unwrap();
    let paths = || -> Vec<String> {
        db.prepare("SELECT path FROM request_log ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(paths().last().map(String::as_str), Some("/old"));
    rig.home
        .run(&["owner", "config", "set", "--logs-max-age-hours", "24"])
        .ok();
    assert_eq!(
        paths(),
        vec!["/bearer"; 3],
        "the old row went, the young stayed"
    );
}

/// Traffic brings the retention pass forward: a vault's log stays near its row cap instead of
/// growing until the next 15-minute pass (which, over millions of rows, also held the write
/// lock for seconds).
#[test]
fn the_row_cap_holds_under_traffic_between_periodic_passes() {
    let rig = Rig::start_with_env(
        true,
        Upstream::start(),
        &[],
        &[("AGENT_VAULT_LOGS_MAX_ROWS_PER_VAULT", "100")],
    );
    // 400 requests on one kept-alive connection (curl's URL globbing; its output interleaves
    // the 400 answers, so the log below is the check).
    rig.curl(&[], &rig.https("/bearer/[1-400]"));
    let db = rusqlite::Connection::open(rig.home.state().join("agent-vault.db")).unwrap();
    let count = || -> (i64, bool) {
        db.query_row(
            "SELECT COUNT(*), COALESCE(MAX(path = '/bearer/400'), 0) FROM request_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let mut seen = count();
    for _ in 0..100 {
        if seen.1 && seen.0 <= 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        seen = count();
    }
    let (rows, newest_kept) = seen;
    assert!(newest_kept, "the newest request is kept ({rows} rows)");
    assert!(
        (100..=200).contains(&rows),
        "400 requests against a cap of 100 left {rows} rows"
    );
}

/// A cookie an upstream sets in answer to a request the broker authenticated is a session
/// derived from the vault's credential: the agent never gets it. Where no vault credential
/// was used, cookies pass.
#[test]
fn set_cookie_is_dropped_only_where_a_credential_was_used() {
    let rig = Rig::start(true);
    for (path, passes) in [
        ("/bearer/login?cookie", false),
        ("/sub/__sub_value__?cookie", false),
        ("/passthrough/x?cookie", true),
        ("/elsewhere?cookie", true),
    ] {
        let (status, _, headers) = rig.curl(&[], &rig.https(path));
        assert_eq!(status, 200, "{path}: {headers}");
        assert_eq!(
            headers.contains("set-cookie: upstream-session"),
            passes,
            "{path}: {headers}"
        );
    }
}
