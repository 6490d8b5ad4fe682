//! `vault run --sandbox=container`: the agent runs in Docker and the broker is its only
//! network path.
//!
//! Stance: the agent's container never holds a capability, runs as a non-root user with
//! `no-new-privileges`, and joins a network namespace owned by a separate helper container
//! that installed the egress rules (IPv4 and IPv6 default DROP; only the relay's two ports on
//! the gateway; no DNS) and proved them with a self-test before the agent starts. The run's
//! network is `--internal` (no route out even without rules). `~/.agent-vault` and Docker
//! sockets are never mounted. Every resource carries the run's labels, is removed when the
//! run ends, and is pruned later if a run crashed.

mod attach;
mod docker;
pub mod env;
mod images;
mod janitor;
pub mod mounts;
mod relay;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;

pub use images::{BASE_IMAGE_ENV, CLAUDE_CODE_VERSION_ENV};
use janitor::{KEEP_LABEL, Resources, SHARED_HOME_VOLUME, labels};

/// Where the CA and the agent's state appear inside the container.
pub const CONTAINER_CA: &str = "/etc/agent-vault/ca.pem";
const CONTAINER_HOME: &str = "/home/claude";
const FIREWALL_READY: Duration = Duration::from_secs(60);

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
    // Everything that can be refused locally is refused before Docker is touched.
    let forbidden = mounts::Forbidden::new(spec.agent_vault_dir);
    let cwd = std::env::current_dir()
        .map_err(|e| SandboxError::Io("read the working directory".into(), e))?;
    let workspace = forbidden.check(&cwd, "the working directory")?;
    let user_mounts = spec
        .mounts
        .iter()
        .map(|m| mounts::parse(m, &forbidden))
        .collect::<Result<Vec<_>, _>>()?;

    let docker = docker::connect().await?;
    janitor::prune(&docker).await;
    let args = images::build_args();
    let agent_image = match spec.image {
        Some(image) => image.to_owned(),
        None => images::ensure(&docker, &images::AGENT, &args).await?,
    };
    let firewall_image = match spec.no_firewall {
        true => None,
        false => Some(images::ensure(&docker, &images::FIREWALL, &args).await?),
    };

    let mut resources = Resources {
        keep_agent: spec.keep,
        ..Resources::default()
    };
    let id = run_id();
    let result = tokio::select! {
        result = run_inner(&docker, &spec, &id, &workspace, &user_mounts, &agent_image, firewall_image.as_deref(), &mut resources) => result,
        _ = interrupted() => Err(SandboxError::Io("finish setting up".into(), std::io::Error::other("interrupted"))),
    };
    if spec.keep
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

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    docker: &Docker,
    spec: &ContainerRun<'_>,
    id: &str,
    workspace: &Path,
    user_mounts: &[mounts::Mount],
    agent_image: &str,
    firewall_image: Option<&str>,
    resources: &mut Resources,
) -> Result<u8, SandboxError> {
    // The network: internal (no route out) when the firewall runs.
    let network = format!("agent-vault-{id}");
    docker
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            driver: Some("bridge".into()),
            internal: Some(firewall_image.is_some()),
            labels: Some(labels(id, "network")),
            ..Default::default()
        })
        .await
        .map_err(docker::failed("create the run's network"))?;
    resources.network = Some(network.clone());
    let inspected = docker
        .inspect_network(&network, None)
        .await
        .map_err(docker::failed("inspect the run's network"))?;
    let gateway: IpAddr = inspected
        .ipam
        .and_then(|ipam| ipam.config)
        .and_then(|configs| configs.into_iter().find_map(|c| c.gateway))
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| SandboxError::Docker {
            action: "find the run network's gateway".into(),
            message: "the network has no IPv4 gateway".into(),
        })?;

    let broker_host = env::url_host(spec.api_url);
    let api_port = spec
        .api_url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(14321);
    let relay = relay::Relay::start(
        gateway,
        broker_host.trim_matches(['[', ']']),
        api_port,
        spec.proxy_port,
    )
    .await
    .map_err(|e| SandboxError::Io(format!("listen on the run network's gateway {gateway}"), e))?;

    // The CA, readable by the agent's user, outside ~/.agent-vault.
    let ca_file = std::env::temp_dir().join(format!("agent-vault-ca-{id}.pem"));
    std::fs::write(&ca_file, spec.ca_pem)
        .map_err(|e| SandboxError::Io(format!("write {}", ca_file.display()), e))?;
    resources.ca_file = Some(ca_file.clone());

    let home_volume = if spec.home_volume_shared {
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
        SHARED_HOME_VOLUME.to_owned()
    } else {
        let name = format!("agent-vault-home-{id}");
        let mut volume_labels = labels(id, "home");
        if spec.keep {
            volume_labels.insert(KEEP_LABEL.into(), "1".into());
        }
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(volume_labels),
                ..Default::default()
            })
            .await
            .map_err(docker::failed("create the run's home volume"))?;
        resources.volume = Some(name.clone());
        name
    };
    let (uid, gid) = agent_user();

    let network_mode = match firewall_image {
        Some(image) => {
            let helper = start_firewall(
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
    let tty = std::io::stdin().is_terminal();
    if tty {
        environment.push(format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into())
        ));
    }
    let mut binds = vec![
        format!("{}:/workspace", workspace.display()),
        format!("{}:{CONTAINER_CA}:ro", ca_file.display()),
        format!("{home_volume}:{CONTAINER_HOME}/.claude"),
    ];
    binds.extend(user_mounts.iter().map(mounts::Mount::bind));
    let mut agent_labels = labels(id, "agent");
    if spec.keep {
        agent_labels.insert(KEEP_LABEL.into(), "1".into());
    }
    let created = docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&format!("agent-vault-agent-{id}"))
                    .build(),
            ),
            ContainerCreateBody {
                image: Some(agent_image.to_owned()),
                cmd: Some(spec.command.to_vec()),
                env: Some(environment),
                user: Some(format!("{uid}:{gid}")),
                working_dir: Some("/workspace".into()),
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
                    pids_limit: Some(4096),
                    binds: Some(binds),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(docker::failed(format!(
            "create the agent container from {agent_image}"
        )))?;
    resources.agent = Some(created.id.clone());
    let code = attach::run_attached(docker, &created.id, tty).await?;
    drop(relay);
    Ok(u8::try_from(code).unwrap_or(if code < 0 { 1 } else { 255 }))
}

/// Starts the firewall helper and waits for its self-test. On failure returns the helper's
/// id (for cleanup) with an error carrying its log.
#[allow(clippy::too_many_arguments)]
async fn start_firewall(
    docker: &Docker,
    id: &str,
    image: &str,
    network: &str,
    gateway: IpAddr,
    relay: &relay::Relay,
    home_volume: &str,
    (uid, gid): (u32, u32),
) -> Result<String, (Option<String>, SandboxError)> {
    let created = docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&format!("agent-vault-firewall-{id}"))
                    .build(),
            ),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                cmd: Some(vec![
                    gateway.to_string(),
                    relay.api_port.to_string(),
                    relay.proxy_port.to_string(),
                    relay.canary_port.to_string(),
                ]),
                env: Some(vec![format!("AGENT_UID={uid}"), format!("AGENT_GID={gid}")]),
                labels: Some(labels(id, "firewall")),
                host_config: Some(HostConfig {
                    network_mode: Some(network.to_owned()),
                    cap_drop: Some(vec!["ALL".into()]),
                    cap_add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into(), "CHOWN".into()]),
                    security_opt: Some(vec!["no-new-privileges".into()]),
                    sysctls: Some(HashMap::from([
                        ("net.ipv6.conf.all.disable_ipv6".to_owned(), "1".to_owned()),
                        (
                            "net.ipv6.conf.default.disable_ipv6".to_owned(),
                            "1".to_owned(),
                        ),
                    ])),
                    binds: Some(vec![format!("{home_volume}:/agent-home")]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| (None, docker::failed("create the firewall container")(e)))?;
    let helper = created.id;
    let fail = |err: SandboxError| (Some(helper.clone()), err);
    docker
        .start_container(&helper, None)
        .await
        .map_err(|e| fail(docker::failed("start the firewall container")(e)))?;
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(&helper, Some(options));
    let mut seen = String::new();
    let waited = tokio::time::timeout(FIREWALL_READY, async {
        while let Some(Ok(line)) = logs.next().await {
            seen.push_str(&String::from_utf8_lossy(&line.into_bytes()));
            if seen.contains("agent-vault-firewall: ready") {
                return true;
            }
        }
        false
    })
    .await;
    match waited {
        Ok(true) => Ok(helper),
        Ok(false) => Err(fail(SandboxError::Firewall(seen.trim().to_owned()))),
        Err(_) => Err(fail(SandboxError::Firewall(format!(
            "no answer within {} s; its log: {}",
            FIREWALL_READY.as_secs(),
            seen.trim()
        )))),
    }
}

/// The resolved `~/.agent-vault` for mount checks.
pub fn agent_vault_dir(paths: &crate::paths::Paths) -> PathBuf {
    paths.root().to_owned()
}
