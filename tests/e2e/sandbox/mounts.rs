//! What the container may see of the host: refused sources and targets, symlinks, and
//! swaps raced against the start (from the host and from inside another sandbox).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{docker, docker_turn, sandbox_rig, sandboxed, sandboxed_command, workspace};
use crate::broker::Rig;
use crate::harness::{Run, poll};

#[test]
fn sources_exposing_the_store_the_host_or_a_daemon_are_refused() {
    let rig = sandbox_rig();
    let dir = workspace(&rig, "mounts");
    let state = rig.home.state();
    std::os::unix::fs::symlink(&state, dir.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    let socket = dir.join("elsewhere-docker.sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let home = rig.home.path().display().to_string();
    let mut cases = vec![
        (format!("{}:/mnt/x", state.display()), ".agent-vault"),
        (format!("{}/ca:/mnt/x", state.display()), ".agent-vault"),
        (
            format!("{}:/mnt/x", dir.join("link").display()),
            ".agent-vault",
        ),
        (
            format!("{}/../.agent-vault:/mnt/x", dir.display()),
            ".agent-vault",
        ),
        (format!("{home}:/mnt/x"), "home directory"),
        (
            "/var/run/docker.sock:/mnt/docker.sock".into(),
            "Unix socket",
        ),
        (format!("{}:/mnt/d.sock", socket.display()), "Unix socket"),
        ("/var/run:/mnt/run".into(), "system directory"),
        ("/run:/mnt/run".into(), "system directory"),
        ("/:/mnt/root".into(), "system directory"),
        ("/etc:/mnt/etc".into(), "system directory"),
        ("/usr:/mnt/usr".into(), "system directory"),
        ("/proc/self/root:/mnt/root".into(), "system directory"),
        (
            format!("{}:/mnt/etc", dir.join("etc-link").display()),
            "system directory",
        ),
        (format!("{}:/etc", dir.display()), "reserved"),
    ];
    if Path::new("/run/docker").exists() {
        cases.push(("/run/docker:/mnt/x".into(), "system directory"));
    }
    for (spec, why) in cases {
        let run = sandboxed(&rig, &dir, &["--mount", &spec], &["true"]);
        assert!(
            !run.status.success() && run.stderr.contains(why),
            "{spec}: {run}"
        );
    }
    // The working directory is checked the same way, also when reached through a symlink.
    for (cwd, why) in [
        (state.clone(), ".agent-vault"),
        (rig.home.path().to_owned(), "home directory"),
        (dir.join("etc-link"), "system directory"),
        (PathBuf::from("/"), "system directory"),
    ] {
        let run = sandboxed(&rig, &cwd, &[], &["true"]);
        assert!(
            !run.status.success() && run.stderr.contains(why),
            "{}: {run}",
            cwd.display()
        );
    }
}

#[test]
fn a_source_reached_through_a_symlink_is_named_and_mounted() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "symlinked");
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/marker"), "the-real-data").unwrap();
    std::os::unix::fs::symlink(dir.join("data"), dir.join("shortcut")).unwrap();
    let spec = format!("{}:/data:ro", dir.join("shortcut").display());
    let run = sandboxed(&rig, &dir, &["--mount", &spec], &["cat", "/data/marker"]);
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout, "the-real-data");
    assert!(
        run.stderr.contains(&format!(
            "reached through a symlink: mounting {}",
            dir.join("data").display()
        )),
        "{run}"
    );
    assert_eq!(turn.leftovers(), "");
}

/// Swaps `a` and `b` (either may be a symlink) atomically.
fn exchange(a: &Path, b: &Path) {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        a,
        nix::fcntl::AT_FDCWD,
        b,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();
}

/// `data/marker` says "good"; `swap` is a symlink to the store; exchanging them turns
/// `data` into a way to the store.
fn swap_pair(rig: &Rig, dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(data.join("marker"), "good").unwrap();
    let swap = dir.join("swap");
    std::os::unix::fs::symlink(rig.home.state(), &swap).unwrap();
    (data, swap)
}

/// Every try either ran with the checked directory or was refused before the command ran.
fn judge(tries: Vec<(Run, bool)>) -> (usize, usize, usize) {
    let (mut good, mut at_check, mut at_start) = (0, 0, 0);
    for (i, (run, ran)) in tries.iter().enumerate() {
        if run.status.success() {
            assert_eq!(
                run.stdout.trim(),
                "good",
                "try {i} ran with a wrong mount: {run}"
            );
            good += 1;
        } else {
            assert!(
                !ran,
                "try {i}: the command ran although the run failed: {run}"
            );
            if run.stderr.contains("would expose") {
                at_check += 1;
            } else if run.stderr.contains("changed between") {
                at_start += 1;
            } else {
                panic!("try {i} failed for another reason: {run}");
            }
        }
    }
    (good, at_check, at_start)
}

/// Runs `tries` sandboxes mounting `data` while something swaps it.
fn race(rig: &Rig, dir: &Path, data: &Path, tries: usize) -> Vec<(Run, bool)> {
    let spec = format!("{}:/data", data.display());
    (0..tries)
        .map(|i| {
            let ran = dir.join(format!("ran-{i}"));
            let script = format!("touch /workspace/ran-{i}; cat /data/marker");
            let run = sandboxed(rig, dir, &["--mount", &spec], &["sh", "-c", &script]);
            (run, ran.exists())
        })
        .collect()
}

#[test]
fn a_swap_after_the_check_is_caught_before_the_command_runs() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "swap-once");
    let (data, swap) = swap_pair(&rig, &dir);
    let spec = format!("{}:/data", data.display());
    let mut cmd = sandboxed_command(
        &rig,
        &dir,
        &["--mount", &spec],
        &["sh", "-c", "touch /workspace/ran; ls -a /data"],
    );
    // Without a ready slot, the run's network exists only after the check and well before
    // the agent starts (the firewall helper's self-test comes in between): swap then.
    cmd.env("AGENT_VAULT_SANDBOX_WARM", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let label = format!("label=dev.agent-vault.pid={}", child.id());
    poll("the run's network", Duration::from_millis(25), || {
        (!docker(&["network", "ls", "-q", "--filter", &label]).is_empty()).then_some(())
    });
    exchange(&data, &swap);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("changed between"),
        "the swap was not caught: {stderr}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!dir.join("ran").exists(), "the command ran");
    assert_eq!(turn.leftovers(), "");
}

#[test]
fn a_swap_race_from_the_host_never_mounts_the_store() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = workspace(&rig, "race-host");
    let (data, swap) = swap_pair(&rig, &dir);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, data, swap) = (stop.clone(), data.clone(), swap.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                exchange(&data, &swap);
                std::thread::sleep(Duration::from_micros(500));
            }
            // Leave `data` as the directory.
            if std::fs::symlink_metadata(&data)
                .unwrap()
                .file_type()
                .is_symlink()
            {
                exchange(&data, &swap);
            }
        })
    };
    let tries = race(&rig, &dir, &data, 50);
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let (good, at_check, at_start) = judge(tries);
    eprintln!(
        "host race: {good} ran with the checked directory, {at_check} refused at the check, {at_start} refused at the start"
    );
    assert_eq!(turn.leftovers(), "");
}

const SWAPPER: &str = r#"
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
os.chdir("/workspace")
open("swapping", "w").close()
while not os.path.exists("stop"):
    libc.renameat2(AT_FDCWD, b"data", AT_FDCWD, b"swap", RENAME_EXCHANGE)
    time.sleep(0.0005)
if os.path.islink("data"):
    libc.renameat2(AT_FDCWD, b"data", AT_FDCWD, b"swap", RENAME_EXCHANGE)
"#;

#[test]
fn a_swap_race_from_inside_another_sandbox_never_mounts_the_store() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let attacker_dir = workspace(&rig, "race-attacker");
    let (data, _swap) = swap_pair(&rig, &attacker_dir);
    std::fs::write(attacker_dir.join("swapper.py"), SWAPPER).unwrap();
    let mut attacker = sandboxed_command(&rig, &attacker_dir, &[], &["python3", "swapper.py"]);
    attacker.stdout(Stdio::piped()).stderr(Stdio::piped());
    let attacker = attacker.spawn().unwrap();
    poll("the attacking sandbox", Duration::from_millis(100), || {
        attacker_dir.join("swapping").exists().then_some(())
    });

    let victim_dir = workspace(&rig, "race-victim");
    let tries = race(&rig, &victim_dir, &data, 50);
    std::fs::write(attacker_dir.join("stop"), "").unwrap();
    let attacker = attacker.wait_with_output().unwrap();
    assert!(
        attacker.status.success(),
        "{}",
        String::from_utf8_lossy(&attacker.stderr)
    );
    let (good, at_check, at_start) = judge(tries);
    eprintln!(
        "in-sandbox race: {good} ran with the checked directory, {at_check} refused at the check, {at_start} refused at the start"
    );
    assert_eq!(turn.leftovers(), "");
}

/// A new git repository in `dir` whose `.git` the agent's user could write (these tests may
/// run as root): only the sandbox's read-only mount protects it.
fn open_repository(dir: &Path) {
    let mut init = std::process::Command::new("git");
    init.args(["init", "-q"]).current_dir(dir);
    crate::harness::run_command(init, "").ok();
    let opened = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir.join(".git"))
        .status()
        .unwrap();
    assert!(opened.success());
}

/// Git on the host runs a repository's hooks and config: the agent cannot write the
/// workspace's `.git` (nor rename it away), a repository it makes elsewhere is named when the
/// run ends, and `--writable-git` hands `.git` over with the same warning. `/tmp` itself is
/// refused as a workspace (other programs' sockets live there).
#[test]
fn the_workspace_git_metadata_is_read_only_and_new_repositories_are_named() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = super::workspace(&rig, "repo");
    open_repository(&dir);
    let config = std::fs::read_to_string(dir.join(".git/config")).unwrap();
    let script = "echo 'touch /workspace/pwned' > .git/hooks/pre-commit; echo h=$?; \
        printf '[core]\\n\\tfsmonitor = touch /workspace/pwned\\n' >> .git/config; echo c=$?; \
        mv .git .git-moved; echo m=$?; \
        echo work > notes.txt; mkdir -p vendor/lib/.git; echo '[core]' > vendor/lib/.git/config";
    let run = sandboxed(&rig, &dir, &[], &["sh", "-c", script]);
    assert!(run.status.success(), "{run}");
    for allowed in ["h=0", "c=0", "m=0"] {
        assert!(!run.stdout.contains(allowed), "{allowed}: {run}");
    }
    assert!(run.stderr.contains("Read-only file system"), "{run}");
    assert!(!dir.join(".git/hooks/pre-commit").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join(".git/config")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "work\n"
    );
    let warned = |run: &Run, path: &Path| {
        run.stderr.contains(&format!(
            "the agent made or changed git metadata at {}",
            path.display()
        ))
    };
    assert!(warned(&run, &dir.join("vendor/lib/.git")), "{run}");
    assert!(!warned(&run, &dir.join(".git")), "{run}");

    // Opted out: the agent writes the hook, and the run names the repository afterwards.
    let run = sandboxed(
        &rig,
        &dir,
        &["--writable-git"],
        &["sh", "-c", "echo true > .git/hooks/pre-commit"],
    );
    assert!(run.status.success(), "{run}");
    assert!(dir.join(".git/hooks/pre-commit").exists());
    assert!(warned(&run, &dir.join(".git")), "{run}");

    let mut cmd = sandboxed_command(&rig, Path::new("/tmp"), &[], &["true"]);
    cmd.current_dir("/tmp");
    crate::harness::run_command(cmd, "").fails_with("shared temporary directory");
    assert_eq!(turn.leftovers(), "");
}

/// `agent-vault.json` chooses the vault of later commands, the next `vault run`'s included:
/// the agent cannot rewrite nor move the workspace's, and one it makes is named when the run
/// ends; a symlinked one is passed over.
#[test]
fn the_agent_cannot_choose_the_vault_of_the_next_run() {
    use std::os::unix::fs::PermissionsExt;
    let turn = docker_turn();
    let rig = sandbox_rig();
    let bound = super::workspace(&rig, "bound");
    let project = bound.join("agent-vault.json");
    std::fs::write(&project, "{\"vault\": \"default\"}\n").unwrap();
    // Writable by the agent's user (these tests may run as root): only the mount protects it.
    std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = "echo '{\"vault\": \"prod\"}' > agent-vault.json; echo w=$?; \
        mv agent-vault.json moved.json; echo m=$?; \
        mkdir -p sub; echo '{\"vault\": \"prod\"}' > sub/agent-vault.json";
    let run = sandboxed(&rig, &bound, &[], &["sh", "-c", script]);
    assert!(run.status.success(), "{run}");
    for allowed in ["w=0", "m=0"] {
        assert!(!run.stdout.contains(allowed), "{allowed}: {run}");
    }
    assert_eq!(
        std::fs::read_to_string(&project).unwrap(),
        "{\"vault\": \"default\"}\n"
    );
    let warned = |run: &Run, path: &Path| {
        run.stderr
            .contains(&format!("the agent made or changed {}", path.display()))
    };
    assert!(warned(&run, &bound.join("sub/agent-vault.json")), "{run}");
    assert!(!warned(&run, &project), "{run}");

    // Where there was none, the one the agent makes is named.
    let unbound = super::workspace(&rig, "unbound");
    let write = "echo '{\"vault\": \"prod\"}' > agent-vault.json";
    let run = sandboxed(&rig, &unbound, &[], &["sh", "-c", write]);
    assert!(run.status.success(), "{run}");
    assert!(warned(&run, &unbound.join("agent-vault.json")), "{run}");

    // A symlink (to someone's file naming another vault) is not followed.
    std::fs::remove_file(unbound.join("agent-vault.json")).unwrap();
    std::os::unix::fs::symlink(&project, unbound.join("agent-vault.json")).unwrap();
    let mut current = rig.home.command(&["vault", "current"]);
    current.current_dir(&unbound);
    let shown = crate::harness::run_command(current, "").ok();
    assert!(shown.stderr.contains("it is a symlink"), "{shown}");
    assert!(!shown.stdout.contains("agent-vault.json"), "{shown}");
    assert_eq!(turn.leftovers(), "");
}

/// The end-of-run check covers writable `--mount` sources like the workspace (their `.git`
/// and `agent-vault.json` read-only too), finds bare repositories, and prints the names the
/// agent chose with their control characters replaced (an escape sequence in a directory's
/// name could otherwise erase or forge the warnings).
#[test]
fn what_the_agent_plants_anywhere_it_can_write_is_named_safely() {
    let turn = docker_turn();
    let rig = sandbox_rig();
    let dir = super::workspace(&rig, "plain");
    let data = super::workspace(&rig, "data");
    open_repository(&data);
    let script = "mkdir -p \"$(printf 'evil\\033[2Kname')\" && \
        echo '{\"vault\": \"prod\"}' > \"$(printf 'evil\\033[2Kname')/agent-vault.json\"; \
        mkdir -p vendor/bare/objects vendor/bare/refs && echo 'ref: refs/heads/main' > vendor/bare/HEAD; \
        echo '[core]' > vendor/bare/config; \
        echo true > /data/.git/hooks/pre-commit; echo h=$?; \
        mkdir -p /data/sub && echo '{\"vault\": \"prod\"}' > /data/sub/agent-vault.json";
    let mount = format!("{}:/data", data.display());
    let run = sandboxed(&rig, &dir, &["--mount", &mount], &["sh", "-c", script]);
    assert!(run.status.success(), "{run}");
    assert!(!run.stdout.contains("h=0"), "{run}");
    assert!(!data.join(".git/hooks/pre-commit").exists());
    let warned = |what: &str| {
        run.stderr
            .contains(&format!("the agent made or changed {what}"))
    };
    assert!(
        warned(&format!(
            "{}",
            dir.join("evil?[2Kname/agent-vault.json").display()
        )),
        "{run}"
    );
    assert!(!run.stderr.contains('\u{1b}'), "{run}");
    assert!(
        warned(&format!(
            "git metadata at {}",
            dir.join("vendor/bare").display()
        )),
        "{run}"
    );
    assert!(
        warned(&format!("{}", data.join("sub/agent-vault.json").display())),
        "{run}"
    );
    assert_eq!(turn.leftovers(), "");
}
