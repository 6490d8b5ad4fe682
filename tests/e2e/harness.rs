//! Shared helpers: a temporary home, the real binary driven as a user drives it, and a
//! server process on ephemeral ports.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-vault");

/// A throwaway `$HOME` with its own `~/.agent-vault`.
pub struct TestHome {
    dir: tempfile::TempDir,
    /// Use the full Argon2id parameters instead of the debug-only cheap ones.
    pub real_kdf: bool,
    /// The PostgreSQL database this home's server keeps its data in (`AGENT_VAULT_DATABASE_URL`);
    /// `None` for the SQLite file in the home.
    pub database_url: Option<String>,
}

/// `AGENT_VAULT_TEST_DATABASE=postgres` runs every test home on PostgreSQL.
pub const TEST_DATABASE_ENV: &str = "AGENT_VAULT_TEST_DATABASE";

impl TestHome {
    /// A home on the SQLite file, or on a fresh PostgreSQL database when
    /// `AGENT_VAULT_TEST_DATABASE=postgres`.
    pub fn new() -> Self {
        let on_postgres = std::env::var(TEST_DATABASE_ENV).is_ok_and(|v| v == "postgres");
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            real_kdf: false,
            database_url: on_postgres.then(crate::testpg::fresh_database_url),
        }
    }

    /// A home whose data lives in a fresh database on the test binary's PostgreSQL server.
    pub fn on_postgres() -> Self {
        Self::on_database(&crate::testpg::fresh_database_url())
    }

    /// A home whose server keeps its data in the PostgreSQL database at `url`.
    pub fn on_database(url: &str) -> Self {
        Self::on_sqlite().with_database(url)
    }

    /// A home on its SQLite file, whatever `AGENT_VAULT_TEST_DATABASE` says.
    pub fn on_sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            real_kdf: false,
            database_url: None,
        }
    }

    /// This home, its server now keeping its data in the PostgreSQL database at `url`.
    pub fn with_database(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join(".agent-vault")
    }

    /// The binary with a clean environment pointing at this home.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("HOME", self.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .current_dir(self.path());
        if !self.real_kdf {
            cmd.env("AGENT_VAULT_INSECURE_TEST_KDF", "1");
        }
        if let Some(url) = &self.database_url {
            cmd.env("AGENT_VAULT_DATABASE_URL", url);
        }
        cmd
    }

    /// Runs the binary to completion, feeding `stdin`.
    pub fn run_with(&self, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(envs.iter().copied());
        run_command(cmd, stdin)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, "", &[])
    }

    /// The token of the login saved in this home (for raw API calls).
    pub fn session_token(&self) -> String {
        let text = std::fs::read_to_string(self.state().join("session.json")).unwrap();
        let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
        saved["token"].as_str().unwrap().to_owned()
    }

    /// `auth register` against `server`, the password on stdin.
    pub fn register(&self, server: &Server, email: &str, password: &str) -> Run {
        self.with_password("register", server, email, password)
    }

    /// `auth login` at `server`, the password on stdin.
    pub fn login(&self, server: &Server, email: &str, password: &str) -> Run {
        self.with_password("login", server, email, password)
    }

    /// `auth COMMAND` at `server` for `email`, the password on stdin.
    fn with_password(&self, command: &str, server: &Server, email: &str, password: &str) -> Run {
        let args = [
            "auth",
            command,
            "--address",
            &server.url,
            "--email",
            email,
            "--password-stdin",
        ];
        self.run_with(&args, &format!("{password}\n"), &[])
    }

    /// `auth verify` of `email` at `server` with `code`, the account's password on stdin.
    pub fn verify(&self, server: &Server, email: &str, code: &str, password: &str) -> Run {
        let args = [
            "auth",
            "verify",
            "--address",
            &server.url,
            "--email",
            email,
            "--code",
            code,
            "--password-stdin",
        ];
        self.run_with(&args, &format!("{password}\n"), &[])
    }

    /// `auth accept-invite` of `link`, the password on stdin.
    pub fn accept_invite(&self, link: &str, password: &str) -> Run {
        self.run_with(
            &["auth", "accept-invite", link, "--password-stdin"],
            &format!("{password}\n"),
            &[],
        )
    }

    /// The verification code `owner user info` shows for `email` (this home is an owner's).
    pub fn verification_code(&self, email: &str) -> String {
        let info = self.run(&["owner", "user", "info", email]).ok();
        info.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Verification code: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no verification code for {email}:\n{info}"))
            .to_owned()
    }

    /// Registers `email` at `server` from this home and verifies it with the code `owner`
    /// reads, so the account is active.
    pub fn register_verified(
        &self,
        server: &Server,
        owner: &TestHome,
        email: &str,
        password: &str,
    ) {
        self.register(server, email, password).ok();
        let code = owner.verification_code(email);
        self.verify(server, email, &code, password).ok();
    }

    /// Starts `agent-vault server` (on ports the OS picks unless `extra` names them; the MITM
    /// proxy off unless `extra` names `--mitm-port`) and waits until it listens.
    pub fn start_server(&self, extra: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Server {
        self.try_start_server(extra, stdin, envs)
            .unwrap_or_else(|run| panic!("server did not start:\n{run}"))
    }

    pub fn try_start_server(
        &self,
        extra: &[&str],
        stdin: &str,
        envs: &[(&str, &str)],
    ) -> Result<Server, Run> {
        let mut cmd = self.server_command(extra);
        cmd.envs(envs.iter().copied());
        spawn_server(cmd, stdin)
    }

    /// `agent-vault server` with `extra` flags (free ports unless `extra` names them).
    pub fn server_command(&self, extra: &[&str]) -> Command {
        let mut args = vec!["server"];
        for (flag, default) in [("--port", "0"), ("--mitm-port", "0")] {
            if !extra.contains(&flag) {
                args.extend([flag, default]);
            }
        }
        args.extend_from_slice(extra);
        self.command(&args)
    }

    /// Starts a server that resolves `names` to the given addresses, as if DNS said so: it
    /// runs in a mount namespace of its own with its own `/etc/hosts` (needs root).
    pub fn start_server_resolving(
        &self,
        names: &[(&str, &str)],
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, ip) in names {
            hosts.push_str(&format!("{ip} {name}\n"));
        }
        let hosts_file = self.path().join("hosts");
        std::fs::write(&hosts_file, hosts).unwrap();
        let mut unshare = Command::new("unshare");
        unshare
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
            .arg(&hosts_file);
        self.start_server_under(unshare, extra, envs)
    }

    /// Starts a server run by `wrapper`, a command that executes the arguments appended to
    /// it (`unshare …`, `prlimit …`), with the server's environment.
    pub fn start_server_under(
        &self,
        mut wrapper: Command,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let server = self.server_command(extra);
        wrapper
            .arg(server.get_program())
            .args(server.get_args())
            .env_clear()
            .current_dir(self.path());
        for (key, value) in server.get_envs() {
            if let Some(value) = value {
                wrapper.env(key, value);
            }
        }
        wrapper.envs(envs.iter().copied());
        spawn_server(wrapper, "").unwrap_or_else(|run| panic!("server did not start:\n{run}"))
    }
}

/// Spawns a server command and waits until it listens.
pub fn spawn_server(mut cmd: Command, stdin: &str) -> Result<Server, Run> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn server");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let tx_err = tx.clone();
    let readers = vec![
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(format!("out:{line}"));
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx_err.send(format!("err:{line}"));
            }
        }),
    ];
    let mut seen = Vec::new();
    let mut mitm_port = None;
    let mut proxy_tls_port = None;
    let mut api_url = None;
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                // The server prints the MITM proxy's bound address first, then the API's.
                if let Some(url) = line.strip_prefix("out:API bound to ") {
                    api_url = Some(url.trim().to_owned());
                } else if let Some(addr) = line.strip_prefix("out:MITM proxy bound to ") {
                    let port = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                    mitm_port = Some(port.expect("a port in the MITM line"));
                } else if let Some(addr) = line.strip_prefix("out:MITM proxy over TLS bound to ") {
                    let port = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                    proxy_tls_port = Some(port.expect("a port in the TLS proxy line"));
                } else if let Some(url) = line
                    .strip_prefix("out:")
                    .and_then(|l| l.split("listening on ").nth(1))
                {
                    let url = url.trim().to_owned();
                    return Ok(Server {
                        child,
                        api_url: api_url.unwrap_or_else(|| url.clone()),
                        url,
                        mitm_port,
                        proxy_tls_port,
                        output: rx,
                        seen,
                        readers,
                    });
                }
                seen.push(line);
            }
            Err(_) => {
                let status = child.wait().expect("wait");
                for reader in readers {
                    let _ = reader.join();
                }
                let (stdout, stderr) = split_lines(&seen, rx);
                return Err(Run {
                    status,
                    stdout,
                    stderr,
                });
            }
        }
    }
}

fn split_lines(seen: &[String], rx: mpsc::Receiver<String>) -> (String, String) {
    let mut all: Vec<String> = seen.to_vec();
    all.extend(rx.try_iter());
    let pick = |prefix: &str| {
        all.iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect::<Vec<_>>()
            .join("\n")
    };
    (pick("out:"), pick("err:"))
}

pub fn run_command(mut cmd: Command, stdin: &str) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn agent-vault");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).ok();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait");
    Run {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The outcome of one CLI invocation.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Asserts a non-zero exit whose stderr mentions `needle`.
    pub fn fails_with(self, needle: &str) -> Self {
        assert!(!self.status.success(), "expected failure:\n{self}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// Where the API listens (differs from `url` when `AGENT_VAULT_ADDR` names another).
    pub api_url: String,
    /// The MITM proxy's bound port, when it listens (`--mitm-port auto` picks any free one).
    pub mitm_port: Option<u16>,
    /// The proxy's TLS port, when it listens (`--proxy-tls-port`).
    pub proxy_tls_port: Option<u16>,
    output: mpsc::Receiver<String>,
    seen: Vec<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal and waits for exit; returns everything the server printed.
    pub fn stop_with(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        let status = self.child.wait().expect("wait");
        (status, self.drain())
    }

    /// Everything printed so far; after exit, everything (the readers end at EOF).
    fn drain(&mut self) -> String {
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        let mut all = std::mem::take(&mut self.seen);
        all.extend(self.output.try_iter());
        all.join("\n")
    }

    /// Waits for the process to exit (after `server stop`); returns its output.
    pub fn wait_exit(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        (status, self.drain())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops a helper process the test started (a fake server, a squatter), also when the test
/// fails: left running, it would hold the test's output pipe open and hang the run.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking HTTP client for poking the API directly.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Reads every file under `dir` (recursively) as bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A port that is free right now, for servers that must keep one address across restarts
/// (anything else lets the server pick: `--port 0`, `--mitm-port auto`). It comes from below
/// the kernel's ephemeral range, which the kernel never hands out by itself: a port from
/// `bind(0)` could be taken by any test's outgoing connection before the server bound it
/// (seen in CI). Within this process each port is handed out once; another process on the
/// machine could still take one, which the bind check makes unlikely rather than impossible.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    // Ports [low - SPAN, low), starting at a place this process's id picks, so that two test
    // runs side by side start apart.
    const SPAN: u32 = 8192;
    let low = ephemeral_low.saturating_sub(SPAN).max(1024);
    let span = ephemeral_low - low;
    let start = std::process::id() % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(low + offset).expect("port");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{ephemeral_low}");
}

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const OWNER_PASSWORD: &str = "owner-password";

/// A logged-in CLI user of a running server.
pub struct Cli {
    pub home: TestHome,
}

impl Cli {
    /// Registers the instance owner (`OWNER_EMAIL`) in `home`.
    pub fn owner(home: TestHome, server: &Server) -> Self {
        home.register(server, OWNER_EMAIL, OWNER_PASSWORD).ok();
        Self { home }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.home.run(args)
    }

    pub fn run_in(&self, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut cmd = self.home.command(args);
        cmd.current_dir(dir).envs(envs.iter().copied());
        run_command(cmd, "")
    }

    /// A proxy token for `vault` (what `vault run` hands an agent).
    pub fn token(&self, vault: &str) -> String {
        self.run(&["vault", "token", "--vault", vault]).ok().stdout
    }

    /// Invites `email` with the given vault assignments; returns the invite link.
    pub fn invite(&self, email: &str, vaults: &[&str]) -> String {
        let mut args = vec!["user", "invite", email];
        for v in vaults {
            args.extend(["--vault", v]);
        }
        let run = self.run(&args).ok();
        run.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Link:"))
            .expect("invite link printed")
            .trim()
            .to_owned()
    }

    /// Another person accepting `link` in their own home.
    pub fn accept(&self, link: &str, password: &str) -> Cli {
        let home = TestHome::new();
        home.accept_invite(link, password).ok();
        Cli { home }
    }

    /// Invites `email` into vaults and accepts in a fresh home; returns that person's CLI.
    pub fn add_person(&self, email: &str, vaults: &[&str], password: &str) -> Cli {
        self.accept(&self.invite(email, vaults), password)
    }
}

/// Asks `probe` every `every` until it answers, for at most a minute; panics naming `what`.
pub fn poll<T>(what: &str, every: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// The text of a file once it exists and is not empty.
pub fn written(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().filter(|t| !t.is_empty())
}

/// curl with a cookie jar: a browser's forms without the browser. Each GET remembers the
/// page's CSRF token, and each POST sends it back, as a page's form would.
pub struct CurlBrowser {
    jar: tempfile::TempDir,
    csrf: std::cell::RefCell<Option<String>>,
}

impl CurlBrowser {
    pub fn new() -> Self {
        Self {
            jar: tempfile::tempdir().unwrap(),
            csrf: std::cell::RefCell::new(None),
        }
    }

    fn run(&self, args: &[&str]) -> (u16, String) {
        let jar = self.jar.path().join("cookies");
        let jar = jar.to_str().unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--noproxy",
                "*",
                "-b",
                jar,
                "-c",
                jar,
                "-w",
                "\n%{http_code}",
            ])
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
        if let Some(token) = csrf_of(body) {
            *self.csrf.borrow_mut() = Some(token);
        }
        (status.trim().parse().unwrap(), body.to_owned())
    }

    pub fn get(&self, url: &str) -> (u16, String) {
        self.run(&[url])
    }

    /// A GET that also returns the response headers (lower-case names).
    pub fn get_with_headers(&self, url: &str) -> (u16, Vec<(String, String)>, String) {
        let dump = self.jar.path().join("headers");
        let (status, body) = self.run(&["-D", dump.to_str().unwrap(), url]);
        let text = std::fs::read_to_string(&dump).unwrap_or_default();
        let headers = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, body)
    }

    /// Posts a form with the last page's CSRF token.
    pub fn post(&self, url: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let csrf = self.csrf.borrow().clone().unwrap_or_default();
        let mut pairs: Vec<String> = vec![format!("csrf={csrf}")];
        pairs.extend(fields.iter().map(|(k, v)| format!("{k}={v}")));
        let mut args: Vec<&str> = Vec::new();
        for pair in &pairs {
            args.extend(["--data-urlencode", pair]);
        }
        args.push(url);
        self.run(&args)
    }

    /// Posts a form without any CSRF token (what another site could make a browser send).
    pub fn post_without_csrf(&self, url: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = Vec::new();
        for pair in &pairs {
            args.extend(["--data-urlencode", pair]);
        }
        args.push(url);
        self.run(&args)
    }
}

/// The CSRF token in a page's forms.
pub fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = page.get(at..)?;
    Some(rest[..rest.find('"')?].to_owned())
}
