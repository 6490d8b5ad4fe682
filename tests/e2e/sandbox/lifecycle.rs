//! Runs from start to end: exit codes, concurrency, `--keep`, the default image, mode
//! selection, the shared home, a TTY, a missing engine, a machine used before.

use std::process::Command;

use super::{
    BASE, docker, docker_turn, labelled, sandbox_rig, sandboxed, sandboxed_command, workspace,
};
use crate::harness::{Run, poll, written};

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
        left.contains(&format!("container:{}", &container[..12]))
            && left.contains("volume:")
            && !left.contains("network:"),
        "the agent container and its home were not kept (and only they): {left}"
    );

    // Each of the four runs reported its start to the server's metrics.
    let text = crate::agents::metrics_text(&rig);
    for series in [
        "agent_vault_sandbox_runs_total{mode=\"container\"}",
        "agent_vault_sandbox_start_duration_seconds_count{mode=\"container\"}",
    ] {
        assert_eq!(
            crate::agents::metric(&text, series),
            4.0,
            "{series}: {text}"
        );
    }
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
        still
            .keys()
            .any(|k| k.starts_with(&format!("container:{}", &container[..12])))
            && still
                .keys()
                .any(|k| k.starts_with(&format!("volume:{volume}"))),
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

/// Folders of runs in the temporary directory whose owner is `pid`.
fn run_dirs_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("agent-vault-run-")
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("owner"))
                .is_ok_and(|owner| owner.split(' ').next() == Some(pid.to_string().as_str()))
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

#[test]
fn a_killed_run_leaves_nothing_once_the_next_run_prunes() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "killed");

    // Killed mid-run: its token dies with its lease.
    let script = "printf %s \"$AGENT_VAULT_SESSION_TOKEN\" > /workspace/token; exec sleep 600";
    let mut cmd = sandboxed_command(&rig, &dir, &[], &["sh", "-c", script]);
    cmd.env("AGENT_VAULT_RUN_LEASE", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut mid_run = cmd.spawn().unwrap();
    let token = poll("the agent", Duration::from_millis(100), || {
        written(&dir.join("token"))
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        crate::agents::token_status(&rig.server.url, &token),
        200,
        "renewals keep a live run's token valid past its lease"
    );
    mid_run.kill().unwrap();
    let killed = Instant::now();
    mid_run.wait().unwrap();
    let took = crate::agents::refused_after(&rig.server.url, &token, killed);
    assert!(took < Duration::from_secs(4), "refused only after {took:?}");
    eprintln!("the killed run's token was refused {took:?} after kill -9 (lease 2s)");

    // Killed mid-start, making its own slot: while its network exists and its helper is
    // coming up. And killed right after claiming a ready slot (its agent container exists).
    let mut killed_pids = vec![mid_run.id()];
    for (warm, what) in [("0", "network"), ("2", "agent container")] {
        let mut cmd = sandboxed_command(&rig, &dir, &[], &["sleep", "600"]);
        cmd.env("AGENT_VAULT_SANDBOX_WARM", warm)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut mid_start = cmd.spawn().unwrap();
        let label = format!("label=dev.agent-vault.pid={}", mid_start.id());
        poll(what, Duration::from_millis(25), || {
            let found = match warm {
                "0" => docker(&["network", "ls", "-q", "--filter", &label]),
                _ => docker(&["ps", "-aq", "--filter", &label]),
            };
            (!found.is_empty()).then_some(())
        });
        mid_start.kill().unwrap();
        mid_start.wait().unwrap();
        killed_pids.push(mid_start.id());
    }
    assert!(
        !turn.added().is_empty(),
        "the killed runs left nothing to prune: the test proves nothing"
    );

    let next = sandboxed(&rig, &dir, &[], &["true"]);
    assert!(next.status.success(), "{next}");
    assert_eq!(turn.leftovers(), "", "resources of killed runs left behind");
    for pid in killed_pids {
        assert_eq!(
            run_dirs_of(pid),
            Vec::<String>::new(),
            "folders of run {pid}"
        );
    }
}

/// SIGTERM, SIGHUP and SIGINT sent to `vault run` reach the agent, which may finish its work: its
/// exit code is the run's, and the run cleans up after it (docs/sandbox.md, Lifecycle). The
/// run's network is `--internal` meanwhile.
#[test]
fn signals_to_the_run_reach_the_agent_and_the_run_cleans_up() {
    use std::process::Stdio;
    use std::time::Duration;
    let turn = docker_turn();
    let rig = sandbox_rig();
    for signal in ["TERM", "HUP", "INT"] {
        let dir = workspace(&rig, &format!("signal-{signal}"));
        let script = format!(
            "trap 'echo {signal} > /workspace/caught; exit 7' {signal}; touch /workspace/ready; while :; do sleep 0.1; done"
        );
        let mut cmd = sandboxed_command(&rig, &dir, &[], &["sh", "-c", &script]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let run = cmd.spawn().unwrap();
        poll("the agent", Duration::from_millis(100), || {
            dir.join("ready").exists().then_some(())
        });
        // The run's network has no route off the host, whatever the firewall's rules do.
        let network = super::network_of_run(run.id()).expect("the run's network");
        let internal = docker(&["network", "inspect", "-f", "{{.Internal}}", &network]);
        assert_eq!(internal.trim(), "true", "{network}");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &run.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "SIG{signal}: {stderr}");
        assert_eq!(
            written(&dir.join("caught")).as_deref(),
            Some(&*format!("{signal}\n"))
        );
        assert_eq!(
            turn.leftovers(),
            "",
            "SIG{signal}: the run left resources behind"
        );
    }
}

#[test]
fn limits_by_default_and_overridable() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "limits");
    let inspect = |run: &Run| {
        let container = run
            .stderr
            .split("kept the agent container ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no kept container named: {run}"))
            .to_owned();
        let json = docker(&["inspect", "-f", "{{json .HostConfig}}", &container]);
        docker(&["rm", "-f", &container]);
        if let Some(volume) = run
            .stderr
            .split("its home volume ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
        {
            docker(&["volume", "rm", volume]);
        }
        serde_json::from_str::<serde_json::Value>(&json).unwrap()
    };
    let script = "grep -E '^[^ ]+ / ' /proc/mounts | grep -q ' rw,' && echo root-writable; touch /tmp/x $HOME/x /workspace/x && echo writable";
    let run = sandboxed(&rig, &dir, &["--keep"], &["sh", "-c", script]);
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout.trim(), "writable", "{run}");
    let host = inspect(&run);
    assert!(host["Memory"].as_i64().unwrap() > 0, "{host}");
    assert_eq!(host["MemorySwap"], host["Memory"]);
    assert!(
        host["NanoCpus"].as_i64().unwrap() >= 1_000_000_000,
        "{host}"
    );
    assert_eq!(host["PidsLimit"], 4096);
    assert_eq!(host["ReadonlyRootfs"], true);
    assert!(host["Tmpfs"]["/tmp"].is_string() && host["Tmpfs"]["/home/claude"].is_string());

    let flags = [
        "--keep",
        "--memory",
        "512m",
        "--cpus",
        "1.5",
        "--pids-limit",
        "100",
        "--writable-root",
    ];
    let root = "grep -E '^[^ ]+ / ' /proc/mounts | grep -q ' rw,' && echo root-writable";
    let run = sandboxed(&rig, &dir, &flags, &["sh", "-c", root]);
    assert!(run.stdout.contains("root-writable"), "{run}");
    let host = inspect(&run);
    assert_eq!(host["Memory"], 512 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 1_500_000_000i64);
    assert_eq!(host["PidsLimit"], 100);
    assert_eq!(host["ReadonlyRootfs"], false);

    let lifted = [
        "--keep",
        "--memory",
        "0",
        "--cpus",
        "0",
        "--pids-limit",
        "0",
    ];
    let host = inspect(&sandboxed(&rig, &dir, &lifted, &["true"]));
    assert_eq!(host["Memory"], 0);
    assert_eq!(host["NanoCpus"], 0);

    for (flags, why) in [
        (&["--memory", "lots"][..], "--memory"),
        (&["--cpus=-1"][..], "--cpus"),
        (&["--pids-limit", "2"][..], "--pids-limit"),
    ] {
        let run = sandboxed(&rig, &dir, flags, &["true"]);
        assert!(!run.status.success() && run.stderr.contains(why), "{run}");
    }
    rig.home
        .run(&["vault", "run", "--memory", "1g", "--", "true"])
        .fails_with("only applies to --sandbox=container");
    assert_eq!(turn.leftovers(), "");
}

#[test]
fn ready_slots_serve_one_run_each_and_are_refilled() {
    use std::process::Stdio;
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "slots");
    let first = sandboxed(&rig, &dir, &[], &["true"]);
    assert!(first.status.success(), "{first}");
    super::wait_for_maintainers();
    let ready = super::ready_slots();
    assert_eq!(
        ready.len(),
        2,
        "the maintainer keeps two ready slots: {ready:?}"
    );

    // Three runs at once: two take the ready slots, one makes its own; none share.
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let dir = workspace(&rig, &format!("slot-run-{i}"));
            let script = "echo \"$AGENT_VAULT_ADDR\" > /workspace/addr; sleep 3";
            let mut cmd = sandboxed_command(&rig, &dir, &[], &["sh", "-c", script]);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            (dir, cmd.spawn().unwrap())
        })
        .collect();
    let mut networks = Vec::new();
    for (_, child) in &runs {
        let network = poll(
            "a run's network",
            std::time::Duration::from_millis(50),
            || super::network_of_run(child.id()),
        );
        networks.push((
            network.clone(),
            super::made_by_another_process(&network, child.id()),
        ));
    }
    let mut addrs = Vec::new();
    for (dir, child) in runs {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        addrs.push(std::fs::read_to_string(dir.join("addr")).unwrap());
    }
    let taken = networks.iter().filter(|(_, taken)| *taken).count();
    // (A slot the maintainer makes meanwhile may serve the third.)
    assert!(
        taken >= 2,
        "two runs take the two ready slots: {networks:?}"
    );
    let mut distinct = networks.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "a slot served two runs: {networks:?}");
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "two runs shared a relay: {addrs:?}");

    // Used slots go away; the pool is refilled with fresh ones.
    assert_eq!(turn.leftovers(), "", "used slots left behind");
    super::wait_for_maintainers();
    let refilled = super::ready_slots();
    assert_eq!(refilled.len(), 2, "{refilled:?}");
    assert!(
        refilled.iter().all(|slot| !ready.contains(slot)),
        "a used slot is ready again: {ready:?} then {refilled:?}"
    );
}

/// `--no-firewall` (debugging) warns loudly, and the agent's home is still its own: the helper
/// that otherwise hands it over is not there.
#[test]
fn a_run_without_the_firewall_warns_and_its_home_is_writable() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "no-firewall");
    let script = "touch $HOME/.claude/written && echo wrote";
    let run = sandboxed(&rig, &dir, &["--no-firewall"], &["sh", "-c", script]);
    assert!(run.status.success(), "{run}");
    assert!(run.stdout.contains("wrote"), "{run}");
    assert!(run.stderr.contains("egress is NOT restricted"), "{run}");
    assert_eq!(turn.leftovers(), "", "resources left behind");
}
