//! The container sandbox against the real Docker engine: the allowed path through the
//! broker, an egress battery aimed only at decoys this test runs, the relay closed to other
//! containers, mount refusals and swap races, `--keep`, exit codes, concurrent runs, a
//! killed run, and no leftovers.
//!
//! Images come from local material only: `scripts/build-test-image.sh` (run by `.ci/run`)
//! makes `agent-vault-test/base:latest` with debootstrap; the sandbox builds its firewall
//! image on top of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::broker::Rig;
use crate::harness::Run;
use crate::upstream::Upstream;

pub const BASE: &str = "agent-vault-test/base:latest";

/// Docker tests share one engine: they take turns (a lock across test processes). A turn
/// remembers the labelled resources that existed when it began — a user's `--keep`, an
/// earlier crashed run, ready slots — so a test checks only what *it* left behind, and
/// whatever it did leave is removed when the turn ends, even if the test panicked.
pub struct DockerTurn {
    _lock: nix::fcntl::Flock<File>,
    pub before: BTreeMap<String, String>,
}

pub fn docker_turn() -> DockerTurn {
    let image = Command::new("docker")
        .args(["image", "inspect", BASE])
        .output()
        .expect("docker CLI");
    assert!(
        image.status.success(),
        "the test image {BASE} is missing: run scripts/build-test-image.sh (.ci/run does)"
    );
    let file = File::create(std::env::temp_dir().join("agent-vault-docker-tests.lock")).unwrap();
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    DockerTurn {
        _lock: lock,
        before: labelled(),
    }
}

impl DockerTurn {
    /// Labelled resources made since the turn began that still exist, but for ready slots
    /// (made ahead of time on purpose), as they are right now.
    pub fn added(&self) -> String {
        let now = labelled();
        let ready: BTreeSet<&String> = now
            .iter()
            .filter(|(key, _)| key.contains(":agent-vault-slot-"))
            .map(|(_, run)| run)
            .collect();
        let added: Vec<String> = now
            .iter()
            .filter(|(key, run)| !self.before.contains_key(*key) && !ready.contains(run))
            .map(|(key, _)| key.clone())
            .collect();
        added.join(" ")
    }

    /// What `added` says once the run's background cleanup has had its time (up to 30 s):
    /// the labelled resources this test left behind.
    pub fn leftovers(&self) -> String {
        let mut added = self.added();
        for _ in 0..150 {
            if added.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            added = self.added();
        }
        added
    }
}

/// Waits (up to a minute) until no sandbox maintainer runs: runs start them in the
/// background, and what they make must be counted (and removed) within the turn.
pub fn wait_for_maintainers() {
    for _ in 0..300 {
        let running = std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmdline| crate::harness::contains(&cmdline, "__sandbox-maintain"))
        });
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for DockerTurn {
    fn drop(&mut self) {
        wait_for_maintainers();
        let now = labelled();
        for key in now.keys().filter(|k| !self.before.contains_key(*k)) {
            let mut parts = key.splitn(3, ':');
            let (kind, id) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let args: &[&str] = match kind {
                "container" => &["rm", "-f", "-v", id],
                "network" => &["network", "rm", id],
                _ => &["volume", "rm", "-f", id],
            };
            docker(args);
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every labelled resource on the engine (containers incl. stopped, networks, volumes) as
/// `kind:id:name` → its run id; containers sort first, so a drop removes them before what
/// they use.
pub fn labelled() -> BTreeMap<String, String> {
    let filter = "label=dev.agent-vault.run";
    let run = "{{.Label \"dev.agent-vault.run\"}}";
    let mut all = BTreeMap::new();
    for (kind, command, fields) in [
        ("container", &["ps", "-a"][..], "{{.ID}} {{.Names}}"),
        ("network", &["network", "ls"], "{{.ID}} {{.Name}}"),
        ("volume", &["volume", "ls"], "{{.Name}} {{.Name}}"),
    ] {
        let format = format!("{fields} {run}");
        let mut args = command.to_vec();
        args.extend(["--filter", filter, "--format", &format]);
        for line in docker(&args).lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if let [id, name, run] = fields.as_slice() {
                all.insert(format!("{kind}:{id}:{name}"), (*run).to_owned());
            }
        }
    }
    all
}

/// Whether `network` was made by a process other than `pid` (a ready slot's maintainer).
pub fn made_by_another_process(network: &str, pid: u32) -> bool {
    let maker = docker(&[
        "network",
        "inspect",
        "-f",
        "{{index .Labels \"dev.agent-vault.pid\"}}",
        network,
    ]);
    !maker.is_empty() && maker != pid.to_string()
}

/// The names of the ready slots' helpers.
pub fn ready_slots() -> Vec<String> {
    docker(&[
        "ps",
        "--filter",
        "name=agent-vault-slot-",
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The network of the run of the `vault run` process `pid`, once it has one (from its
/// agent container when it took a ready slot, or the network it made itself).
pub fn network_of_run(pid: u32) -> Option<String> {
    let by_pid = format!("label=dev.agent-vault.pid={pid}");
    let run = docker(&[
        "ps",
        "-a",
        "--filter",
        &by_pid,
        "--filter",
        "label=dev.agent-vault.role=agent",
        "--format",
        "{{.Label \"dev.agent-vault.run\"}}",
    ]);
    if let Some(run) = run.lines().next().filter(|r| !r.is_empty()) {
        return Some(format!("agent-vault-{run}"));
    }
    let network = docker(&["network", "ls", "-q", "--filter", &by_pid]);
    network.lines().next().map(str::to_owned)
}

pub fn sandbox_rig() -> Rig {
    Rig::start_with(true, Upstream::start_on("127.0.0.2"))
}

pub fn sandboxed_command(rig: &Rig, dir: &Path, extra: &[&str], command: &[&str]) -> Command {
    let mut args = vec!["vault", "run", "--sandbox", "container", "--image", BASE];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    let mut cmd = rig.home.command(&args);
    cmd.current_dir(dir)
        .env("AGENT_VAULT_SANDBOX_BASE_IMAGE", BASE);
    cmd
}

pub fn sandboxed(rig: &Rig, dir: &Path, extra: &[&str], command: &[&str]) -> Run {
    crate::harness::run_command(sandboxed_command(rig, dir, extra, command), "")
}

/// A working directory the agent (a non-root user in the container) may write to.
pub fn workspace(rig: &Rig, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = rig.home.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

mod claude;
mod egress;
mod lifecycle;
mod mounts;
mod tokens;
