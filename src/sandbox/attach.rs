//! Running the agent's container attached to this terminal: its output to ours, our stdin
//! to it (raw mode on a TTY, restored on every exit path), window resizes, and termination
//! signals forwarded. Returns the container's exit code.

use std::io::{IsTerminal, Read, Write};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, KillContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};

use super::SandboxError;
use super::docker::failed;

/// Puts the terminal in raw mode and restores it when dropped.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    fn enable() -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        Self { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

async fn resize(docker: &Docker, id: &str) {
    if let Some((terminal_size::Width(w), terminal_size::Height(h))) =
        terminal_size::terminal_size()
    {
        let options = ResizeContainerTTYOptionsBuilder::default()
            .w(w.into())
            .h(h.into())
            .build();
        let _ = docker.resize_container_tty(id, options).await;
    }
}

/// Reads our stdin on a plain thread (a blocked read must not hold up the runtime's exit)
/// and hands the bytes over; `None` marks end of input.
fn stdin_reader() -> tokio::sync::mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// A started container whose output is relayed; its input and signals follow in [`wait`].
pub struct Started {
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    pump_out: tokio::task::JoinHandle<()>,
    raw: Option<RawMode>,
}

/// Attaches, starts the container and relays its output.
pub async fn start(docker: &Docker, id: &str, tty: bool) -> Result<Started, SandboxError> {
    let options = AttachContainerOptionsBuilder::default()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let attached = docker
        .attach_container(id, Some(options))
        .await
        .map_err(failed("attach to the agent container"))?;
    let mut output = attached.output;

    let raw = (tty && std::io::stdin().is_terminal()).then(RawMode::enable);
    docker
        .start_container(id, None)
        .await
        .map_err(failed("start the agent container"))?;
    if tty {
        resize(docker, id).await;
    }

    let pump_out = tokio::spawn(async move {
        let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
        while let Some(Ok(chunk)) = output.next().await {
            match chunk {
                LogOutput::StdErr { message } => {
                    let _ = stderr.write_all(&message);
                    let _ = stderr.flush();
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let _ = stdout.write_all(&message);
                    let _ = stdout.flush();
                }
                LogOutput::StdIn { .. } => {}
            }
        }
    });
    Ok(Started {
        input: attached.input,
        pump_out,
        raw,
    })
}

/// Relays our stdin and signals to the started container and waits for its exit code.
pub async fn wait(started: Started, docker: &Docker, id: &str) -> Result<i64, SandboxError> {
    let Started {
        mut input,
        pump_out,
        raw,
    } = started;
    let mut stdin = stdin_reader();
    let pump_in = tokio::spawn(async move {
        while let Some(Some(bytes)) = stdin.recv().await {
            if input.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = input.shutdown().await;
    });

    let mut winch = signal(SignalKind::window_change())
        .map_err(|e| SandboxError::Io("install signal handlers".into(), e))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| SandboxError::Io("install signal handlers".into(), e))?;
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| SandboxError::Io("install signal handlers".into(), e))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| SandboxError::Io("install signal handlers".into(), e))?;
    let mut wait = docker.wait_container(id, None);
    let code = loop {
        let forward = tokio::select! {
            result = wait.next() => {
                break match result {
                    Some(Ok(response)) => response.status_code,
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                    Some(Err(e)) => return Err(failed("wait for the agent container")(e)),
                    None => return Err(SandboxError::Docker {
                        action: "wait for the agent container".into(),
                        message: "the engine ended the wait without an exit code".into(),
                    }),
                };
            }
            _ = winch.recv() => { resize(docker, id).await; None }
            _ = term.recv() => Some("SIGTERM"),
            _ = hup.recv() => Some("SIGHUP"),
            // In raw mode Ctrl-C is a byte the container's terminal turns into SIGINT itself.
            _ = int.recv() => Some("SIGINT"),
        };
        if let Some(signal) = forward {
            let options = KillContainerOptionsBuilder::default()
                .signal(signal)
                .build();
            let _ = docker.kill_container(id, Some(options)).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), pump_out).await;
    pump_in.abort();
    drop(raw);
    Ok(code)
}
