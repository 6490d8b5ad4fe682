//! The background maintainer: a detached copy of the binary (`agent-vault
//! __sandbox-maintain`) that a container run starts, so that the slow housekeeping happens
//! off the run's path: removing what the run's containers used (its network and home volume),
//! pruning what dead runs left, and keeping `AGENT_VAULT_SANDBOX_WARM` ready slots (default
//! 2, `0` for none) so the next run finds its network and firewall already up.
//!
//! It holds no secret and talks only to the Docker engine. One maintainer at a time prunes
//! and refills (a lock file per user); releases never wait for it. If it dies, the next one
//! (or the next run) catches up: everything it touches is found again by label.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::janitor::{self, Resources};
use super::slots::{self, Home, Recipe};
use super::{SandboxError, agent_user, docker, images};

/// How many ready slots to keep.
pub const WARM_ENV: &str = "AGENT_VAULT_SANDBOX_WARM";
const DEFAULT_WARM: usize = 2;
const MAX_WARM: usize = 8;
/// A ready slot nobody took in this long is removed.
pub const IDLE: Duration = Duration::from_secs(15 * 60);
/// The hidden subcommand the maintainer runs as.
pub const SUBCOMMAND: &str = "__sandbox-maintain";

/// The number of ready slots to keep, from the environment.
pub fn warm() -> usize {
    std::env::var(WARM_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(DEFAULT_WARM, |n: usize| n.min(MAX_WARM))
}

/// Starts a maintainer in the background (its own process group, so a Ctrl-C meant for the
/// agent does not stop it); `release` names a run whose network and volume to remove.
/// Returns whether it started.
pub fn spawn(release: Option<&str>) -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let mut command = Command::new(exe);
    command.arg(SUBCOMMAND);
    if let Some(id) = release {
        command.args(["--release", id]);
    }
    command
        .env_remove("AGENT_VAULT_SESSION_TOKEN")
        .env_remove("AGENT_VAULT_MASTER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    match command.spawn() {
        Ok(mut child) => {
            // Reaped here, so a long run does not keep a zombie.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

/// The maintainer's work: release, then (alone) prune and refill.
pub async fn run(release: Option<String>) -> Result<(), SandboxError> {
    let docker = docker::connect().await?;
    if let Some(id) = &release {
        janitor::release(&docker, id).await;
    }
    let Some(_lock) = exclusive() else {
        return Ok(());
    };
    let args = images::build_args();
    let firewall = images::FIREWALL.tag(&args);
    let have_firewall = docker.inspect_image(&firewall).await.is_ok();
    janitor::prune(&docker, have_firewall.then_some(firewall.as_str()), IDLE).await;
    if !have_firewall {
        // The first run builds the image; slots wait for it.
        return Ok(());
    }
    let user = agent_user();
    let mut ready = slots::ready(&docker, &firewall, user).await.len();
    while ready < warm() {
        let mut resources = Resources::default();
        let id = super::run_id();
        resources.id = Some(id.clone());
        let recipe = Recipe {
            id: &id,
            firewall_image: Some(&firewall),
            user,
            home: Home::PerRun { keep: false },
            ahead: true,
        };
        match slots::make(&docker, recipe, |_| None, &mut resources).await {
            // The stub relay closes here; the run that takes the slot binds its ports.
            Ok(_) => ready += 1,
            Err(_) => {
                janitor::release(&docker, &id).await;
                break;
            }
        }
    }
    Ok(())
}

/// The per-user lock of the pruning and refilling maintainer, if free. It lives in the shared
/// temporary directory (one per user, whatever `HOME`), so it is opened without following a
/// symlink or truncating, and only a file of this user's own is used: another user's, planted
/// there to hold the lock for ever, sends us to one in `~/.agent-vault` instead.
fn exclusive() -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let uid = nix::unistd::getuid().as_raw();
    let open = |path: std::path::PathBuf| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .ok()
            .filter(|file| file.metadata().is_ok_and(|m| m.uid() == uid))
    };
    let shared = std::env::temp_dir().join(format!("agent-vault-maintain-{uid}.lock"));
    let file = open(shared).or_else(|| {
        let paths = crate::paths::Paths::from_env().ok()?;
        open(paths.root().join("maintain.lock"))
    })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}
