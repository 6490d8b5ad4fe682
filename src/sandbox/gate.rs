//! The run's folder and the start gate.
//!
//! Each run owns a private folder under the temporary directory (mode 0700, a fresh name
//! that must not exist yet): the CA the agent trusts, the gate, and an `owner` file naming
//! the `vault run` process so the janitor can remove the folder once that process is gone.
//!
//! The gate is a FIFO bind-mounted into the agent's container. The container's first
//! program is the image's `/bin/sh` reading one line from it; only after the host has
//! checked what the started container really mounted does it write `open`, and only then
//! does the shell `exec` the agent's command. A container whose check fails is killed while
//! it waits, so the command never runs beside a mount nobody checked.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::janitor::{RUN_DIR_PREFIX, this_process};

/// Where the gate appears in the container.
pub const GATE_IN_CONTAINER: &str = "/run/agent-vault/gate";

/// Run by the image's `/bin/sh` as `sh -c GATE agent-vault-gate COMMAND...` (builtins only,
/// so any image with a POSIX shell works). Once open, it writes the first-run file named by
/// `AGENT_VAULT_SEED_PATH` if that file does not exist yet, and hides both variables from
/// the command.
const GATE_SCRIPT: &str = r#"IFS= read -r word < /run/agent-vault/gate && [ "$word" = open ] || {
  echo 'agent-vault: the sandbox start gate stayed closed; nothing was run' >&2; exit 125; }
if [ -n "${AGENT_VAULT_SEED_PATH:-}" ] && [ ! -e "$AGENT_VAULT_SEED_PATH" ]; then
  (umask 077; printf '%s\n' "$AGENT_VAULT_SEED" > "$AGENT_VAULT_SEED_PATH") || true
fi
unset AGENT_VAULT_SEED AGENT_VAULT_SEED_PATH
exec "$@""#;

/// The container's entrypoint and command: the gate, then the image's entrypoint and the
/// agent's command exactly as they would have run.
pub fn wrap(image_entrypoint: &[String], command: &[String]) -> (Vec<String>, Vec<String>) {
    let entrypoint = ["/bin/sh", "-c", GATE_SCRIPT, "agent-vault-gate"]
        .map(str::to_owned)
        .to_vec();
    let cmd = image_entrypoint.iter().chain(command).cloned().collect();
    (entrypoint, cmd)
}

/// A run's private folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates the folder with the CA and the gate, readable by the agent's user.
    pub fn create(id: &str, ca_pem: &str, (uid, gid): (u32, u32)) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("{RUN_DIR_PREFIX}{id}"));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let dir = Self { path };
        let (pid, start) = this_process();
        std::fs::write(dir.path.join("owner"), format!("{pid} {start}\n"))?;
        let ca = dir.ca();
        std::fs::write(&ca, ca_pem)?;
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644))?;
        nix::unistd::mkfifo(
            &dir.gate(),
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .map_err(std::io::Error::from)?;
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(dir.gate(), Some(uid), Some(gid))?;
        }
        Ok(dir)
    }

    pub fn ca(&self) -> PathBuf {
        self.path.join("ca.pem")
    }

    pub fn gate(&self) -> PathBuf {
        self.path.join("gate")
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Opens the gate at `path`. The returned handle must stay open until the agent has read
/// the line (a FIFO's data is lost when its last handle closes): keep it for the run.
pub fn open(path: &Path) -> std::io::Result<std::fs::File> {
    // Read-write: opening does not wait for the reader, and the line waits in the pipe.
    let mut gate = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    gate.write_all(b"open\n")?;
    Ok(gate)
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;

    use super::*;

    #[test]
    fn the_command_runs_only_after_the_gate_opens() {
        let (entrypoint, cmd) = wrap(&["/entry".into()], &["claude".into(), "-p".into()]);
        assert_eq!(&entrypoint[..2], ["/bin/sh", "-c"]);
        assert_eq!(cmd, ["/entry", "claude", "-p"]);

        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let dir = RunDir::create(&format!("test-{}", std::process::id()), "PEM", me).unwrap();
        assert_eq!(std::fs::read_to_string(dir.ca()).unwrap(), "PEM");
        let folder = dir.ca().parent().unwrap().to_owned();
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _held = open(&dir.gate()).unwrap();
        let reader = std::fs::File::open(dir.gate()).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(reader)
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "open\n");
        dir.remove();
        assert!(!folder.exists());
    }
}
