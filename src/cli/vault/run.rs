//! `vault run` and `vault token`: sessions for agents.

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::json;

use super::Target;
use super::discover::agent_or_login;
use super::lease;
use crate::cli::client::segment;
use crate::cli::{Client, Context, PassThroughExit, Refusal, SESSION_TOKEN_ENV, output};
use crate::crypto::SecretString;
use crate::sandbox::env::{ProxyAt, child_env, managed_vars, url_host};
use crate::sandbox::hop::{self, Hop};
use crate::store::VaultRole;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SessionRole {
    Proxy,
    Member,
    Admin,
}

impl From<SessionRole> for VaultRole {
    fn from(role: SessionRole) -> Self {
        match role {
            SessionRole::Proxy => Self::Proxy,
            SessionRole::Member => Self::Member,
            SessionRole::Admin => Self::Admin,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sandbox {
    /// Run the child directly on this machine (cooperative)
    #[value(alias = "host")]
    Process,
    /// Run the child in a Docker container whose only network path is the broker
    Container,
}

#[derive(Args)]
pub struct RunArgs {
    /// Vault role for the session: proxy, member, or admin (--sandbox=container: proxy only,
    /// so the agent can use credentials but never read them)
    #[arg(long, value_enum, default_value = "proxy")]
    pub role: SessionRole,
    /// Session TTL in seconds (300–604800). Default: server default (24h)
    #[arg(long, default_value_t = 0)]
    pub ttl: u64,
    /// Skip HTTPS_PROXY/CA env injection; rely solely on the explicit /proxy/{host}/{path} endpoint
    #[arg(long)]
    pub no_mitm: bool,
    /// Sandbox mode for the child: process (default, cooperative) or container (Docker sandbox)
    #[arg(
        long,
        alias = "isolation",
        env = "AGENT_VAULT_SANDBOX",
        value_enum,
        default_value = "process"
    )]
    pub sandbox: Sandbox,
    /// Override the bundled container image (--sandbox=container only)
    #[arg(long)]
    pub image: Option<String>,
    /// Extra bind mount src:dst[:ro]; repeatable (--sandbox=container only). Host paths are
    /// resolved through symlinks; reserved paths are rejected
    #[arg(long, value_name = "SRC:DST[:ro]")]
    pub mount: Vec<String>,
    /// Keep the agent container after it exits (--sandbox=container only; for debugging)
    #[arg(long)]
    pub keep: bool,
    /// Skip the egress firewall (--sandbox=container only; debug, prints a warning)
    #[arg(long)]
    pub no_firewall: bool,
    /// Share /home/claude/.claude across invocations (--sandbox=container only)
    #[arg(long)]
    pub home_volume_shared: bool,
    /// Memory limit of the container, e.g. 4g or 512m; 0 for none (--sandbox=container only;
    /// default: 3/4 of this machine's memory, at most 8g)
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit of the container, e.g. 2 or 1.5; 0 for none (--sandbox=container only;
    /// default: 3/4 of this machine's cores, at least 1)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Process limit of the container; 0 for none (--sandbox=container only; default 4096)
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Leave the container's root filesystem writable (--sandbox=container only; default:
    /// read-only, with /tmp and the home directory writable)
    #[arg(long)]
    pub writable_root: bool,
    /// Let the agent write the working directory's .git (--sandbox=container only; default:
    /// read-only, since git on the host runs a repository's hooks and config)
    #[arg(long)]
    pub writable_git: bool,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct TokenArgs {
    /// Vault role for the session: proxy, member, or admin
    #[arg(long, value_enum, default_value = "proxy")]
    pub role: SessionRole,
    /// Session TTL in seconds (300–604800). Default: server default (24h)
    #[arg(long, default_value_t = 0)]
    pub ttl: u64,
}

#[derive(Deserialize)]
struct Minted {
    token: String,
    #[serde(default)]
    lease_key: Option<String>,
}

/// `vault token`: prints only the token, so `$(agent-vault vault token)` captures it.
pub async fn token(target: Target, args: TokenArgs) -> anyhow::Result<()> {
    let role = VaultRole::from(args.role);
    let minted: Minted = target
        .client
        .post(
            "/v1/sessions",
            &json!({ "vault": target.vault, "role": role, "ttl_seconds": args.ttl }),
        )
        .await?;
    output::raw_value(&minted.token);
    Ok(())
}

/// The run's session: an agent's own token from the environment, or one minted now from the
/// login (and revoked when the child exits).
struct RunSession {
    client: Client,
    token: SecretString,
    vault: String,
    minted: bool,
    /// Renews a minted token's lease while the run lives.
    _renewal: Option<lease::Renewal>,
}

async fn session(
    context: &Context,
    flag: Option<&str>,
    role: VaultRole,
    ttl: u64,
    sandbox: Sandbox,
) -> anyhow::Result<RunSession> {
    if let Some(agent) = context.agent_client()? {
        if ttl != 0 {
            bail!(
                "--ttl has no effect with {SESSION_TOKEN_ENV} set: that token's lifetime is fixed"
            );
        }
        let (client, vault) = agent_or_login(context, flag)?;
        let path = match &vault {
            Some(v) => format!("/v1/discover?vault={}", segment(v)),
            None => "/v1/discover".to_owned(),
        };
        let found: serde_json::Value = client
            .get(&path)
            .await
            .context("the token in AGENT_VAULT_SESSION_TOKEN was refused")?;
        let vault = found["vault"].as_str().unwrap_or_default().to_owned();
        if sandbox == Sandbox::Container {
            // The container never gets the caller's own token, which may read credentials or
            // reach other vaults (an agent's token, a login): one minted for this run, with
            // the proxy role. A vault-scoped token cannot mint; a proxy-role one already is
            // what the container may hold.
            let held = found["role"].as_str().unwrap_or("instance-level");
            match mint(&agent, &vault, VaultRole::Proxy, 0).await {
                Ok(session) => return Ok(session),
                Err(e)
                    if held == "proxy"
                        && e.downcast_ref::<Refusal>().is_some_and(|r| r.status == 403) => {}
                Err(e) => {
                    return Err(e.context(format!(
                        "{SESSION_TOKEN_ENV} holds a {held} token, and --sandbox=container gives the agent a proxy-role token only; minting one from it failed. Set {SESSION_TOKEN_ENV} to a proxy-role token (`agent-vault vault token --role proxy`), or unset it to mint from your login"
                    )));
                }
            }
        }
        let token = SecretString::new(std::env::var(SESSION_TOKEN_ENV).unwrap_or_default());
        return Ok(RunSession {
            client: agent,
            token,
            vault,
            minted: false,
            _renewal: None,
        });
    }
    let target = Target::resolve(flag, context)?;
    mint(&target.client, &target.vault, role, ttl).await
}

/// A token for this run only, on a lease this process renews while the run lives.
async fn mint(
    minter: &Client,
    vault: &str,
    role: VaultRole,
    ttl: u64,
) -> anyhow::Result<RunSession> {
    let lease_seconds = lease::seconds_from_env()?;
    let minted: Minted = minter
        .post(
            "/v1/sessions",
            &json!({
                "vault": vault,
                "role": role,
                "ttl_seconds": ttl,
                "lease_seconds": lease_seconds,
            }),
        )
        .await?;
    let base = minter.base();
    let renewal = match minted.lease_key {
        Some(key) => Some(lease::keep_alive(
            base,
            SecretString::new(key),
            lease_seconds,
        )?),
        None => {
            output::warn(format!(
                "the server at {base} does not lease run tokens (an older version): if this run is killed, its token stays valid until its TTL"
            ));
            None
        }
    };
    let client = Client::new(base, Some(SecretString::new(minted.token.clone())))?;
    Ok(RunSession {
        client,
        token: SecretString::new(minted.token),
        vault: vault.to_owned(),
        minted: true,
        _renewal: renewal,
    })
}

/// How to reach the broker's proxy and the CA file, when the server runs its MITM proxy.
async fn proxy_setup(
    context: &Context,
    client: &Client,
) -> anyhow::Result<Option<(Hop, std::path::PathBuf)>> {
    match client.get_text("/v1/mitm/ca.pem").await {
        Ok((headers, pem)) => {
            let hop = proxy_hop(client.base(), &headers, &pem)?;
            let paths = context.paths()?;
            paths.ensure_root()?;
            let ca = paths.mitm_ca();
            super::ca_bundle::add(&ca, &pem)?;
            Ok(Some((hop, ca)))
        }
        Err(e) if e.downcast_ref::<Refusal>().is_some_and(|r| r.status == 404) => {
            output::warn(
                "the server runs without its MITM proxy: the command gets only AGENT_VAULT_* and must use the /proxy endpoint",
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The hop to the broker's proxy, from the answer to `GET /v1/mitm/ca.pem`. The proxy port
/// speaks plain HTTP: to a broker off this machine that offers its proxy over TLS
/// (`--proxy-tls-port`), the run's connections go inside TLS, verified against the server's
/// CA; without that offer, the user is told the token will cross the network in the clear.
fn proxy_hop(
    base: &str,
    headers: &reqwest::header::HeaderMap,
    ca_pem: &str,
) -> anyhow::Result<Hop> {
    let port = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
    };
    let host = url_host(base);
    let plain = Hop::new(&host, port("x-mitm-port").unwrap_or(14322), None);
    let Some(remote) = crate::sandbox::env::remote_broker(base) else {
        return Ok(plain);
    };
    match port(hop::TLS_PORT_HEADER) {
        Some(tls_port) => Ok(Hop::new(
            &host,
            tls_port,
            Some(hop::Tls::new(&host, ca_pem)?),
        )),
        None => {
            output::warn(format!(
                "the broker's proxy at {remote} takes this run's token in plain HTTP: on a network you do not trust, have the server also serve it over TLS (`agent-vault server --proxy-tls-port PORT`, which vault run then uses), or reach it through a tunnel (ssh -L) and use a local address"
            ));
            Ok(plain)
        }
    }
}

/// Restarts this process (same pid, same arguments) without the server's secrets when the
/// shell passed any: removing them from the child's environment is not enough, since a child
/// can read its parent's `/proc/<pid>/environ`, which keeps what the process started with.
fn without_server_secrets() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let present: Vec<&str> = crate::sandbox::env::server_secrets()
        .filter(|name| std::env::var_os(name).is_some())
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the agent-vault executable")?;
    let mut restart = std::process::Command::new(exe);
    restart.args(std::env::args_os().skip(1));
    for name in present {
        restart.env_remove(name);
    }
    Err(restart.exec())
        .context("cannot restart vault run without the server's secrets in its environment")
}

/// `vault run -- <command>` in process mode.
pub async fn run(context: &Context, flag: Option<&str>, args: RunArgs) -> anyhow::Result<()> {
    without_server_secrets()?;
    let begun = std::time::Instant::now();
    let container_only = [
        (args.image.is_some(), "--image"),
        (!args.mount.is_empty(), "--mount"),
        (args.keep, "--keep"),
        (args.no_firewall, "--no-firewall"),
        (args.home_volume_shared, "--home-volume-shared"),
        (args.memory.is_some(), "--memory"),
        (args.cpus.is_some(), "--cpus"),
        (args.pids_limit.is_some(), "--pids-limit"),
        (args.writable_root, "--writable-root"),
        (args.writable_git, "--writable-git"),
    ];
    if args.sandbox == Sandbox::Process
        && let Some((_, flag)) = container_only.iter().find(|(set, _)| *set)
    {
        bail!("{flag} only applies to --sandbox=container");
    }
    if args.sandbox == Sandbox::Container && !matches!(args.role, SessionRole::Proxy) {
        let role = VaultRole::from(args.role);
        bail!(
            "--role {role} does not apply to --sandbox=container: the agent in the container gets a proxy-role token, which uses credentials through the broker but cannot read them. Drop --role, or use --sandbox=process for a {role} session"
        );
    }
    let session = session(context, flag, args.role.into(), args.ttl, args.sandbox).await?;
    let outcome = match args.sandbox {
        Sandbox::Process => run_child(context, &session, &args, begun).await,
        Sandbox::Container => run_container(context, &session, &args, begun).await,
    };
    if session.minted {
        // The run's token dies with the run.
        let revoked: anyhow::Result<serde_json::Value> =
            session.client.post("/v1/auth/logout", &json!({})).await;
        if let Err(e) = revoked {
            output::warn(format!(
                "could not revoke the run's token (it expires on its own): {e:#}"
            ));
        }
    }
    match outcome? {
        0 => Ok(()),
        code => Err(PassThroughExit(code).into()),
    }
}

/// Container mode: the broker's CA and proxy port, then the sandbox.
async fn run_container(
    context: &Context,
    session: &RunSession,
    args: &RunArgs,
    begun: std::time::Instant,
) -> anyhow::Result<u8> {
    if args.no_mitm {
        bail!(
            "--no-mitm does not apply to --sandbox=container: the proxy is the sandbox's only way out"
        );
    }
    let (headers, pem) = session.client.get_text("/v1/mitm/ca.pem").await.map_err(|e| match e.downcast_ref::<Refusal>() {
        Some(r) if r.status == 404 => anyhow::anyhow!(
            "--sandbox=container needs the server's MITM proxy, which is disabled; restart the server without --mitm-port 0"
        ),
        _ => e,
    })?;
    let proxy = proxy_hop(session.client.base(), &headers, &pem)?;
    if proxy.tls.is_some() {
        eprintln!(
            "agent-vault: the sandbox's relay reaches the broker's proxy at {}:{} over TLS",
            url_host(session.client.base()),
            proxy.port
        );
    }
    let paths = context.paths()?;
    let claude = claude_auth(session).await;
    let program = std::path::Path::new(&args.command[0]).file_name();
    if claude.is_some() || program.is_some_and(|p| p == "claude") {
        eprintln!("{}", crate::sandbox::claude::notice(claude, &session.vault));
    }
    let started = tokio::sync::Notify::new();
    let run = crate::sandbox::run(crate::sandbox::ContainerRun {
        api_url: session.client.base(),
        proxy,
        ca_pem: &pem,
        token: session.token.expose(),
        vault: &session.vault,
        image: args.image.as_deref(),
        mounts: &args.mount,
        keep: args.keep,
        no_firewall: args.no_firewall,
        home_volume_shared: args.home_volume_shared,
        limits: crate::sandbox::limits::Requested {
            memory: args.memory.clone(),
            cpus: args.cpus,
            pids: args.pids_limit,
            writable_root: args.writable_root,
        },
        claude,
        command: &args.command,
        agent_vault_dir: paths.root(),
        writable_git: args.writable_git,
        started: Some(&started),
    });
    tokio::pin!(run);
    // The report goes out while the agent runs; a run that fails before starting reports nothing.
    let code = tokio::select! {
        code = &mut run => code,
        () = started.notified() => {
            let report = report_start(&session.client, "container", begun.elapsed());
            tokio::join!(&mut run, report).0
        }
    }?;
    Ok(code)
}

/// Tells the server the sandbox started and how long that took (for `/metrics`). Never fails
/// the run: a server that cannot record it (an older one, or unreachable) gets a warning.
async fn report_start(client: &Client, mode: &str, took: std::time::Duration) {
    let body = json!({
        "mode": mode,
        "start_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX)
            .min(crate::api::SANDBOX_MAX_START_MS),
    });
    let sent = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.post::<serde_json::Value>("/v1/sandbox/runs", &body),
    )
    .await;
    let problem = match sent {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    output::warn(format!(
        "the server did not record this run's start in its metrics ({problem}); the run goes on"
    ));
}

/// Whether the vault lets the broker hold Claude Code's key (from the run's own view of the
/// vault; an older server without the fields simply yields none).
async fn claude_auth(session: &RunSession) -> Option<crate::sandbox::claude::ClaudeAuth> {
    let path = format!("/v1/discover?vault={}", segment(&session.vault));
    let found: serde_json::Value = session.client.get(&path).await.ok()?;
    crate::sandbox::claude::ClaudeAuth::from_services(found["services"].as_array()?)
}

async fn run_child(
    context: &Context,
    session: &RunSession,
    args: &RunArgs,
    begun: std::time::Instant,
) -> anyhow::Result<u8> {
    let proxy = if args.no_mitm {
        None
    } else {
        proxy_setup(context, &session.client).await?
    };
    // Through TLS, the agent's proxy is a relay on this machine, alive until the run ends.
    let local_relay = match &proxy {
        Some((hop, _)) if hop.tls.is_some() => Some(
            hop::LocalProxy::start(hop.clone())
                .await
                .context("cannot start the local relay to the broker's TLS proxy")?,
        ),
        _ => None,
    };
    let mut command = tokio::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    for var in managed_vars() {
        command.env_remove(var);
    }
    let env = child_env(
        session.client.base(),
        session.token.expose(),
        &session.vault,
        proxy.as_ref().map(|(hop, ca)| ProxyAt {
            host: local_relay.as_ref().map(|_| hop::LocalProxy::HOST),
            port: local_relay.as_ref().map_or(hop.port, |relay| relay.port),
            ca: ca.as_path(),
        }),
    );
    command.envs(env);
    match &proxy {
        Some((hop, _)) => eprintln!(
            "agent-vault: running {} in vault \"{}\" through the broker at {}:{}{}",
            args.command[0],
            session.vault,
            url_host(session.client.base()),
            hop.port,
            if hop.tls.is_some() { " (TLS)" } else { "" }
        ),
        None => eprintln!(
            "agent-vault: running {} in vault \"{}\"",
            args.command[0], session.vault
        ),
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            output::error(&anyhow::anyhow!("command not found: {}", args.command[0]));
            return Ok(127);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot start {}", args.command[0])),
    };
    let report = report_start(&session.client, "process", begun.elapsed());
    let (status, ()) = tokio::join!(wait_forwarding_signals(&mut child), report);
    Ok(exit_code(status?))
}

/// Waits for the child. Termination signals sent to us go on to the child; Ctrl-C and
/// Ctrl-\ from a terminal already reach it (same process group), so they are only absorbed
/// here — we stay alive to revoke the token after the child exits.
async fn wait_forwarding_signals(
    child: &mut tokio::process::Child,
) -> anyhow::Result<std::process::ExitStatus> {
    use nix::sys::signal::{Signal, kill};
    use tokio::signal::unix::{SignalKind, signal};
    let pid = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
    let from_terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    loop {
        let forward = tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = term.recv() => Some(Signal::SIGTERM),
            _ = hup.recv() => Some(Signal::SIGHUP),
            _ = int.recv() => (!from_terminal).then_some(Signal::SIGINT),
            _ = quit.recv() => (!from_terminal).then_some(Signal::SIGQUIT),
        };
        if let (Some(signal), Some(pid)) = (forward, pid) {
            let _ = kill(pid, signal);
        }
    }
}

/// The child's exit code, or 128 + the signal that ended it (as shells report it).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.saturating_add(signal as u8),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_broker_with_a_tls_port_is_reached_over_tls() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::ca::CertificateAuthority::load_or_create(
            &dir.path().join("ca"),
            &crate::crypto::Key::generate(),
        )
        .unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-mitm-port", 14322.into());
        let plain = proxy_hop("http://vault.example.com:14321", &headers, ca.root_pem()).unwrap();
        assert_eq!((plain.port, plain.tls.is_some()), (14322, false));
        headers.insert(hop::TLS_PORT_HEADER, 14323.into());
        let tls = proxy_hop("https://vault.example.com", &headers, ca.root_pem()).unwrap();
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.tls.is_some()),
            ("vault.example.com", 14323, true)
        );
        // On this machine the plain port stays: nothing crosses a network.
        let local = proxy_hop("http://127.0.0.1:14321", &headers, ca.root_pem()).unwrap();
        assert_eq!((local.port, local.tls.is_some()), (14322, false));
        let v6 = proxy_hop("http://[2001:db8::5]:14321", &headers, ca.root_pem()).unwrap();
        assert_eq!((v6.host.as_str(), v6.tls.is_some()), ("2001:db8::5", true));
    }

    #[test]
    fn signals_map_to_shell_exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(42 << 8)), 42);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(15)), 143);
    }
}
