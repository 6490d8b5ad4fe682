//! `vault run --sandbox=container`: the agent runs in Docker and the broker is its only
//! network path.
//!
//! Stance: the agent's container never holds a capability, runs as a non-root user with
//! `no-new-privileges`, and joins a network namespace owned by a separate helper container
//! that installed the egress rules (IPv4 and IPv6 default DROP; only the relay's two ports on
//! the gateway; no DNS) and proved them with a self-test before the agent starts. The run's
//! network is `--internal` (no route out even without rules), and the relay answers only
//! peers of that network. `~/.agent-vault`, system directories and runtime sockets are never
//! mounted, and the agent's command starts only after the host has verified that the
//! container got exactly the directories that were checked (the start gate). Every
//! resource carries the run's labels, is removed when the run ends, and is pruned once the
//! process that made it is gone. The network and its firewall helper (a "slot") are made
//! ahead of time where possible, by a background maintainer, so a run starts about as fast
//! as a plain `docker run`; a slot serves exactly one run.

mod attach;
pub mod claude;
mod docker;
pub mod env;
mod firewall;
mod gate;
pub mod hop;
mod images;
mod janitor;
pub mod limits;
pub mod maintain;
pub mod mounts;
mod relay;
mod slots;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, KillContainerOptionsBuilder};

pub use images::{BASE_IMAGE_ENV, CLAUDE_CODE_VERSION_ENV};
use janitor::{KEEP_LABEL, Resources, labels};
use relay::{Ports, Relay};
use slots::{Home, Recipe, Slot};

/// Where the CA and the agent's state appear inside the container.
pub const CONTAINER_CA: &str = "/etc/agent-vault/ca.pem";
const CONTAINER_HOME: &str = "/home/claude";
const WORKSPACE: &str = "/workspace";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot reach the Docker engine at {host}: {reason}. Install Docker (https://docs.docker.com/engine/install/) or start it (e.g. `sudo systemctl start docker`); set DOCKER_HOST if it listens elsewhere"
    )]
    DockerUnavailable { host: String, reason: String },
    #[error("Docker could not {action}: {message}")]
    Docker { action: String, message: String },
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    #[error("the server address cannot be relayed: {0}")]
    Address(#[from] crate::target::TargetError),
    #[error("{0}")]
    Image(String),
    #[error("the sandbox firewall did not come up, so nothing was run: {0}")]
    Firewall(String),
    #[error("cannot {0}: {1}")]
    Io(String, std::io::Error),
}

/// What a container run needs from `vault run`.
pub struct ContainerRun<'a> {
    /// The broker's API URL as this machine reaches it.
    pub api_url: &'a str,
    /// The broker's MITM proxy: its port, or its TLS port (see [`hop`]).
    pub proxy: hop::Hop,
    pub ca_pem: &'a str,
    pub token: &'a str,
    pub vault: &'a str,
    pub image: Option<&'a str>,
    pub mounts: &'a [String],
    pub keep: bool,
    pub no_firewall: bool,
    pub home_volume_shared: bool,
    pub limits: limits::Requested,
    /// How the vault's service for Claude Code's API authenticates, if it has one.
    pub claude: Option<claude::ClaudeAuth>,
    pub command: &'a [String],
    /// `~/.agent-vault`, never to be mounted.
    pub agent_vault_dir: &'a Path,
    /// Leave the workspace's `.git` writable (see [`mounts::git_guard`]).
    pub writable_git: bool,
    /// Notified once the agent's command is let run (its container started, mounts checked).
    pub started: Option<&'a tokio::sync::Notify>,
}

fn run_id() -> String {
    hex::encode(crate::crypto::random_bytes::<8>())
}

/// The agent runs as the invoking user's uid/gid (so workspace files stay theirs), or as
/// 1000 when invoked as root: never as root.
fn agent_user() -> (u32, u32) {
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    if uid == 0 { (1000, 1000) } else { (uid, gid) }
}

/// Runs the command in the sandbox and returns its exit code.
pub async fn run(spec: ContainerRun<'_>) -> Result<u8, SandboxError> {
    // Everything that can be refused locally is refused before Docker is touched. The
    // sources stay open until the run ends: they are what the container is checked against.
    let began = std::time::SystemTime::now();
    let policy = mounts::Policy::new(spec.agent_vault_dir);
    let cwd = std::env::current_dir()
        .map_err(|e| SandboxError::Io("read the working directory".into(), e))?;
    let workspace = policy.check(&cwd, "the working directory")?;
    let user_mounts = spec
        .mounts
        .iter()
        .map(|m| mounts::parse(m, &policy))
        .collect::<Result<Vec<_>, _>>()?;
    let limits = spec.limits.resolve()?;
    let named = std::iter::once(("the working directory", &workspace))
        .chain(user_mounts.iter().map(|m| ("--mount source", &m.source)));
    for (what, source) in named.filter(|(_, s)| s.through_symlink) {
        eprintln!(
            "agent-vault: {what} is reached through a symlink: mounting {}",
            source.real.display()
        );
    }
    // Every directory the agent may write: the workspace and writable --mount sources. Each
    // gets its `.git` and `agent-vault.json` mounted read-only, and is checked after the run.
    let writable: Vec<(&mounts::Source, &str)> = std::iter::once((&workspace, WORKSPACE))
        .chain(
            user_mounts
                .iter()
                .filter(|m| !m.read_only)
                .map(|m| (&m.source, m.target.as_str())),
        )
        .collect();
    let mut guards = Vec::new();
    // What the agent could not write, hence need not be named after the run.
    let mut guarded: Vec<PathBuf> = Vec::new();
    for (source, target) in &writable {
        let git_guard = match spec.writable_git {
            true => None,
            false => mounts::git_guard(source, target, &policy)?,
        };
        let project_file_guard = mounts::project_file_guard(source, target, &policy)?;
        guarded.extend(git_guard.as_ref().map(|_| source.real.join(".git")));
        guarded.extend(
            project_file_guard
                .as_ref()
                .map(|_| source.real.join(crate::paths::PROJECT_FILE)),
        );
        guards.extend(git_guard.into_iter().chain(project_file_guard));
    }
    let checked_after: Vec<PathBuf> = writable.iter().map(|(s, _)| s.real.clone()).collect();
    let user_mounts: Vec<mounts::Mount> = user_mounts.into_iter().chain(guards).collect();

    let broker = crate::target::Target::from_url(spec.api_url)?;
    let api = api_hop(&broker)?;
    let docker = docker::connect().await?;
    let args = images::build_args();
    let (agent_image, image_entrypoint) = match spec.image {
        Some(image) => (image.to_owned(), images::entrypoint(&docker, image).await?),
        None => (
            images::ensure(&docker, &images::AGENT, &args).await?,
            Vec::new(),
        ),
    };
    let firewall_image = match spec.no_firewall {
        true => None,
        false => Some(images::ensure(&docker, &images::FIREWALL, &args).await?),
    };

    let mut resources = Resources {
        keep_agent: spec.keep,
        ..Resources::default()
    };
    let plan = Plan {
        spec: &spec,
        workspace: &workspace,
        user_mounts: &user_mounts,
        agent_image: &agent_image,
        image_entrypoint: &image_entrypoint,
        firewall_image: firewall_image.as_deref(),
        limits: &limits,
        user: agent_user(),
        tty: std::io::stdin().is_terminal(),
        api: &api,
    };
    let result = async {
        // A signal during the setup ends it; once the agent runs, signals are its own
        // (`attach::wait` forwards them), so it can finish and its exit code is the run's.
        let running = tokio::select! {
            running = plan.start(&docker, &mut resources) => running?,
            _ = interrupted() => return Err(SandboxError::Io(
                "finish setting up".into(),
                std::io::Error::other("interrupted"),
            )),
        };
        running.wait(&docker).await
    }
    .await;
    if resources.keep_agent
        && let Some(agent) = &resources.agent
    {
        eprintln!(
            "agent-vault: kept the agent container {agent}{}; remove it with `docker rm {agent}`{}",
            resources
                .volume
                .as_deref()
                .map(|v| format!(" and its home volume {v}"))
                .unwrap_or_default(),
            resources
                .volume
                .as_deref()
                .map(|v| format!(" && docker volume rm {v}"))
                .unwrap_or_default()
        );
    }
    resources.remove(&docker).await;
    if result.is_ok() {
        report_planted(&checked_after, began, &guarded);
    }
    result
}

/// Names the git directories and `agent-vault.json` files the agent made or changed in the
/// directories it could write: git on the host runs the first's hooks and what their config
/// names, and the second choose the vault of later commands (the next sandbox's credentials
/// included), so they deserve a look before you use git or agent-vault there.
fn report_planted(roots: &[PathBuf], since: std::time::SystemTime, guarded: &[PathBuf]) {
    let mut planted = mounts::planted_since(roots, since, 200_000);
    planted.git_dirs.retain(|dir| !guarded.contains(dir));
    planted.project_files.retain(|file| !guarded.contains(file));
    let mut warnings: Vec<String> = Vec::new();
    for dir in &planted.git_dirs {
        warnings.push(format!(
            "the agent made or changed git metadata at {}: git on this machine runs its hooks and what its config names (core.fsmonitor, core.hooksPath, core.pager, filters) when used there; check them first",
            shown(dir)
        ));
    }
    for file in &planted.project_files {
        warnings.push(format!(
            "the agent made or changed {}: it chooses the vault of agent-vault commands run in {} and below (the next `vault run` there included); delete it unless you meant it",
            shown(file),
            file.parent().map(shown).unwrap_or_default()
        ));
    }
    for dir in &planted.unreadable {
        warnings.push(format!(
            "the agent changed {} so that it cannot be listed: look inside before using git or agent-vault there",
            shown(dir)
        ));
    }
    if planted.partial {
        warnings.push("the workspace is too large to check every directory for git metadata or agent-vault.json files the agent may have written".to_owned());
    }
    if warnings.is_empty() {
        return;
    }
    // The agent's last output may have left the terminal hiding text (black on black,
    // concealed, the alternate screen): back to plain before these are printed.
    if std::io::stderr().is_terminal() {
        eprint!("\x1b[0m\x1b[?1049l\x1b[?25h");
    }
    for warning in warnings {
        eprintln!("agent-vault: warning: {warning}");
    }
}

/// A path the agent named, safe to print: a name may hold escape sequences, line breaks or
/// direction controls that would erase, forge or reorder the warnings around it.
fn shown(path: &Path) -> String {
    crate::text::for_display(&path.display().to_string()).into_owned()
}

/// The relay's hop to the broker's API: inside TLS for an `https://` address (the agent
/// speaks plain HTTP to the relay, which only the run's own network reaches).
fn api_hop(broker: &crate::target::Target) -> Result<hop::Hop, SandboxError> {
    let tls = match broker.is_https() {
        true => Some(hop::Tls::to_api(broker.bare_host()).map_err(|e| {
            SandboxError::Io(
                "set up TLS to the server's API".into(),
                std::io::Error::other(e.to_string()),
            )
        })?),
        false => None,
    };
    Ok(hop::Hop::new(broker.bare_host(), broker.port(), tls))
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (while setting up: the agent's own signals are
/// handled later).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
}

/// The agent's container, started and through its gate; the relay and the gate live as long.
struct Running {
    started: attach::Started,
    agent: String,
    _relay: Relay,
    _gate: std::fs::File,
}

impl Running {
    /// Waits for the agent, relaying stdin and signals to it; its exit code.
    async fn wait(self, docker: &Docker) -> Result<u8, SandboxError> {
        let code = attach::wait(self.started, docker, &self.agent).await?;
        Ok(u8::try_from(code).unwrap_or(if code < 0 { 1 } else { 255 }))
    }
}

/// One run, decided: what to start. Everything started is recorded in [`Resources`] at
/// once, so it is removed on every exit path.
struct Plan<'a> {
    spec: &'a ContainerRun<'a>,
    workspace: &'a mounts::Source,
    user_mounts: &'a [mounts::Mount],
    agent_image: &'a str,
    image_entrypoint: &'a [String],
    firewall_image: Option<&'a str>,
    limits: &'a limits::Limits,
    user: (u32, u32),
    tty: bool,
    /// The broker's API, which the relay forwards to (its proxy is in `spec`).
    api: &'a hop::Hop,
}

impl Plan<'_> {
    /// Sets the run up, up to letting the agent's command through its gate.
    async fn start(
        &self,
        docker: &Docker,
        resources: &mut Resources,
    ) -> Result<Running, SandboxError> {
        let (slot, relay, run_dir, agent, taken) =
            match self.take_ready_slot(docker, resources).await? {
                Some((slot, relay, run_dir, agent)) => (slot, relay, run_dir, agent, true),
                None => {
                    let (slot, relay, run_dir, agent) = self.make_slot(docker, resources).await?;
                    (slot, relay, run_dir, agent, false)
                }
            };
        // A taken slot is marked used while the container starts; its command waits at the
        // gate until both that and the mount check are done.
        let (started, used) = tokio::join!(attach::start(docker, &agent, self.tty), async {
            match taken {
                true => slots::mark_used(docker, &slot).await,
                false => Ok(()),
            }
        });
        let started = started?;
        if let Err(err) = async { used.and(self.verify_mounts(docker, &agent).await) }.await {
            // It waits at the gate: kill it before anything else, and keep nothing.
            let kill = KillContainerOptionsBuilder::default()
                .signal("KILL")
                .build();
            let _ = docker.kill_container(&agent, Some(kill)).await;
            resources.keep_agent = false;
            return Err(err);
        }
        let gate = gate::open(&run_dir.gate())
            .map_err(|e| SandboxError::Io("open the start gate".into(), e))?;
        if let Some(started) = self.spec.started {
            started.notify_one();
        }
        // Off this run's path: prune what dead runs left, make the next run's slot.
        maintain::spawn(None);
        Ok(Running {
            started,
            agent,
            _relay: relay,
            _gate: gate,
        })
    }

    fn relay_target(&self, subnet: ipnet::IpNet) -> relay::Target {
        relay::Target {
            allowed: subnet,
            api: self.api.clone(),
            proxy: self.spec.proxy.clone(),
        }
    }

    /// Claims a slot made ahead of time, if one is ready: the agent container is created
    /// under the slot's name, which only one run can do.
    async fn take_ready_slot(
        &self,
        docker: &Docker,
        resources: &mut Resources,
    ) -> Result<Option<(Slot, Relay, gate::RunDir, String)>, SandboxError> {
        let Some(firewall) = self.firewall_image else {
            return Ok(None);
        };
        if self.spec.keep || self.spec.home_volume_shared || maintain::warm() == 0 {
            return Ok(None);
        }
        for slot in slots::ready(docker, firewall, self.user).await {
            let ports = Ports {
                canary: 0,
                ..slot.ports
            };
            let target = Some(self.relay_target(slot.subnet));
            let Ok(relay) = Relay::start(slot.gateway, ports, target).await else {
                // Its ports are busy: another run is taking it.
                continue;
            };
            // Creating the folder fails if another run of this machine took the slot.
            let Ok(run_dir) = gate::RunDir::create(&slot.id, self.spec.ca_pem, self.user) else {
                continue;
            };
            match self.create_agent(docker, &slot, &relay, &run_dir).await {
                Ok(agent) => {
                    resources.id = Some(slot.id.clone());
                    resources.network = Some(slot.network.clone());
                    resources.helper = Some(slot.helper.clone());
                    resources.volume = Some(slot.home_volume.clone());
                    resources.run_dir = Some(run_dir.clone());
                    resources.agent = Some(agent.clone());
                    return Ok(Some((slot, relay, run_dir, agent)));
                }
                Err(e) if slots::is_name_conflict(&e) => run_dir.remove(),
                Err(e) => {
                    run_dir.remove();
                    return Err(self.agent_failed(e));
                }
            }
        }
        Ok(None)
    }

    /// Makes this run's own slot (no ready one, or one that cannot be pooled).
    async fn make_slot(
        &self,
        docker: &Docker,
        resources: &mut Resources,
    ) -> Result<(Slot, Relay, gate::RunDir, String), SandboxError> {
        let id = run_id();
        resources.id = Some(id.clone());
        if self.firewall_image.is_none() {
            eprintln!(
                "agent-vault: WARNING: --no-firewall: the agent's egress is NOT restricted; only well-behaved clients use the broker. Debugging only."
            );
        }
        let recipe = Recipe {
            id: &id,
            firewall_image: self.firewall_image,
            user: self.user,
            home: match self.spec.home_volume_shared {
                true => Home::Shared,
                false => Home::PerRun {
                    keep: self.spec.keep,
                },
            },
            ahead: false,
        };
        let target = |subnet| Some(self.relay_target(subnet));
        let (slot, relay) = slots::make(docker, recipe, target, resources).await?;
        if self.firewall_image.is_none() {
            slots::give_home_to(docker, self.agent_image, &slot, self.user).await;
        }
        let run_dir = gate::RunDir::create(&id, self.spec.ca_pem, self.user)
            .map_err(|e| SandboxError::Io("create the run's folder".into(), e))?;
        resources.run_dir = Some(run_dir.clone());
        let agent = self
            .create_agent(docker, &slot, &relay, &run_dir)
            .await
            .map_err(|e| self.agent_failed(e))?;
        resources.agent = Some(agent.clone());
        Ok((slot, relay, run_dir, agent))
    }

    fn agent_failed(&self, e: bollard::errors::Error) -> SandboxError {
        docker::failed(format!(
            "create the agent container from {}",
            self.agent_image
        ))(e)
    }

    /// Creates (does not start) the agent's container in `slot`.
    async fn create_agent(
        &self,
        docker: &Docker,
        slot: &Slot,
        relay: &Relay,
        run_dir: &gate::RunDir,
    ) -> Result<String, bollard::errors::Error> {
        let spec = self.spec;
        let address = format!("http://{}:{}", slot.gateway, relay.api_port);
        let mut environment: Vec<String> = env::child_env(
            &address,
            spec.token,
            spec.vault,
            Some(env::ProxyAt {
                host: None,
                port: relay.proxy_port,
                ca: Path::new(CONTAINER_CA),
            }),
        )
        .into_iter()
        .chain(claude::environment(
            spec.claude,
            &format!("{CONTAINER_HOME}/.claude"),
        ))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        environment.push(format!("HOME={CONTAINER_HOME}"));
        if self.tty {
            environment.push(format!(
                "TERM={}",
                std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into())
            ));
        }
        let mut binds = vec![
            format!("{}:{WORKSPACE}", self.workspace.real.display()),
            format!("{}:{CONTAINER_CA}:ro", run_dir.ca().display()),
            format!("{}:{}", run_dir.gate().display(), gate::GATE_IN_CONTAINER),
            format!("{}:{CONTAINER_HOME}/.claude", slot.home_volume),
        ];
        binds.extend(self.user_mounts.iter().map(mounts::Mount::bind));
        let mut agent_labels = labels(&slot.id, "agent");
        agent_labels.insert(slots::SLOT_LABEL.into(), "1".into());
        if spec.keep {
            agent_labels.insert(KEEP_LABEL.into(), "1".into());
        }
        let network_mode = match self.firewall_image {
            Some(_) => format!("container:{}", slot.helper),
            None => slot.network.clone(),
        };
        let (entrypoint, cmd) = gate::wrap(self.image_entrypoint, spec.command);
        let (uid, gid) = self.user;
        let created = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&slots::agent_name(&slot.id))
                        .build(),
                ),
                ContainerCreateBody {
                    image: Some(self.agent_image.to_owned()),
                    entrypoint: Some(entrypoint),
                    cmd: Some(cmd),
                    env: Some(environment),
                    user: Some(format!("{uid}:{gid}")),
                    working_dir: Some(WORKSPACE.into()),
                    tty: Some(self.tty),
                    open_stdin: Some(true),
                    stdin_once: Some(true),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    labels: Some(agent_labels),
                    host_config: Some(HostConfig {
                        network_mode: Some(network_mode),
                        cap_drop: Some(vec!["ALL".into()]),
                        security_opt: Some(vec!["no-new-privileges".into()]),
                        init: Some(true),
                        binds: Some(binds),
                        memory: self.limits.memory_bytes,
                        // No swap beyond the memory limit.
                        memory_swap: self.limits.memory_bytes,
                        nano_cpus: self.limits.nano_cpus,
                        pids_limit: Some(self.limits.pids.unwrap_or(-1)),
                        readonly_rootfs: Some(self.limits.read_only_root),
                        tmpfs: self
                            .limits
                            .read_only_root
                            .then(|| limits::tmpfs(CONTAINER_HOME, self.user)),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await?;
        Ok(created.id)
    }

    /// What the started container has at each host-path target must be the object checked.
    async fn verify_mounts(&self, docker: &Docker, agent: &str) -> Result<(), SandboxError> {
        let inspected = docker
            .inspect_container(agent, None)
            .await
            .map_err(docker::failed("inspect the agent container"))?;
        let pid = inspected
            .state
            .and_then(|s| s.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0)
            .ok_or_else(|| SandboxError::Docker {
                action: "start the agent container".into(),
                message: "it exited at once (does the image have /bin/sh? the sandbox's start gate needs it)".into(),
            })?;
        let binds: Vec<(&str, &mounts::Source)> = std::iter::once((WORKSPACE, self.workspace))
            .chain(
                self.user_mounts
                    .iter()
                    .map(|m| (m.target.as_str(), &m.source)),
            )
            .collect();
        mounts::verify(pid, &binds)?;
        Ok(())
    }
}

/// The resolved `~/.agent-vault` for mount checks.
pub fn agent_vault_dir(paths: &crate::paths::Paths) -> PathBuf {
    paths.root().to_owned()
}
