//! The agent's token in the container is proxy-role whatever the caller holds: it uses
//! credentials through the broker and can never read one back from the API.

use super::{docker_turn, sandbox_rig, sandboxed_command, workspace};
use crate::harness::{Run, run_command};

/// What the agent sees from inside: its token, its role, and the status of a request to
/// reveal the vault's credentials.
const PROBE: &str = "printf '%s\\n' \"$AGENT_VAULT_SESSION_TOKEN\"; \
    curl -sS -H \"Authorization: Bearer $AGENT_VAULT_SESSION_TOKEN\" \"$AGENT_VAULT_ADDR/v1/discover\"; echo; \
    curl -sS -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer $AGENT_VAULT_SESSION_TOKEN\" \
    \"$AGENT_VAULT_ADDR/v1/vaults/default/credentials?reveal=true\"";

fn reveal_status(url: &str, token: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{url}/v1/vaults/default/credentials?reveal=true"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_container_gets_a_proxy_token_whatever_the_caller_holds() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "tokens");
    let url = rig.server.url.clone();
    let with_token = |extra: &[&str], token: Option<&str>| -> Run {
        let mut cmd = sandboxed_command(&rig, &dir, extra, &["sh", "-c", PROBE]);
        if let Some(token) = token {
            cmd.env("AGENT_VAULT_SESSION_TOKEN", token)
                .env("AGENT_VAULT_ADDR", &url);
        }
        run_command(cmd, "")
    };

    with_token(&["--role", "member"], None)
        .fails_with("--role member does not apply to --sandbox=container");
    with_token(&["--role", "admin"], None).fails_with("Drop --role");

    // A member-role vault token can read credentials, and cannot mint: refused, with the fix.
    let member = rig.home.run(&["vault", "token", "--role", "member"]).ok();
    let member = member.stdout.trim();
    assert_eq!(reveal_status(&url, member), "200", "the control reveals");
    with_token(&[], Some(member))
        .fails_with("holds a member token")
        .fails_with("agent-vault vault token --role proxy");

    // An agent token with the member role: the container gets a token minted for the run,
    // proxy-role, that cannot reveal, and that dies with the run.
    let invite = crate::agents::invite(&rig, &["builder", "--vault", "default:member"]);
    let agent = crate::agents::redeem(&invite)["agent_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reveal_status(&url, &agent), "200", "the control reveals");
    let run = with_token(&[], Some(&agent));
    assert!(run.status.success(), "{run}");
    let mut lines = run.stdout.lines();
    let inside = lines.next().unwrap_or_default().to_owned();
    let discover = lines.next().unwrap_or_default();
    assert!(inside.starts_with("av_sess_") && inside != agent, "{run}");
    assert!(discover.contains("\"role\":\"proxy\""), "{run}");
    assert_eq!(lines.next(), Some("403"), "the agent revealed: {run}");
    assert_eq!(
        reveal_status(&url, &inside),
        "401",
        "the run's token outlived it"
    );
    assert!(!run.stdout.contains(&agent) && !run.stderr.contains(&agent));

    // A proxy-role agent token is still the agent's own, valid for every vault it joins:
    // the container gets a token of the run instead. A proxy-role vault token goes in as is.
    let invite = crate::agents::invite(&rig, &["runner", "--vault", "default:proxy"]);
    let agent = crate::agents::redeem(&invite)["agent_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = with_token(&[], Some(&agent));
    assert!(run.status.success(), "{run}");
    assert!(!run.stdout.contains(&agent), "{run}");
    let proxy = rig.home.run(&["vault", "token"]).ok();
    let proxy = proxy.stdout.trim();
    let run = with_token(&[], Some(proxy));
    assert!(run.status.success(), "{run}");
    assert!(run.stdout.starts_with(&format!("{proxy}\n")), "{run}");
    assert_eq!(turn.leftovers(), "");
}

/// An agent that spends the sign-in budget — wrong passwords on the API, wrong tokens on the
/// proxy — is throttled, and only its own run is: the owner's CLI and other clients on
/// 127.0.0.1 keep theirs, since each run reaches the broker from a loopback address of its own.
#[test]
fn one_runs_failed_sign_ins_do_not_lock_out_the_host() {
    let turn = docker_turn();
    let rig = crate::broker::Rig::start_with_env(
        true,
        crate::upstream::Upstream::start_on("127.0.0.2"),
        &[],
        &[
            ("AGENT_VAULT_RATELIMIT_AUTH_MAX", "4"),
            ("AGENT_VAULT_RATELIMIT_AUTH_WINDOW", "1h"),
        ],
    );
    let dir = workspace(&rig, "budget");
    let plain = format!("http://127.0.0.2:{}/plain", rig.upstream.http_port);
    let script = format!(
        "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' \
           -H 'content-type: application/json' \
           -d '{{\"email\":\"nobody@example.com\",\"password\":\"wrong-password\"}}' \
           \"$AGENT_VAULT_ADDR/v1/auth/login\"; done; echo; \
         for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' \
           -x \"http://av_sess_wrong:default@${{HTTPS_PROXY##*@}}\" {plain}; done"
    );
    let run = run_command(
        sandboxed_command(&rig, &dir, &[], &["sh", "-c", &script]),
        "",
    );
    assert!(run.status.success(), "{run}");
    let mut lines = run.stdout.lines();
    let (logins, proxied) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    assert!(
        logins.starts_with("401 ") && logins.ends_with("429 "),
        "{run}"
    );
    assert!(
        proxied.starts_with("407 ") && proxied.ends_with("429 "),
        "{run}"
    );

    // The host's own budget is whole: a wrong password is a plain 401, a wrong proxy token a
    // plain 407, and the owner's agent goes through.
    let status = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let login = format!("{}/v1/auth/login", rig.server.url);
    let wrong = r#"{"email":"other@example.com","password":"wrong-password"}"#;
    let json = "content-type: application/json";
    assert_eq!(
        status(&["--noproxy", "*", "-H", json, "-d", wrong, &login]),
        "401"
    );
    let bad_proxy = format!("http://av_sess_wrong:default@127.0.0.1:{}", rig.mitm);
    assert_eq!(status(&["-x", &bad_proxy, &plain]), "407");
    let (code, body, _) = rig.curl(&[], &rig.https("/bearer/echo"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(turn.leftovers(), "");
}
