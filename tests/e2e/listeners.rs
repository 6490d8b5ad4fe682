//! Connections through the real binary: silent and header-trickling ones are closed on the
//! API and proxy ports, idle CONNECT tunnels are closed while long requests are not, one
//! address holds at most its cap of connections, a token revoked after its CONNECT is
//! refused inside the tunnel, and `server stop` lets open streams finish.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::broker::{Rig, base64_encode};
use crate::harness::TestHome;
use crate::upstream::Upstream;

/// Reads until the peer closes the connection; panics if it is still open after a minute.
fn wait_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return seen, // reset: closed too
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the server never closed it"
        );
    }
}

/// Reads until `needle` has arrived.
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// With a header-read timeout of 1 s at `addr`, a connection that never sends a byte, one
/// kept alive after `request` was answered, and one whose headers trickle in are all closed.
fn assert_slow_clients_are_closed(addr: &str, request: &str) {
    // Connected, never a byte.
    let mut silent = TcpStream::connect(addr).unwrap();
    wait_closed(&mut silent, "a silent connection");

    // One request, then silence on the kept-alive connection.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(request.as_bytes()).unwrap();
    let answered = wait_closed(&mut kept, "an idle keep-alive connection");
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // Headers trickling in, a line every 200 ms, never finished.
    let mut trickle = TcpStream::connect(addr).unwrap();
    let start_line = request.split_inclusive("\r\n").next().unwrap();
    trickle.write_all(start_line.as_bytes()).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 1024];
    loop {
        if trickle.write_all(b"X-Slow: 1\r\n").is_err() {
            break;
        }
        match trickle.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        assert!(
            Instant::now() < deadline,
            "the trickling connection was never closed"
        );
    }
}

#[test]
fn silent_keep_alive_and_header_trickling_api_connections_are_closed() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[("AGENT_VAULT_HEADER_READ_TIMEOUT", "1")]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    assert_slow_clients_are_closed(
        &addr,
        &format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    );
    // The server still serves.
    let health = crate::harness::http()
        .get(format!("{}/health", server.url))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn silent_keep_alive_and_header_trickling_proxy_connections_are_closed() {
    let rig = Rig::start_env(&[("AGENT_VAULT_HEADER_READ_TIMEOUT", "1")]);
    let target = format!("127.0.0.1:{}", rig.upstream.http_port);
    let auth = base64_encode(&format!("{}:default", rig.token.trim()));
    let request = format!(
        "GET http://{target}/kept HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
    );
    assert_slow_clients_are_closed(&format!("127.0.0.1:{}", rig.mitm), &request);
    // The proxy still serves.
    let (status, body, _) = rig.curl(&[], &format!("http://{target}/after"));
    assert_eq!(status, 200, "{body}");
}

/// A CONNECT tunnel through the MITM proxy to the upstream's plain-HTTP port, and that
/// port's authority.
fn connect_tunnel(rig: &Rig) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", rig.mitm)).unwrap();
    let target = format!("127.0.0.1:{}", rig.upstream.http_port);
    let auth = base64_encode(&format!("{}:default", rig.token.trim()));
    stream
        .write_all(
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    (stream, target)
}

/// A tunnel from `connect_tunnel` with an SSE stream open on it (its first event read).
fn open_tunnel(rig: &Rig) -> TcpStream {
    let (mut stream, target) = connect_tunnel(rig);
    stream
        .write_all(format!("GET /sse HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .unwrap();
    read_until(&mut stream, "data: one");
    stream
}

#[test]
fn idle_tunnels_are_closed_but_a_long_stream_keeps_its_tunnel() {
    let rig = Rig::start_with_env(
        true,
        Upstream::start(),
        &[],
        &[("AGENT_VAULT_TUNNEL_IDLE_TIMEOUT", "1")],
    );
    let mut tunnel = open_tunnel(&rig);
    // The stream is silent for three idle periods: still in flight, so still open.
    std::thread::sleep(Duration::from_secs(3));
    rig.upstream.sse_gate.add_permits(2);
    read_until(&mut tunnel, "data: three");
    // Then nothing is in flight: the tunnel is closed.
    wait_closed(&mut tunnel, "an idle tunnel");
}

/// A connection to `addr` from the loopback address `source`.
fn connect_from(source: &str, addr: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr.parse().unwrap()).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// One address holds at most `AGENT_VAULT_CONNECTIONS_PER_ADDRESS` connections across the
/// API and proxy ports: the next is closed as it is accepted, other addresses are served
/// meanwhile, and a closed connection frees its place.
#[test]
fn one_address_holds_at_most_its_cap_of_connections() {
    let rig = Rig::start_env(&[("AGENT_VAULT_CONNECTIONS_PER_ADDRESS", "4")]);
    let api = rig.server.url.trim_start_matches("http://").to_owned();
    let mitm = format!("127.0.0.1:{}", rig.mitm);
    // From an address of its own (no other connection counts there): two kept-alive
    // connections on each port, each answered once so the server has surely
    // accepted it (the two listeners accept independently): the cap counts across them.
    let target = format!("127.0.0.1:{}", rig.upstream.http_port);
    let auth = base64_encode(&format!("{}:default", rig.token.trim()));
    let through_proxy = format!(
        "GET http://{target}/held HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
    );
    let to_api = format!("GET /health HTTP/1.1\r\nHost: {api}\r\n\r\n");
    let mut held: Vec<TcpStream> = [
        (&api, &to_api),
        (&api, &to_api),
        (&mitm, &through_proxy),
        (&mitm, &through_proxy),
    ]
    .into_iter()
    .map(|(addr, request)| {
        let mut stream = connect_from("127.0.0.3", addr);
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_until(&mut stream, "\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        stream
    })
    .collect();
    for addr in [&api, &mitm] {
        let mut over = connect_from("127.0.0.3", addr);
        let _ = over.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        let answer = wait_closed(&mut over, "a connection over the cap");
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    let health = format!("{}/health", rig.server.url);
    let other = crate::ratelimits::client_from("127.0.0.9");
    assert_eq!(other.get(&health).send().unwrap().status(), 200);
    // One closed: its place is free again (once the server has seen it close).
    held.pop();
    crate::harness::poll("a freed place", Duration::from_millis(100), || {
        let answer = crate::ratelimits::client_from("127.0.0.3")
            .get(&health)
            .send()
            .ok()?;
        (answer.status() == 200).then_some(())
    });
    drop(held);
    let text = crate::agents::server_metrics(&rig.server, &rig.home);
    let refused = crate::agents::metric(&text, "agent_vault_connections_refused_total");
    assert!(refused >= 2.0, "{text}");
}

#[test]
fn a_token_revoked_after_its_connect_is_refused_on_the_open_tunnel() {
    let rig = Rig::start(true);
    let (mut tunnel, target) = connect_tunnel(&rig);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    tunnel.write_all(get("/before").as_bytes()).unwrap();
    let first = read_until(&mut tunnel, "\"version\"");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The token's session ends while the tunnel it opened stays up.
    let logout = crate::harness::http()
        .post(format!("{}/v1/auth/logout", rig.server.url))
        .bearer_auth(rig.token.trim())
        .send()
        .unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    tunnel.write_all(get("/after").as_bytes()).unwrap();
    let second = read_until(&mut tunnel, "proxy_auth_required");
    assert!(second.contains("HTTP/1.1 407"), "{second}");
}

#[test]
fn server_stop_lets_an_open_stream_finish_within_the_grace() {
    let rig = Rig::start(true);
    let mut tunnel = open_tunnel(&rig);
    std::thread::scope(|scope| {
        // `server stop` waits while the server drains.
        let stop = scope.spawn(|| rig.home.run(&["server", "stop"]));
        std::thread::sleep(Duration::from_secs(1));
        // Stopping: no new connections, but the open stream goes on.
        let api = rig.server.url.trim_start_matches("http://");
        assert!(TcpStream::connect(api).is_err(), "the API port is closed");
        rig.upstream.sse_gate.add_permits(2);
        read_until(&mut tunnel, "data: three");
        stop.join().unwrap().ok();
    });
    let (status, output) = rig.server.wait_exit();
    assert!(status.success(), "{output}");
    assert!(output.contains("agent-vault server stopped"), "{output}");
}

#[test]
fn a_stream_that_never_ends_is_closed_after_the_grace() {
    let rig = Rig::start_with_env(
        true,
        Upstream::start(),
        &[],
        &[("AGENT_VAULT_SHUTDOWN_GRACE", "1")],
    );
    let mut tunnel = open_tunnel(&rig);
    let mut server = rig.server;
    std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server waited past its grace"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    wait_closed(&mut tunnel, "the stream after the grace");
}

/// CPU time the process has used so far, in clock ticks (utime + stime).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn with_few_descriptors_the_listener_neither_spins_nor_runs_out_and_recovers() {
    let home = TestHome::new();
    // The server with a small descriptor limit, so connections exhaust it.
    let server_cmd = home.server_command(&["--mitm-port", "auto"]);
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(server_cmd.get_program())
        .args(server_cmd.get_args())
        .env_clear()
        .current_dir(home.path());
    for (key, value) in server_cmd.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let server = crate::harness::spawn_server(cmd, "").unwrap_or_else(|run| panic!("{run}"));
    let mitm = server.mitm_port.expect("the MITM proxy listens");
    // More connections than descriptors. Clients get at most half of them (32): the rest are
    // closed as they are accepted, so accepting never fails for want of a descriptor (EMFILE,
    // where the listener would back off instead of spinning).
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", mitm)).ok())
        .collect();
    assert!(held.len() > 64, "only {} connections", held.len());
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(server.pid()) - before;
    // A listener that retried at once would burn a whole CPU (about 300 ticks here).
    assert!(
        spent < 100,
        "the server used {spent} ticks of CPU in 3 s while out of descriptors"
    );
    drop(held);
    // Once descriptors are free again, the proxy answers.
    let response = crate::harness::poll(
        "the proxy to answer again",
        Duration::from_millis(200),
        || {
            crate::harness::http()
                .get(format!("http://127.0.0.1:{mitm}/anything"))
                .send()
                .ok()
        },
    );
    assert_eq!(response.headers()["x-agent-vault-proxy-error"], "true");
    let (_, output) = server.stop_with("TERM");
    assert!(
        output.contains("clients hold half the open-file limit"),
        "{output}"
    );
    assert!(!output.contains("cannot accept connections"), "{output}");
}
