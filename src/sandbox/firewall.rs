//! The firewall helper: a short-lived container that owns the run's network namespace,
//! installs the egress rules (`firewall/rules.sh`), proves them with a self-test (the relay
//! reachable, its canary not), then only holds the namespace. It is the only container of a
//! run with `NET_ADMIN`; the agent joins its namespace without any capability.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;

use super::relay::Ports;
use super::{SandboxError, docker};

const FIREWALL_READY: Duration = Duration::from_secs(60);

/// What the helper is made of.
pub struct Helper<'a> {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub image: &'a str,
    pub network: &'a str,
    pub gateway: IpAddr,
    pub ports: Ports,
    /// The agent's home volume, handed to the agent's user.
    pub home_volume: &'a str,
    pub user: (u32, u32),
}

/// Starts the firewall helper and waits for its self-test. On failure returns the helper's
/// id (for cleanup) with an error carrying its log.
pub async fn start(
    docker: &Docker,
    helper: Helper<'_>,
) -> Result<String, (Option<String>, SandboxError)> {
    let Helper {
        name,
        labels,
        image,
        network,
        gateway,
        ports,
        home_volume,
        user: (uid, gid),
    } = helper;
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                cmd: Some(vec![
                    gateway.to_string(),
                    ports.api.to_string(),
                    ports.proxy.to_string(),
                    ports.canary.to_string(),
                ]),
                env: Some(vec![format!("AGENT_UID={uid}"), format!("AGENT_GID={gid}")]),
                labels: Some(labels),
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
