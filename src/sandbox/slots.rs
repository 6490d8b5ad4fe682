//! Run slots: a run's private network, its home volume and its firewall helper — the half of
//! a run that costs as much as the agent's own container (a second container, the rules, the
//! self-test). A run makes its slot on the spot, or takes one made ahead of time by the
//! background maintainer (`maintain`); taking one is what lets a run start about as fast as
//! a plain `docker run`.
//!
//! Stance: a slot serves one run, once. A ready slot's helper is named
//! `agent-vault-slot-<id>`. A run claims it by creating its agent container under the name
//! `agent-vault-agent-<id>`: Docker reserves names atomically, so two runs never both
//! succeed. Before the agent's command may start, the run renames the helper to
//! `agent-vault-firewall-<id>`, so a used slot never looks ready again. Only slots made for
//! the same user (who owns the home volume) and the same firewall image are taken. A slot
//! is proven like any other: its helper installed the rules and passed the self-test
//! against listeners on exactly the ports the taking run's relay then binds.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{ListContainersOptionsBuilder, RenameContainerOptionsBuilder};
use ipnet::IpNet;

use super::janitor::{KEEP_LABEL, RUN_LABEL, Resources, SHARED_HOME_VOLUME, labels};
use super::relay::{Ports, Relay, Target};
use super::{SandboxError, docker, firewall};

/// On every resource of a slot: its lifecycle follows the slot rules of the janitor.
pub const SLOT_LABEL: &str = "dev.agent-vault.slot";
/// `uid:gid` of the agent the slot's home volume was handed to.
const USER_LABEL: &str = "dev.agent-vault.user";
/// The firewall image the helper runs.
const FIREWALL_LABEL: &str = "dev.agent-vault.firewall";
/// `gateway subnet api proxy canary` of a ready slot.
const WIRING_LABEL: &str = "dev.agent-vault.wiring";
/// Name prefix of a ready slot's helper.
pub const READY_PREFIX: &str = "agent-vault-slot-";

pub fn network_name(id: &str) -> String {
    format!("agent-vault-{id}")
}

pub fn volume_name(id: &str) -> String {
    format!("agent-vault-home-{id}")
}

pub fn agent_name(id: &str) -> String {
    format!("agent-vault-agent-{id}")
}

fn helper_name(id: &str, ready: bool) -> String {
    match ready {
        true => format!("{READY_PREFIX}{id}"),
        false => format!("agent-vault-firewall-{id}"),
    }
}

/// A slot: where a run's agent lives and how it gets out.
#[derive(Debug, Clone)]
pub struct Slot {
    pub id: String,
    pub network: String,
    pub helper: String,
    pub home_volume: String,
    pub gateway: IpAddr,
    pub subnet: IpNet,
    pub ports: Ports,
}

/// The agent's home: the slot's own volume, or the volume shared across runs.
#[derive(Debug, Clone, Copy)]
pub enum Home {
    PerRun { keep: bool },
    Shared,
}

/// What a slot is made for.
pub struct Recipe<'a> {
    pub id: &'a str,
    /// `None` with `--no-firewall`: an ordinary network, no helper.
    pub firewall_image: Option<&'a str>,
    pub user: (u32, u32),
    pub home: Home,
    /// Made ahead of time (a stub relay, a ready name) or for the run making it.
    pub ahead: bool,
}

fn slot_labels(id: &str, role: &str) -> HashMap<String, String> {
    let mut all = labels(id, role);
    all.insert(SLOT_LABEL.into(), "1".into());
    all
}

/// Makes a slot. `target` is where the relay forwards (the broker), given the slot's
/// subnet; `None` makes a stub relay that only answers the self-test. Everything made is
/// recorded in `resources` at once, so a failure leaves nothing behind.
pub async fn make(
    docker: &Docker,
    recipe: Recipe<'_>,
    target: impl FnOnce(IpNet) -> Option<Target>,
    resources: &mut Resources,
) -> Result<(Slot, Relay), SandboxError> {
    let id = recipe.id;
    let network = network_name(id);
    resources.network = Some(network.clone());
    let (gateway, subnet) =
        create_network(docker, &network, id, recipe.firewall_image.is_some()).await?;
    let relay = Relay::start(gateway, Ports::default(), target(subnet))
        .await
        .map_err(|e| {
            SandboxError::Io(format!("listen on the run network's gateway {gateway}"), e)
        })?;
    let home_volume = create_home(docker, id, recipe.home, resources).await?;
    let ports = relay.ports();
    let slot = |helper: String| Slot {
        id: id.to_owned(),
        network: network.clone(),
        helper,
        home_volume: home_volume.clone(),
        gateway,
        subnet,
        ports,
    };
    let Some(firewall_image) = recipe.firewall_image else {
        return Ok((slot(String::new()), relay));
    };
    let mut helper_labels = slot_labels(id, "firewall");
    let (uid, gid) = recipe.user;
    helper_labels.insert(USER_LABEL.into(), format!("{uid}:{gid}"));
    helper_labels.insert(FIREWALL_LABEL.into(), firewall_image.into());
    helper_labels.insert(
        WIRING_LABEL.into(),
        format!(
            "{gateway} {subnet} {} {} {}",
            ports.api, ports.proxy, ports.canary
        ),
    );
    let helper = firewall::start(
        docker,
        firewall::Helper {
            name: helper_name(id, recipe.ahead),
            labels: helper_labels,
            image: firewall_image,
            network: &network,
            gateway,
            ports,
            home_volume: &home_volume,
            user: recipe.user,
        },
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
    Ok((slot(helper), relay))
}

/// The run network's gateway (where the relay listens) and subnet (who may use it).
/// Internal (no route out at all) whenever the firewall runs.
async fn create_network(
    docker: &Docker,
    name: &str,
    id: &str,
    internal: bool,
) -> Result<(IpAddr, IpNet), SandboxError> {
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(slot_labels(id, "network")),
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
                let subnet: IpNet = c.subnet?.parse().ok()?;
                gateway.is_ipv4().then_some((gateway, subnet))
            })
        });
    config.ok_or_else(|| SandboxError::Docker {
        action: "find the run network's gateway".into(),
        message: "the network has no IPv4 gateway and subnet".into(),
    })
}

/// Gives a slot's home volume to the agent's user where no firewall helper does
/// (`--no-firewall`): a one-off container of the agent's image runs `chown` as root with no
/// capability but `CHOWN` and no network. A failure (an image without `chown`) is a
/// warning: the home may then not be writable, which a debugging run can live with.
pub async fn give_home_to(docker: &Docker, image: &str, slot: &Slot, (uid, gid): (u32, u32)) {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::RemoveContainerOptionsBuilder;
    use futures_util::StreamExt;
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: Some(vec!["chown".into()]),
        cmd: Some(vec![format!("{uid}:{gid}"), "/agent-home".into()]),
        user: Some("0".into()),
        labels: Some(slot_labels(&slot.id, "home-owner")),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["CHOWN".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            binds: Some(vec![format!("{}:/agent-home", slot.home_volume)]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let outcome = async {
        let id = docker
            .create_container(None, body)
            .await
            .map_err(|e| e.to_string())?
            .id;
        let ran = async {
            docker
                .start_container(&id, None)
                .await
                .map_err(|e| e.to_string())?;
            match docker.wait_container(&id, None).next().await {
                Some(Ok(done)) if done.status_code == 0 => Ok(()),
                Some(Ok(done)) => Err(format!("chown exited {}", done.status_code)),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the engine ended the wait".into()),
            }
        }
        .await;
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = docker.remove_container(&id, Some(force)).await;
        ran
    }
    .await;
    if let Err(why) = outcome {
        eprintln!(
            "agent-vault: warning: could not give the agent's home to its user ({why}); it may not be writable"
        );
    }
}

async fn create_home(
    docker: &Docker,
    id: &str,
    home: Home,
    resources: &mut Resources,
) -> Result<String, SandboxError> {
    let (name, volume_labels) = match home {
        Home::Shared => {
            let mut shared = labels(id, "home");
            shared.remove(RUN_LABEL);
            shared.insert("dev.agent-vault.shared".into(), "1".into());
            (SHARED_HOME_VOLUME.to_owned(), shared)
        }
        Home::PerRun { keep } => {
            let name = volume_name(id);
            resources.volume = Some(name.clone());
            let mut own = slot_labels(id, "home");
            if keep {
                own.insert(KEEP_LABEL.into(), "1".into());
            }
            (name, own)
        }
    };
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(volume_labels),
            ..Default::default()
        })
        .await
        .map_err(docker::failed("create the agent's home volume"))?;
    Ok(name)
}

/// Ready slots for this user and firewall image (one engine call).
pub async fn ready(docker: &Docker, firewall_image: &str, (uid, gid): (u32, u32)) -> Vec<Slot> {
    let filters = HashMap::from([
        ("name".to_owned(), vec![READY_PREFIX.to_owned()]),
        ("status".to_owned(), vec!["running".to_owned()]),
        (
            "label".to_owned(),
            vec![
                format!("{SLOT_LABEL}=1"),
                format!("{USER_LABEL}={uid}:{gid}"),
                format!("{FIREWALL_LABEL}={firewall_image}"),
            ],
        ),
    ]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let listed = docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default();
    listed
        .into_iter()
        .filter_map(|container| {
            let name = container.names?.into_iter().next()?;
            let id = name.trim_start_matches('/').strip_prefix(READY_PREFIX)?;
            let labels = container.labels?;
            let wiring: Vec<&str> = labels.get(WIRING_LABEL)?.split(' ').collect();
            let [gateway, subnet, api, proxy, canary] = wiring.as_slice() else {
                return None;
            };
            Some(Slot {
                id: id.to_owned(),
                network: network_name(id),
                helper: container.id?,
                home_volume: volume_name(id),
                gateway: gateway.parse().ok()?,
                subnet: subnet.parse().ok()?,
                ports: Ports {
                    api: api.parse().ok()?,
                    proxy: proxy.parse().ok()?,
                    canary: canary.parse().ok()?,
                },
            })
        })
        .collect()
}

/// Marks a claimed slot as used, for good (its helper no longer has a ready name).
pub async fn mark_used(docker: &Docker, slot: &Slot) -> Result<(), SandboxError> {
    let options = RenameContainerOptionsBuilder::default()
        .name(&helper_name(&slot.id, false))
        .build();
    docker
        .rename_container(&slot.helper, options)
        .await
        .map_err(docker::failed("claim the run slot"))
}

/// Whether a Docker error is a name already taken (another run claimed the slot first).
pub fn is_name_conflict(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// The name of a ready slot's helper, if `name` is one.
pub fn ready_id(name: &str) -> Option<&str> {
    name.trim_start_matches('/').strip_prefix(READY_PREFIX)
}

/// The labels that mark a ready slot of this firewall image as current.
pub fn is_current(labels: &HashMap<String, String>, firewall_image: Option<&str>) -> bool {
    firewall_image.is_none_or(|image| labels.get(FIREWALL_LABEL).map(String::as_str) == Some(image))
}
