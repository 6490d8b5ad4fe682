//! The container sandbox against the real Docker engine: the allowed path through the
//! broker, an egress battery aimed only at decoys this test runs, the relay closed to other
//! containers, mount refusals and swap races, `--keep`, exit codes, concurrent runs, a
//! killed run, and no leftovers.
//!
//! Images come from local material only: `scripts/build-test-image.sh` (run by `.ci/run`)
//! makes `agent-vault-test/base:latest` with debootstrap; the sandbox builds its firewall
//! image on top of it.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::process::Command;

use crate::broker::Rig;
use crate::harness::Run;
use crate::upstream::Upstream;

pub const BASE: &str = "agent-vault-test/base:latest";

/// Docker tests share one engine: they take turns (a lock across test processes). A turn
/// remembers the labelled resources that existed when it began — a user's `--keep`, an
/// earlier crashed run — so a test checks only what *it* left behind, and whatever it did
/// leave is removed when the turn ends, even if the test panicked.
pub struct DockerTurn {
    _lock: nix::fcntl::Flock<File>,
    pub before: BTreeSet<String>,
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
    /// Labelled resources made since the turn began that still exist.
    pub fn leftovers(&self) -> String {
        let added: Vec<String> = labelled().difference(&self.before).cloned().collect();
        added.join(" ")
    }
}

impl Drop for DockerTurn {
    fn drop(&mut self) {
        for resource in labelled().difference(&self.before) {
            let (kind, id) = resource.split_once(':').unwrap_or(("", resource));
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
/// `kind:id`; containers first so a drop removes them before what they use.
pub fn labelled() -> BTreeSet<String> {
    let filter = "label=dev.agent-vault.run";
    let mut all = BTreeSet::new();
    for (kind, args) in [
        ("container", &["ps", "-aq", "--filter", filter][..]),
        ("network", &["network", "ls", "-q", "--filter", filter]),
        ("volume", &["volume", "ls", "-q", "--filter", filter]),
    ] {
        all.extend(docker(args).lines().map(|id| format!("{kind}:{id}")));
    }
    all
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
