//! Labels that tie Docker resources to a run, the cleanup of a run's resources on every exit
//! path, and the pruning of resources left behind by runs that crashed.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder,
};

pub const RUN_LABEL: &str = "dev.agent-vault.run";
pub const PID_LABEL: &str = "dev.agent-vault.pid";
pub const CREATED_LABEL: &str = "dev.agent-vault.created";
pub const ROLE_LABEL: &str = "dev.agent-vault.role";
pub const KEEP_LABEL: &str = "dev.agent-vault.keep";
pub const SHARED_HOME_VOLUME: &str = "agent-vault-home";
/// Resources younger than this are never pruned: another run may be setting them up.
const GRACE: Duration = Duration::from_secs(60);

pub fn labels(run_id: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (RUN_LABEL.to_owned(), run_id.to_owned()),
        (PID_LABEL.to_owned(), std::process::id().to_string()),
        (CREATED_LABEL.to_owned(), crate::store::now().to_string()),
        (ROLE_LABEL.to_owned(), role.to_owned()),
    ])
}

/// A run is over when its `vault run` process is gone (or is another program now) and its
/// resources are older than the grace period.
fn abandoned(labels: &HashMap<String, String>) -> bool {
    if labels.get(KEEP_LABEL).is_some() {
        return false;
    }
    let created: i64 = labels
        .get(CREATED_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if crate::store::now() - created < GRACE.as_secs() as i64 {
        return false;
    }
    let pid: i32 = labels
        .get(PID_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    !process_is_agent_vault(pid)
}

fn process_is_agent_vault(pid: i32) -> bool {
    pid > 0
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("agent-vault"))
}

fn label_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![RUN_LABEL.to_owned()])])
}

/// Removes containers, networks and per-run volumes of runs that ended without cleaning up.
pub async fn prune(docker: &Docker) {
    let filters = label_filter();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default();
    let force = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    for container in containers {
        if abandoned(&container.labels.unwrap_or_default())
            && let Some(id) = container.id
        {
            let _ = docker.remove_container(&id, Some(force.clone())).await;
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default();
    for network in networks {
        if abandoned(&network.labels.unwrap_or_default())
            && let Some(name) = network.name
        {
            let _ = docker.remove_network(&name).await;
        }
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .ok()
        .and_then(|list| list.volumes)
        .unwrap_or_default();
    for volume in volumes {
        if volume.name != SHARED_HOME_VOLUME && abandoned(&volume.labels) {
            let _ = docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
    }
}

/// Everything a run created, removed in reverse order when the run ends.
#[derive(Default)]
pub struct Resources {
    pub agent: Option<String>,
    pub helper: Option<String>,
    pub network: Option<String>,
    /// The per-run home volume (never the shared one).
    pub volume: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
    pub keep_agent: bool,
}

impl Resources {
    /// Removes the run's resources: containers first (together), then the network and the
    /// volume they used (together); each step in parallel saves a round of engine latency.
    pub async fn remove(self, docker: &Docker) {
        let force = || Some(RemoveContainerOptionsBuilder::default().force(true).build());
        let agent = self.agent.as_deref().filter(|_| !self.keep_agent);
        tokio::join!(
            async {
                if let Some(agent) = agent {
                    let _ = docker.remove_container(agent, force()).await;
                }
            },
            async {
                if let Some(helper) = &self.helper {
                    let _ = docker.remove_container(helper, force()).await;
                }
            },
        );
        let volume = self.volume.as_deref().filter(|_| !self.keep_agent);
        tokio::join!(
            async {
                if let Some(network) = &self.network {
                    let _ = docker.remove_network(network).await;
                }
            },
            async {
                if let Some(volume) = volume {
                    let options = None::<bollard::query_parameters::RemoveVolumeOptions>;
                    let _ = docker.remove_volume(volume, options).await;
                }
            },
        );
        if let Some(file) = &self.ca_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_resources_of_dead_runs_are_abandoned() {
        let mut labels = labels("abc", "agent");
        assert!(!abandoned(&labels), "just made: within the grace period");
        labels.insert(CREATED_LABEL.into(), "0".into());
        labels.insert(PID_LABEL.into(), i32::MAX.to_string());
        assert!(abandoned(&labels), "old and its process is gone");
        labels.insert(KEEP_LABEL.into(), "1".into());
        assert!(!abandoned(&labels), "kept on purpose");
    }
}
