//! `agent-vault server [stop]`.

use clap::{Args, Subcommand};

use super::{Context, output};
use crate::server::{self, LogLevel, MitmPort, ServerOptions};

/// Start the Agent Vault server. On a fresh install, generates a random data encryption key
/// (DEK) and optionally wraps it with a master password.
///
/// Password resolution order: AGENT_VAULT_MASTER_PASSWORD env var, then --password-stdin,
/// then interactive prompt. If no password is provided, runs in passwordless mode (DEK stored
/// unwrapped). The env var is unset from the process immediately after reading.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    /// Host to bind to
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on. Also respects the PORT env var (common on PaaS platforms); the flag takes precedence
    #[arg(long, env = "PORT", default_value_t = 14321)]
    port: u16,
    /// Run in background (detached) mode; logs go to ~/.agent-vault/server.log
    #[arg(short = 'd', long)]
    detach: bool,
    /// Read master password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// Port for the transparent MITM proxy. Enabled by default; set to 0 to disable, or `auto` for any free port (printed on start). Bind failures are non-fatal
    #[arg(long, default_value = "14322", value_parser = MitmPort::parse)]
    mitm_port: MitmPort,
    /// Port for the same proxy behind TLS (certificate from the MITM CA), for agents that reach this server over a network: `vault run` then relays to it so the run's token never crosses the network in clear. 0 (default) leaves it off, `auto` takes any free port
    #[arg(long, env = "AGENT_VAULT_PROXY_TLS_PORT", default_value = "0", value_parser = MitmPort::parse)]
    proxy_tls_port: MitmPort,
    /// Log level: info (default) or debug. Falls back to AGENT_VAULT_LOG_LEVEL
    #[arg(
        long,
        env = "AGENT_VAULT_LOG_LEVEL",
        value_enum,
        ignore_case = true,
        default_value = "info"
    )]
    log_level: LogLevel,

    #[command(subcommand)]
    command: Option<ServerCommand>,
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Stop a running server. Reads the PID from ~/.agent-vault/agent-vault.pid and sends SIGTERM
    Stop,
}

pub fn run(args: ServerArgs, context: &Context) -> anyhow::Result<()> {
    if context.address.is_some() {
        anyhow::bail!("--address is for client commands; the server binds with --host and --port");
    }
    if let Some(ServerCommand::Stop) = args.command {
        let pid = server::stop()?;
        output::success(format!("Server stopped (PID {pid})"));
        return Ok(());
    }
    server::start(ServerOptions {
        host: args.host,
        port: args.port,
        mitm_port: args.mitm_port,
        proxy_tls_port: args.proxy_tls_port,
        log_level: args.log_level,
        detach: args.detach,
        password_stdin: args.password_stdin,
    })?;
    Ok(())
}
