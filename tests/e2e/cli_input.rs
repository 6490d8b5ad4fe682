//! Bad input on the command line: every seed command, each of its positional arguments and
//! value flags given values no one should accept, answers with an error that names the
//! problem (never a panic, a blamed server version or a page of echoed input), and changes
//! nothing on the server.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD, Server, TestHome, run_command};
use crate::surface::SURFACE;

/// Commands the sweep leaves out: they start or stop a server, run a program, prompt for a
/// master password, or end the account the sweep runs as.
const NOT_SWEPT: &[&str] = &[
    "server",
    "server stop",
    "vault run",
    "master-password set",
    "master-password change",
    "master-password remove",
    "owner reset",
    "account delete",
];

/// The sentinel stored before the sweep: no output may show it.
const SENTINEL: &str = "sentinel-value-6f1c2a";

/// The positional arguments and value flags (`--flag <VALUE>`) a command's help lists.
fn slots(help: &str, command: &str) -> (usize, Vec<String>) {
    let usage = help
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_default();
    let after = usage.split_once(command).map_or("", |(_, rest)| rest);
    let mut positional = 0;
    let mut words = after.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if word.starts_with('-') {
            // A flag's value placeholder is not a positional argument.
            words.next_if(|w| w.starts_with('<'));
            continue;
        }
        let name = word.trim_matches(|c| "<>[]".contains(c));
        if !["OPTIONS", "COMMAND"].contains(&name) && word.len() > name.len() {
            positional += 1;
        }
    }
    let flags = help
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let long = l.split_whitespace().find(|w| w.starts_with("--"))?;
            let long = long.trim_end_matches(',');
            l.contains(&format!("{long} <")).then(|| long.to_owned())
        })
        .collect();
    (positional, flags)
}

/// A server, and a home signed in to it as its owner.
fn signed_in_owner() -> (TestHome, Server) {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    home.register(&server, OWNER_EMAIL, OWNER_PASSWORD).ok();
    (home, server)
}

/// What the server holds that a refused command must not have changed.
fn snapshot(url: &str, token: &str) -> String {
    let client = crate::harness::http();
    let mut all = String::new();
    for path in [
        "/v1/vaults",
        "/v1/vaults/default/credentials",
        "/v1/vaults/default/services",
        "/v1/vaults/default/users",
        "/v1/vaults/default/agents",
        "/v1/vaults/default/proposals",
        "/v1/vaults/default/settings",
        "/v1/users",
        "/v1/users/invites",
        "/v1/agents",
        "/v1/agents/invites",
        "/v1/admin/settings",
    ] {
        let body = client
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .text()
            .unwrap();
        all.push_str(&format!("{path}: {body}\n"));
    }
    all
}

#[test]
fn every_command_refuses_bad_arguments_clearly_and_changes_nothing() {
    let (home, server) = signed_in_owner();
    home.run(&[
        "vault",
        "credential",
        "set",
        &format!("SENTINEL={SENTINEL}"),
    ])
    .ok();
    let before = snapshot(&server.url, &home.session_token());

    let long = "x".repeat(70_000);
    let bad: [&[u8]; 12] = [
        b"",
        b"..",
        b"-",
        long.as_bytes(),
        b"../../etc",
        b"a\nb",
        b"%00",
        "\u{202e}".as_bytes(),
        b"\xff\xfe",
        b"https://[::1",
        b"=v",
        // 2^64 seconds: past what a number or a duration holds (read trimmed, so the line
        // break that makes it a bad name too does not stop a duration flag's parse).
        b"18446744073709551616s\n",
    ];
    let mut problems = Vec::new();
    let mut runs = 0;
    for (command, _) in SURFACE {
        if NOT_SWEPT.contains(command) {
            continue;
        }
        let words: Vec<&str> = command.split(' ').collect();
        let help = home
            .run(&[words.as_slice(), &["--help"]].concat())
            .ok()
            .stdout;
        let (positional, mut flags) = slots(&help, command);
        // `--address` is global: one command's sweep covers it.
        if *command != "vault list" {
            flags.retain(|f| f != "--address");
        }
        let mut cases: Vec<(Option<&str>, usize)> = (0..positional).map(|i| (None, i)).collect();
        cases.extend(flags.iter().map(|f| (Some(f.as_str()), 0)));
        for (flag, position) in cases {
            for value in bad {
                let mut cmd = home.command(&words);
                if let Some(flag) = flag {
                    cmd.arg(flag).arg(OsStr::from_bytes(value));
                    cmd.args(std::iter::repeat_n("default", positional));
                } else {
                    cmd.args(std::iter::repeat_n("default", position));
                    cmd.arg(OsStr::from_bytes(value));
                    cmd.args(std::iter::repeat_n("default", positional - position - 1));
                }
                let run = run_command(cmd, "");
                runs += 1;
                let what = format!(
                    "{command} {} {:?}",
                    flag.map_or_else(|| format!("#{position}"), str::to_owned),
                    String::from_utf8_lossy(&value[..value.len().min(20)])
                );
                let output = format!("{}{}", run.stdout, run.stderr);
                let code = run.status.code();
                if output.contains(SENTINEL) {
                    problems.push(format!("{what}: printed the credential"));
                }
                if code == Some(0) {
                    continue;
                }
                let first = run.stderr.lines().next().unwrap_or_default();
                if !matches!(code, Some(1 | 2))
                    || !first.starts_with("error:")
                    || run.stderr.len() > 2000
                    || ["panicked", "no such API route", "builder error"]
                        .iter()
                        .any(|bad| run.stderr.contains(bad))
                {
                    problems.push(format!("{what}: {code:?} {:.300}", run.stderr));
                }
            }
        }
    }
    assert!(runs > 1000, "only {runs} runs: is the help parsed?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // An address that is no URL is named as such, not as a server one is not logged in to.
    home.run(&["vault", "list", "--address", "../../etc"])
        .fails_with("\"../../etc\" is not a valid http:// or https:// URL");
    // A status agent invites never have is refused, not answered with an empty list.
    home.run(&["agent", "invite", "list", "--status", "accepted"])
        .fails_with("expected pending, redeemed, revoked or expired");
    assert_eq!(snapshot(&server.url, &home.session_token()), before);
    let (_, log) = server.stop_with("TERM");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[test]
fn a_setting_that_is_not_utf8_stops_the_start_and_is_named() {
    let home = TestHome::new();
    // Converted lossily, these bytes would be a password of two replacement characters.
    for name in ["AGENT_VAULT_MASTER_PASSWORD", "AGENT_VAULT_DATABASE_URL"] {
        let mut cmd = home.server_command(&[]);
        cmd.env(name, OsStr::from_bytes(b"pass\xff\xfeword"));
        match crate::harness::spawn_server(cmd, "") {
            Ok(_) => panic!("the server started with {name} not UTF-8"),
            Err(run) => {
                let named = format!("{name} holds bytes that are not UTF-8 text");
                assert!(
                    !run.status.success() && run.stderr.contains(&named),
                    "{run}"
                );
            }
        }
    }
}

#[test]
fn a_description_with_an_escape_sequence_is_refused() {
    let (home, _server) = signed_in_owner();
    // It would erase the line above it in the terminal of whoever lists the services.
    let base = [
        "vault",
        "service",
        "add",
        "--host",
        "api.example.com",
        "--auth-type",
        "bearer",
        "--token-key",
        "API_TOKEN",
        "--description",
    ];
    home.run(&[base.as_slice(), &["hidden\u{1b}[1A\u{1b}[2K"]].concat())
        .fails_with("description: holds a control character");
    home.run(&[base.as_slice(), &["safe \u{202E}gnp.exe"]].concat())
        .fails_with("text-direction override");
    home.run(&[base.as_slice(), &["two\nlines"]].concat()).ok();
    // A table keeps one row per service.
    let listed = home.run(&["vault", "discover"]).ok();
    assert!(listed.stdout.contains("two lines"), "{listed}");
}
