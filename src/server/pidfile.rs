//! `~/.agent-vault/agent-vault.pid`: written once the listeners are bound, removed on exit.
//! A PID only counts as a running server when that process is alive *and* is an
//! agent-vault server, so a PID reused by another program is never signalled.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::ServerError;
use crate::paths::{Paths, write_private};

pub fn read(paths: &Paths) -> Option<i32> {
    std::fs::read_to_string(paths.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live agent-vault server process.
pub fn is_server_process(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let program = args.next().unwrap_or_default();
    String::from_utf8_lossy(program).contains("agent-vault") && args.any(|a| a == b"server")
}

/// The PID of a running server of this home, other than ourselves.
pub fn running_server(paths: &Paths) -> Option<i32> {
    read(paths).filter(|&pid| pid != std::process::id() as i32 && is_server_process(pid))
}

pub fn write(paths: &Paths) -> Result<(), ServerError> {
    write_private(
        &paths.pid_file(),
        format!("{}\n", std::process::id()).as_bytes(),
    )
    .map_err(ServerError::io(format!(
        "cannot write {}",
        paths.pid_file().display()
    )))
}

/// Removes the pid file if it still names this process.
pub fn remove_if_ours(paths: &Paths) {
    if read(paths) == Some(std::process::id() as i32) {
        let _ = std::fs::remove_file(paths.pid_file());
    }
}

/// Sends SIGTERM to the running server and waits for it to exit. Returns its PID.
pub fn stop(paths: &Paths) -> Result<i32, ServerError> {
    let file = paths.pid_file();
    let Some(pid) = read(paths) else {
        return Err(ServerError::Input(format!(
            "no server is running (no PID file at {})",
            file.display()
        )));
    };
    if !is_server_process(pid) {
        let _ = std::fs::remove_file(&file);
        return Err(ServerError::Input(format!(
            "no server is running: PID {pid} from {} is gone (stale PID file removed)",
            file.display()
        )));
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .map_err(|e| ServerError::Input(format!("cannot signal the server (PID {pid}): {e}")))?;
    // The server gives open requests and streams its grace period before it closes them; wait
    // for that (as this environment sets it) and for the request log to be written.
    let (conn, _) = crate::proxy::listener::ConnSettings::from_lookup(|n| std::env::var(n).ok());
    let patience = conn.grace + Duration::from_secs(20);
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if !is_server_process(pid) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ServerError::Input(format!(
        "the server (PID {pid}) did not stop within {} seconds; force it with `kill -9 {pid}`",
        patience.as_secs()
    )))
}
