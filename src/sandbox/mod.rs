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
//! resource carries the run's labels, is removed when the run ends, and is pruned by the
//! next run once the process that made it is gone.

mod attach;
pub mod claude;
mod docker;
pub mod env;
mod firewall;
mod gate;
mod images;
mod janitor;
pub mod limits;
pub mod mounts;
mod relay;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptionsBuilder, KillContainerOptionsBuilder};

pub use images::{BASE_IMAGE_ENV, CLAUDE_CODE_VERSION_ENV};
use janitor::{KEEP_LABEL, Resources, SHARED_HOME_VOLUME, labels};

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
    /// The broker's MITM proxy port.
    pub proxy_port: u16,
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

    let docker = docker::connect().await?;
    janitor::prune(&docker).await;
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
        id: run_id(),
        workspace: &workspace,
        user_mounts: &user_mounts,
        agent_image: &agent_image,
        image_entrypoint: &image_entrypoint,
        firewall_image: firewall_image.as_deref(),
        limits: &limits,
    };
    let result = tokio::select! {
        result = plan.execute(&docker, &mut resources) => result,
        _ = interrupted() => Err(SandboxError::Io("finish setting up".into(), std::io::Error::other("interrupted"))),
    };
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
    result
}

/// Resolves on Ctrl-C or SIGTERM (while setting up: the agent's own signals are handled later).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// One run, decided: what to create. Everything created is recorded in [`Resources`] at
/// once, so it is removed on every exit path.
struct Plan<'a> {
    spec: &'a ContainerRun<'a>,
    id: String,
    workspace: &'a mounts::Source,
    user_mounts: &'a [mounts::Mount],
    agent_image: &'a str,
    image_entrypoint: &'a [String],
    firewall_image: Option<&'a str>,
    limits: &'a limits::Limits,
}

/// The run network's gateway (where the relay listens) and subnet (who may use it).
async fn create_network(
    docker: &Docker,
    name: &str,
    id: &str,
    internal: bool,
) -> Result<(IpAddr, ipnet::IpNet), SandboxError> {
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(labels(id, "network")),
            ..Default::default()
        })
        .await
        .map_err(docker::failed("create the run's network"))?;
    let inspected = docker
        .inspect_network(name, None)
        .await
        .map_err(docker::failed("inspect the run's network"))?;
    let config = inspected
        .ipam
        .and_then(|ipam| ipam.config)
        .and_then(|configs| {
            configs.into_iter().find_map(|c| {
                let gateway: IpAddr = c.gateway?.parse().ok()?;
                let subnet: ipnet::IpNet = c.subnet?.parse().ok()?;
                gateway.is_ipv4().then_some((gateway, subnet))
            })
        });
    config.ok_or_else(|| SandboxError::Docker {
        action: "find the run network's gateway".into(),
        message: "the network has no IPv4 gateway and subnet".into(),
    })
}

impl Plan<'_> {
    async fn execute(
        &self,
        docker: &Docker,
        resources: &mut Resources,
    ) -> Result<u8, SandboxError> {
        let (spec, id) = (self.spec, self.id.as_str());
        // The network: internal (no route out) when the firewall runs.
        let network = format!("agent-vault-{id}");
        resources.network = Some(network.clone());
        let (gateway, subnet) =
            create_network(docker, &network, id, self.firewall_image.is_some()).await?;

        let broker_host = env::url_host(spec.api_url);
        let api_port = spec
            .api_url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(14321);
        let relay = relay::Relay::start(
            gateway,
            subnet,
            broker_host.trim_matches(['[', ']']),
            api_port,
            spec.proxy_port,
        )
        .await
        .map_err(|e| {
            SandboxError::Io(format!("listen on the run network's gateway {gateway}"), e)
        })?;

        let (uid, gid) = agent_user();
        let run_dir = gate::RunDir::create(id, spec.ca_pem, (uid, gid))
            .map_err(|e| SandboxError::Io("create the run's folder".into(), e))?;
        let (ca_file, gate_file) = (run_dir.ca(), run_dir.gate());
        resources.run_dir = Some(run_dir);

        let home_volume = self.home_volume(docker, resources).await?;
        let network_mode = match self.firewall_image {
            Some(image) => {
                let helper = firewall::start(
                    docker,
                    id,
                    image,
                    &network,
                    gateway,
                    &relay,
                    &home_volume,
                    (uid, gid),
                )
                .await;
                let helper = match helper {
                    Ok(helper) => helper,
                    Err((helper, err)) => {
                        resources.helper = helper;
                        return Err(err);
                    }
                };
                resources.helper = Some(helper.clone());
                format!("container:{helper}")
            }
            None => {
                eprintln!(
                    "agent-vault: WARNING: --no-firewall: the agent's egress is NOT restricted; only well-behaved clients use the broker. Debugging only."
                );
                network.clone()
            }
        };

        let address = format!("http://{gateway}:{}", relay.api_port);
        let mut environment: Vec<String> = env::child_env(
            &address,
            spec.token,
            spec.vault,
            Some((relay.proxy_port, Path::new(CONTAINER_CA))),
        )
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        environment.push(format!("HOME={CONTAINER_HOME}"));
        let claude_config = format!("{CONTAINER_HOME}/.claude");
        environment.extend(
            claude::environment(spec.claude, &claude_config)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        let tty = std::io::stdin().is_terminal();
        if tty {
            environment.push(format!(
                "TERM={}",
                std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into())
            ));
        }
        let mut binds = vec![
            format!("{}:{WORKSPACE}", self.workspace.real.display()),
            format!("{}:{CONTAINER_CA}:ro", ca_file.display()),
            format!("{}:{}", gate_file.display(), gate::GATE_IN_CONTAINER),
            format!("{home_volume}:{CONTAINER_HOME}/.claude"),
        ];
        binds.extend(self.user_mounts.iter().map(mounts::Mount::bind));
        let mut agent_labels = labels(id, "agent");
        if spec.keep {
            agent_labels.insert(KEEP_LABEL.into(), "1".into());
        }
        let (entrypoint, cmd) = gate::wrap(self.image_entrypoint, spec.command);
        let created = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&format!("agent-vault-agent-{id}"))
                        .build(),
                ),
                ContainerCreateBody {
                    image: Some(self.agent_image.to_owned()),
                    entrypoint: Some(entrypoint),
                    cmd: Some(cmd),
                    env: Some(environment),
                    user: Some(format!("{uid}:{gid}")),
                    working_dir: Some(WORKSPACE.into()),
                    tty: Some(tty),
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
                            .then(|| limits::tmpfs(CONTAINER_HOME, (uid, gid))),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .map_err(docker::failed(format!(
                "create the agent container from {}",
                self.agent_image
            )))?;
        let agent = created.id;
        resources.agent = Some(agent.clone());

        let started = attach::start(docker, &agent, tty).await?;
        if let Err(err) = self.verify_mounts(docker, &agent).await {
            // It waits at the gate: kill it before anything else, and keep nothing.
            let kill = KillContainerOptionsBuilder::default()
                .signal("KILL")
                .build();
            let _ = docker.kill_container(&agent, Some(kill)).await;
            resources.keep_agent = false;
            return Err(err);
        }
        let _gate = gate::open(&gate_file)
            .map_err(|e| SandboxError::Io("open the start gate".into(), e))?;
        let code = attach::wait(started, docker, &agent).await?;
        drop(relay);
        Ok(u8::try_from(code).unwrap_or(if code < 0 { 1 } else { 255 }))
    }

    /// The per-run home volume, or the shared one with `--home-volume-shared`.
    async fn home_volume(
        &self,
        docker: &Docker,
        resources: &mut Resources,
    ) -> Result<String, SandboxError> {
        let id = self.id.as_str();
        if self.spec.home_volume_shared {
            let mut shared_labels =
                HashMap::from([("dev.agent-vault.shared".to_owned(), "1".to_owned())]);
            shared_labels.extend(labels(id, "home"));
            shared_labels.remove(janitor::RUN_LABEL);
            docker
                .create_volume(VolumeCreateRequest {
                    name: Some(SHARED_HOME_VOLUME.into()),
                    labels: Some(shared_labels),
                    ..Default::default()
                })
                .await
                .map_err(docker::failed("create the shared home volume"))?;
            return Ok(SHARED_HOME_VOLUME.to_owned());
        }
        let name = format!("agent-vault-home-{id}");
        let mut volume_labels = labels(id, "home");
        if self.spec.keep {
            volume_labels.insert(KEEP_LABEL.into(), "1".into());
        }
        resources.volume = Some(name.clone());
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(volume_labels),
                ..Default::default()
            })
            .await
            .map_err(docker::failed("create the run's home volume"))?;
        Ok(name)
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
