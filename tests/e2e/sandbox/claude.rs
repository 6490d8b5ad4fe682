//! Claude Code in the sandbox without a login and without its key: the default agent image
//! with a stand-in for `claude` (the npm registry is out of reach here) that reports its
//! environment and config and sends one request to a local stand-in for
//! `api.anthropic.com`, which the broker reaches as if DNS pointed there.

use std::process::Command;

use serde_json::Value;

use super::{BASE, docker, docker_turn, workspace};
use crate::broker::{Rig, header};
use crate::harness::{TestHome, run_command};
use crate::upstream::Upstream;

const VAULT_KEY: &str = "SENTINEL-anthropic-key-5150";

const STAND_IN: &str = r#"#!/usr/bin/env python3
# Stands in for Claude Code: reports what it was started with, then calls the API the way
# Claude Code does (x-api-key from ANTHROPIC_API_KEY) at the base URL the test wrote.
import json, os, requests
config_dir = os.environ.get("CLAUDE_CONFIG_DIR", os.path.expanduser("~"))
path = os.path.join(config_dir, ".claude.json")
config = json.load(open(path)) if os.path.exists(path) else None
base = open("/workspace/anthropic-base-url").read().strip()
report = {"env": dict(os.environ), "config": config}
try:
    answer = requests.post(
        base + "/v1/messages",
        headers={"x-api-key": os.environ.get("ANTHROPIC_API_KEY", ""), "anthropic-version": "2023-06-01"},
        json={"model": "claude-test", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]},
    )
    report.update(status=answer.status_code, upstream=answer.json())
except Exception as e:
    report.update(error=repr(e))
json.dump(report, open("/workspace/stand-in.json", "w"))
"#;

/// The default agent image (built by a first run) with the stand-in as `claude`.
fn stand_in_image(rig: &Rig, dir: &std::path::Path) -> String {
    let mut build = rig
        .home
        .command(&["vault", "run", "--sandbox", "container", "--", "true"]);
    build
        .current_dir(dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE)
        .env("AGENT_VAULT_CLAUDE_CODE_VERSION", "none");
    let built = run_command(build, "");
    assert!(built.status.success(), "{built}");
    let default_image = docker(&[
        "image",
        "ls",
        "agent-vault/agent",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    let default_image = default_image.lines().next().expect("the default image");
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("claude"), STAND_IN).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {default_image}\nUSER root\nCOPY claude /usr/local/bin/claude\nRUN chmod 755 /usr/local/bin/claude\nUSER claude\n"
        ),
    )
    .unwrap();
    let tag = "agent-vault-test/claude-stand-in:latest";
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag.to_owned()
}

#[test]
fn claude_code_runs_on_a_placeholder_and_the_broker_adds_the_key() {
    let turn = docker_turn();
    let upstream = Upstream::start_on("127.0.0.2");
    let home = TestHome::new();
    let ca_file = upstream.ca_file.display().to_string();
    let server = home.start_server_resolving(
        &[("api.anthropic.com", "127.0.0.2")],
        &["--mitm-port", "auto"],
        &[
            ("SSL_CERT_FILE", ca_file.as_str()),
            ("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"),
        ],
    );
    let mitm = server.mitm_port.expect("the MITM proxy listens");
    let rig = Rig::on_server(home, server, mitm, upstream);
    let dir = workspace(&rig, "claude");
    let image = stand_in_image(&rig, &dir);
    let base_url = format!("https://api.anthropic.com:{}", rig.upstream.https_port);
    std::fs::write(dir.join("anthropic-base-url"), &base_url).unwrap();

    // `claude` with no arguments, as `vault run --sandbox=container -- claude` starts it.
    let claude = || {
        let mut cmd = rig.home.command(&[
            "vault",
            "run",
            "--sandbox",
            "container",
            "--image",
            &image,
            "--",
            "claude",
        ]);
        cmd.current_dir(&dir)
            .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE);
        let run = run_command(cmd, "");
        let report = std::fs::read_to_string(dir.join("stand-in.json")).unwrap_or_default();
        (
            run,
            serde_json::from_str::<Value>(&report).unwrap_or_default(),
        )
    };

    // Without a service for the API: no placeholder, no seeded login, and the run says how
    // to let the broker hold the key.
    let (without, report) = claude();
    assert!(without.status.success(), "{without}");
    assert!(
        without
            .stderr
            .contains("has no service for api.anthropic.com"),
        "{without}"
    );
    assert!(report["env"]["ANTHROPIC_API_KEY"].is_null(), "{report}");
    assert!(report["config"].is_null(), "{report}");

    rig.home
        .run(&[
            "vault",
            "credential",
            "set",
            &format!("ANTHROPIC_API_KEY={VAULT_KEY}"),
        ])
        .ok();
    rig.home
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "api.anthropic.com",
            "--auth-type",
            "api-key",
            "--api-key-key",
            "ANTHROPIC_API_KEY",
            "--api-key-header",
            "x-api-key",
        ])
        .ok();
    let (run, report) = claude();
    assert!(run.status.success(), "{run}");
    assert!(
        run.stderr.contains("has a service for api.anthropic.com")
            && run
                .stderr
                .contains("ANTHROPIC_API_KEY in the container is a placeholder"),
        "{run}"
    );
    let placeholder = agent_vault::sandbox::claude::PLACEHOLDER;
    assert_eq!(report["env"]["ANTHROPIC_API_KEY"], placeholder);
    assert_eq!(report["env"]["CLAUDE_CONFIG_DIR"], "/home/claude/.claude");
    assert_eq!(report["env"]["DISABLE_AUTOUPDATER"], "1");
    assert!(
        report["env"]["AGENT_VAULT_SEED"].is_null(),
        "the gate hides its seed"
    );
    assert_eq!(report["config"]["hasCompletedOnboarding"], true, "{report}");
    let approved = report["config"]["customApiKeyResponses"]["approved"][0]
        .as_str()
        .unwrap();
    assert!(placeholder.ends_with(approved) && approved.len() == 20);
    assert_eq!(report["status"], 200, "{report}");
    // The upstream echoes what it got: the vault's key, which the broker scrubs from the
    // answer (it replaces exactly that value), so the agent sees the marker instead.
    let upstream = &report["upstream"];
    assert_eq!(
        header(upstream, "x-api-key"),
        vec!["[agent-vault:redacted]"],
        "{upstream}"
    );
    let text = report.to_string();
    let headers = upstream["headers"].to_string();
    assert!(
        !headers.contains(placeholder),
        "the placeholder reached the upstream: {headers}"
    );
    assert!(
        !report["env"].to_string().contains(VAULT_KEY)
            && !report["config"].to_string().contains(VAULT_KEY),
        "the key is in the container: {text}"
    );
    assert_eq!(turn.leftovers(), "");
}
