//! Server lifecycle: master password, unlock, pid file, detach, stop, bad input.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{TestHome, all_files, contains, free_port, http};

const MASTER: &str = "master-SENTINEL-4f1e9a";
const OWNER_PW: &str = "owner-SENTINEL-77ab31";

/// The acceptance walk, with the full Argon2id parameters.
#[test]
fn acceptance_walk_through_the_real_binary() {
    let mut home = TestHome::new();
    home.real_kdf = true;
    let port = free_port().to_string();
    let on_port = ["--port", port.as_str()];
    let server = home.start_server(&on_port, "", &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)]);

    home.register(&server, "owner@example.com", OWNER_PW).ok();
    let whoami = home.run(&["account", "whoami"]).ok();
    assert!(whoami.stdout.contains("owner@example.com"), "{whoami}");
    assert!(whoami.stdout.contains("Role:     owner"), "{whoami}");
    assert!(whoami.stdout.contains("default (admin)"), "{whoami}");

    let stop = home.run(&["server", "stop"]).ok();
    assert!(stop.stdout.contains("Server stopped"), "{stop}");
    let (status, output) = server.wait_exit();
    assert!(status.success(), "graceful exit: {output}");
    assert!(
        !home.state().join("agent-vault.pid").exists(),
        "pid file removed on exit"
    );

    // Restart (password on stdin this time); the login works against the same data.
    let server = home.start_server(
        &["--port", &port, "--password-stdin"],
        &format!("{MASTER}\n"),
        &[],
    );
    home.run_with(
        &[
            "auth",
            "login",
            "--address",
            &server.url,
            "--email",
            "owner@example.com",
            "--password-stdin",
        ],
        &format!("{OWNER_PW}\n"),
        &[],
    )
    .ok();
    home.run(&["account", "whoami"]).ok();
    home.run(&["server", "stop"]).ok();
    server.wait_exit();

    // A wrong master password is refused before anything listens.
    let wrong = home
        .try_start_server(
            &on_port,
            "",
            &[("AGENT_VAULT_MASTER_PASSWORD", "not-the-password")],
        )
        .err()
        .expect("a wrong master password must not start the server");
    assert!(!wrong.status.success());
    assert!(wrong.stderr.contains("wrong master password"), "{wrong}");

    // Change the master password offline; the new one starts the server, the old one not.
    home.run_with(
        &["master-password", "change"],
        &format!("{MASTER}\nnew-master-pass-2\n"),
        &[],
    )
    .ok();
    let old = home.try_start_server(&on_port, "", &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)]);
    assert!(
        old.is_err(),
        "the old master password must no longer unlock"
    );
    let server = home.start_server(
        &on_port,
        "",
        &[("AGENT_VAULT_MASTER_PASSWORD", "new-master-pass-2")],
    );
    home.run(&["account", "whoami"]).ok();
    drop(server);
}

#[test]
fn master_password_is_not_in_the_server_environment() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)]);
    let pid = std::fs::read_to_string(home.state().join("agent-vault.pid")).unwrap();
    assert_eq!(
        pid.trim(),
        server.pid().to_string(),
        "foreground re-exec keeps the PID"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    assert!(
        !contains(&environ, "AGENT_VAULT_MASTER_PASSWORD"),
        "variable still in environ"
    );
    assert!(!contains(&environ, MASTER), "password still in environ");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!contains(&cmdline, MASTER));
}

#[test]
fn detached_server_is_ready_on_return_and_clean() {
    let home = TestHome::new();
    let port = free_port();
    let run = home
        .run_with(
            &[
                "server",
                "-d",
                "--port",
                &port.to_string(),
                "--mitm-port",
                "auto",
                "--proxy-tls-port",
                "auto",
            ],
            "",
            &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)],
        )
        .ok();
    assert!(run.stdout.contains("started in the background"), "{run}");
    // Ready means ready: the very next request succeeds.
    let health = http()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    let pid: i32 = std::fs::read_to_string(home.state().join("agent-vault.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !contains(&environ, MASTER),
        "detached child got the password in its environment"
    );
    let log = home.state().join("server.log");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The listener flags reach the detached child.
    let status: serde_json::Value = http()
        .get(format!("http://127.0.0.1:{port}/v1/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(status["proxy_tls_port"].as_u64().is_some(), "{status}");
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains("MITM proxy over TLS bound to"),
        "{printed}"
    );

    // Starting again while it runs is refused, naming the PID.
    home.run(&["server", "--port", "0", "--mitm-port", "0"])
        .fails_with(&format!("already running (PID {pid})"));
    home.run(&["server", "stop"]).ok();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || !is_running(pid));
    home.run(&["server", "stop"])
        .fails_with("no server is running");
}

#[test]
fn detached_start_reports_a_wrong_password() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)]);
    drop(server);
    let _ = std::fs::remove_file(home.state().join("agent-vault.pid"));
    home.run_with(
        &["server", "-d", "--port", "0", "--mitm-port", "0"],
        "",
        &[("AGENT_VAULT_MASTER_PASSWORD", "wrong-one-here")],
    )
    .fails_with("wrong master password");
    assert!(
        !home.state().join("server.log").exists(),
        "nothing was started"
    );
}

#[test]
fn sigterm_and_sigint_shut_down_gracefully() {
    for signal in ["TERM", "INT"] {
        let home = TestHome::new();
        let server = home.start_server(&[], "", &[]);
        let (status, output) = server.stop_with(signal);
        assert!(status.success(), "SIG{signal}: {status} {output}");
        assert!(output.contains("server stopped"), "{output}");
        assert!(!home.state().join("agent-vault.pid").exists());
    }
}

#[test]
fn state_is_private_and_holds_no_plaintext_secret() {
    let home = TestHome::new();
    let server = home.start_server(
        &["--log-level", "debug"],
        "",
        &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)],
    );
    home.register(&server, "owner@example.com", OWNER_PW).ok();
    let member_pw = "member-SENTINEL-0c0c0c";
    home.register(&server, "m@example.com", member_pw).ok();
    let session: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state().join("session.json")).unwrap()).unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let (_, server_output) = server.stop_with("TERM");

    let dir_mode = std::fs::metadata(home.state())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    for (path, bytes) in all_files(&home.state()) {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
        for secret in [MASTER, OWNER_PW, member_pw] {
            assert!(
                !contains(&bytes, secret),
                "{} holds a plaintext secret",
                path.display()
            );
        }
        if !path.ends_with("session.json") {
            assert!(
                !contains(&bytes, &token),
                "{} holds the raw session token",
                path.display()
            );
        }
    }
    for secret in [MASTER, OWNER_PW, member_pw, token.as_str()] {
        assert!(
            !server_output.contains(secret),
            "server output leaked a secret"
        );
    }
}

#[test]
fn port_flag_env_and_base_url() {
    let home = TestHome::new();
    let port = free_port();
    // PORT is honoured when the flag is absent…
    let mut cmd = home.command(&["server", "--mitm-port", "0"]);
    cmd.env("PORT", port.to_string())
        .env("AGENT_VAULT_ADDR", "https://vault.example.test/")
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let status: serde_json::Value = wait_json(&format!("http://127.0.0.1:{port}/v1/status"));
    assert_eq!(status["base_url"], "https://vault.example.test");
    assert_eq!(status["needs_first_user"], true);
    let _ = child.kill();
    let _ = child.wait();

    // …and the flag wins over it.
    let flag_port = free_port();
    let mut cmd = home.command(&[
        "server",
        "--port",
        &flag_port.to_string(),
        "--mitm-port",
        "0",
    ]);
    cmd.env("PORT", "1").env("FLY_APP_NAME", "my-app");
    let mut child = cmd.spawn().unwrap();
    let status: serde_json::Value = wait_json(&format!("http://127.0.0.1:{flag_port}/v1/status"));
    assert_eq!(status["base_url"], "https://my-app.fly.dev");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn mitm_port_is_bound_and_a_taken_one_is_only_a_warning_naming_the_mitm_flag() {
    let home = TestHome::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let server = home.start_server(&["--mitm-port", &taken_port], "", &[]);
    assert_eq!(server.mitm_port, None);
    let _: serde_json::Value = wait_json(&format!("{}/health", server.url));
    let (_, output) = server.stop_with("TERM");
    assert!(output.contains("MITM proxy disabled"), "{output}");
    // The hint names the flag that moves the MITM proxy, not the API's --port.
    assert!(output.contains("--mitm-port"), "{output}");
    assert!(!output.contains("--port (or PORT)"), "{output}");

    // `--mitm-port auto`: any free port, reported on stdout and serving the proxy.
    let server = home.start_server(&["--mitm-port", "auto"], "", &[]);
    let mitm = server
        .mitm_port
        .expect("the MITM line names the bound port");
    assert_ne!(mitm, 0);
    let response = wait_response(&format!("http://127.0.0.1:{mitm}/anything"));
    assert_eq!(response.headers()["x-agent-vault-proxy-error"], "true");
    let status: serde_json::Value = wait_json(&format!("{}/v1/status", server.url));
    assert_eq!(status["mitm_port"], mitm, "{status}");
    drop(server);

    // `--mitm-port 0` still means disabled; a word that is not a port is refused clearly.
    let server = home.start_server(&["--mitm-port", "0"], "", &[]);
    assert_eq!(server.mitm_port, None);
    drop(server);
    home.run(&["server", "--mitm-port", "some"])
        .fails_with("`auto` for any free port");

    // The TLS proxy serves the MITM proxy: without it, a warning, and the server runs on.
    let server = home.start_server(&["--mitm-port", "0", "--proxy-tls-port", "auto"], "", &[]);
    assert_eq!(server.proxy_tls_port, None);
    let (_, output) = server.stop_with("TERM");
    assert!(output.contains("MITM proxy over TLS disabled"), "{output}");
    home.run(&["server", "--proxy-tls-port", "some"])
        .fails_with("--proxy-tls-port");
}

#[test]
fn bad_input_is_refused_clearly_without_partial_state() {
    let home = TestHome::new();
    // Unknown flag.
    let run = home.run(&["server", "--bogus"]);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("--bogus"), "{run}");
    // Invalid log level.
    home.run(&["server", "--log-level", "loud"])
        .fails_with("loud");
    // Port in use: refused before anything is written.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    home.run(&["server", "--port", &port, "--mitm-port", "0"])
        .fails_with("--port");
    assert!(
        !home.state().join("agent-vault.db").exists(),
        "port in use left a database"
    );
    // Missing home.
    let mut cmd = home.command(&["server", "--port", "0"]);
    cmd.env("HOME", home.path().join("does-not-exist"));
    let run = crate::harness::run_command(cmd, "");
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("does not exist") && run.stderr.contains("HOME"),
        "{run}"
    );
    assert!(!home.path().join("does-not-exist").exists());
    let mut cmd = home.command(&["account", "whoami"]);
    cmd.env_remove("HOME");
    let run = crate::harness::run_command(cmd, "");
    assert!(
        !run.status.success() && run.stderr.contains("HOME is not set"),
        "{run}"
    );
    // Master-password commands need data and a stopped server.
    home.run(&["master-password", "set"])
        .fails_with("start the server once");
}

#[test]
fn passwordless_mode_and_master_password_set_remove() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    assert!(
        server_stderr_warned(server),
        "passwordless start should warn"
    );
    home.run_with(&["master-password", "remove"], "x\n", &[])
        .fails_with("no master password");
    home.run_with(&["master-password", "set"], "short\n", &[])
        .fails_with("at least 8");
    home.run_with(&["master-password", "set"], "a-new-master-1\n", &[])
        .ok();
    home.try_start_server(&[], "", &[])
        .err()
        .expect("now a password is required");
    let server = home.start_server(
        &[],
        "",
        &[("AGENT_VAULT_MASTER_PASSWORD", "a-new-master-1")],
    );
    // Offline operations are refused while it runs.
    home.run_with(&["master-password", "remove"], "a-new-master-1\n", &[])
        .fails_with("stop it first");
    drop(server);
    home.run_with(&["master-password", "remove"], "wrong-master\n", &[])
        .fails_with("wrong master password");
    home.run_with(&["master-password", "remove"], "a-new-master-1\n", &[])
        .ok();
    home.start_server(&[], "", &[]);
    // A password given to an instance that has none is not silently taken for protection.
    let server = home.start_server(
        &[],
        "",
        &[("AGENT_VAULT_MASTER_PASSWORD", "unused-master-1")],
    );
    let (_, output) = server.stop_with("TERM");
    assert!(
        output.contains("has no master password, so the one given was not used"),
        "{output}"
    );
}

fn server_stderr_warned(server: crate::harness::Server) -> bool {
    let (_, output) = server.stop_with("TERM");
    output.contains("passwordless mode")
}

fn is_running(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn wait_response(url: &str) -> reqwest::blocking::Response {
    for _ in 0..600 {
        if let Ok(response) = http().get(url).send() {
            return response;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{url} never answered");
}

fn wait_json(url: &str) -> serde_json::Value {
    wait_response(url).json().unwrap()
}

/// Started with a soft limit of 256 open files (below what 300 connections need), the server
/// raises it to the hard limit and keeps serving with 300 connections open.
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let home = TestHome::new();
    let mut prlimit = std::process::Command::new("prlimit");
    prlimit.args(["--nofile=256:", "--"]);
    let server = home.start_server_under(prlimit, &[], &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(open_files[0], open_files[1], "soft and hard:\n{limits}");
    assert_ne!(open_files[0], "256", "{limits}");

    let addr = server.url.trim_start_matches("http://");
    let held: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let health = http().get(format!("{}/health", server.url)).send().unwrap();
    assert_eq!(health.status(), 200);
    drop(held);
}

/// Clients together hold at most half the open-file limit in connections, whatever their
/// addresses (the rest stays for upstream connections and the database): with a hard limit of
/// 256, of 200 connections about 128 are kept and the rest closed as accepted; once they go,
/// the server serves again.
#[test]
fn clients_together_hold_at_most_half_the_open_file_limit() {
    use std::io::Read;
    let home = TestHome::new();
    let mut prlimit = std::process::Command::new("prlimit");
    prlimit.args(["--nofile=256:256", "--"]);
    let server = home.start_server_under(prlimit, &[], &[]);
    let addr = server.url.trim_start_matches("http://");
    let held: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Time for the server to take them all; then a closed one reads its end at once, a kept
    // one (silent, within the header timeout) has nothing to read.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let closed = held
        .iter()
        .filter(|stream| {
            let mut stream: &std::net::TcpStream = stream;
            stream.set_nonblocking(true).unwrap();
            match stream.read(&mut [0u8; 1]) {
                Ok(0) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                Ok(_) => false,
            }
        })
        .count();
    assert!(
        (60..=80).contains(&closed),
        "{closed} of 200 closed as accepted (128 kept, besides the test's own)"
    );
    drop(held);
    let health = wait_response(&format!("{}/health", server.url));
    assert_eq!(health.status(), 200);
    let (_, output) = server.stop_with("TERM");
    assert!(
        output.contains("clients hold half the open-file limit"),
        "{output}"
    );
}

#[test]
fn worker_threads_are_one_per_core_or_as_set() {
    let home = TestHome::new();
    let workers = |server: &crate::harness::Server, owner: &crate::harness::Cli| {
        let text = crate::agents::server_metrics(server, &owner.home);
        crate::agents::metric(&text, "agent_vault_worker_threads")
    };
    let server = home.start_server(&[], "", &[("AGENT_VAULT_WORKER_THREADS", "3")]);
    let owner = crate::harness::Cli::owner(home, &server);
    assert_eq!(workers(&server, &owner), 3.0);
    drop(server);
    let server = owner.home.start_server(&[], "", &[]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[allow(clippy::cast_precision_loss)]
    let default = cores as f64;
    assert_eq!(workers(&server, &owner), default);
    drop(server);
    // A bad count stops the start before anything is written.
    let fresh = TestHome::new();
    let mut cmd = fresh.server_command(&[]);
    cmd.env("AGENT_VAULT_WORKER_THREADS", "0");
    match crate::harness::spawn_server(cmd, "") {
        Ok(_) => panic!("the server started with 0 worker threads"),
        Err(run) => assert!(
            !run.status.success()
                && run
                    .stderr
                    .contains("AGENT_VAULT_WORKER_THREADS=0 is not a thread count"),
            "{run}"
        ),
    }
    assert!(!fresh.state().join("agent-vault.db").exists());
}
