//! `server --detach`: the parent unlocks (prompting if needed), starts a child in a new
//! session with its output in `~/.agent-vault/server.log`, hands it the DEK on stdin, and
//! returns only once the child is serving — or reports why it is not.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::handoff::{EnvSecrets, Handoff, MARKER_ENV, SECRET_ENVS};
use super::{Integrations, ServerError, ServerOptions, pidfile, run};
use crate::crypto::Key;
use crate::paths::{Paths, open_private_append};
use crate::store::{Location, Store, StoreError, master_key};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn spawn(
    paths: &Paths,
    options: &ServerOptions,
    dek: &Key,
    secrets: EnvSecrets,
) -> Result<(), ServerError> {
    let log_path = paths.server_log();
    let log = open_private_append(&log_path).map_err(ServerError::io(format!(
        "cannot open {}",
        log_path.display()
    )))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe()
        .map_err(ServerError::io("cannot find the agent-vault executable"))?;
    let mut command = Command::new(exe);
    for name in SECRET_ENVS {
        command.env_remove(name);
    }
    let mut child = command
        .args(["server", "--host", &options.host])
        .args(["--port", &options.port.to_string()])
        .args(["--mitm-port", &options.mitm_port.to_string()])
        .args(["--proxy-tls-port", &options.proxy_tls_port.to_string()])
        .args(["--log-level", options.log_level.as_str()])
        .env(MARKER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(
            log.try_clone()
                .map_err(ServerError::io("cannot share the log file"))?,
        )
        .stderr(log)
        .spawn()
        .map_err(ServerError::io("cannot start the background server"))?;
    let line = Handoff::for_detached_child(dek, secrets).to_line()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(line.as_bytes()).map_err(ServerError::io(
            "cannot hand the key to the background server",
        ))?;
    }

    let pid = child.id() as i32;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ServerError::DetachedStartFailed {
                status: status.to_string(),
                tail: log_tail(&log_path, log_start),
                log: log_path,
            });
        }
        if pidfile::read(paths) == Some(pid) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ServerError::DetachedStartFailed {
                status: format!("not ready after {} s, stopped", READY_TIMEOUT.as_secs()),
                tail: log_tail(&log_path, log_start),
                log: log_path,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    println!("✓ agent-vault server started in the background (PID {pid})");
    if options.port != 0 {
        let url = super::base_url(None, None, &options.host, options.port);
        println!("  API:  {url}");
    }
    println!("  Logs: {}", log_path.display());
    println!("  Stop: agent-vault server stop");
    Ok(())
}

/// What the child wrote to the log during this start.
fn log_tail(path: &std::path::Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.take(64 * 1024).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The detached child: leave the terminal's session, take the DEK, serve.
pub fn run_child(
    paths: &Paths,
    options: &ServerOptions,
    handoff: Handoff,
    integrations: Integrations,
) -> Result<(), ServerError> {
    let _ = nix::unistd::setsid();
    let dek = handoff
        .dek()
        .ok_or_else(|| ServerError::Input("the background server received no key".into()))?;
    let store = Store::open_at(&Location::from_env(paths.database())?)?;
    let record = store
        .read(master_key::load)?
        .ok_or_else(|| StoreError::Corrupt("the master key record disappeared".into()))?;
    if !record.verifies(&dek) {
        return Err(ServerError::Input(
            "the background server received the wrong key".into(),
        ));
    }
    run::serve(paths, options, store, dek, integrations)
}
