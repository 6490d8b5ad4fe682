//! Labels that tie Docker resources to a run, the cleanup of a run's resources on every exit
//! path, and the pruning of what runs that died left behind (Docker resources and their
//! folders under the temporary directory).
//!
//! A run is named by its `vault run` process: pid *and* start time, so a reused pid never
//! keeps a dead run's resources alive, and a live run's resources are never touched.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder,
};

pub const RUN_LABEL: &str = "dev.agent-vault.run";
pub const PID_LABEL: &str = "dev.agent-vault.pid";
pub const PID_START_LABEL: &str = "dev.agent-vault.pid-start";
pub const CREATED_LABEL: &str = "dev.agent-vault.created";
pub const ROLE_LABEL: &str = "dev.agent-vault.role";
pub const KEEP_LABEL: &str = "dev.agent-vault.keep";
pub const SHARED_HOME_VOLUME: &str = "agent-vault-home";
/// Resources of older versions (no start-time label) younger than this are never pruned:
/// another run may be setting them up.
const GRACE: Duration = Duration::from_secs(60);
/// Folders of runs are named `agent-vault-run-<id>` in the temporary directory.
pub const RUN_DIR_PREFIX: &str = "agent-vault-run-";
/// CA files of older versions, pruned once they are a day old.
const LEGACY_CA_PREFIX: &str = "agent-vault-ca-";
const LEGACY_CA_AGE: Duration = Duration::from_secs(24 * 3600);

/// The start time of process `pid` (clock ticks since boot, field 22 of `/proc/PID/stat`).
pub fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

/// `"<pid> <start time>"` of this process: what a run's folder and labels record.
pub fn this_process() -> (String, String) {
    let pid = std::process::id();
    (pid.to_string(), start_time(pid).unwrap_or_default())
}

fn is_alive(pid: &str, start: &str) -> bool {
    pid.parse().ok().and_then(start_time).as_deref() == Some(start)
}

pub fn labels(run_id: &str, role: &str) -> HashMap<String, String> {
    let (pid, start) = this_process();
    HashMap::from([
        (RUN_LABEL.to_owned(), run_id.to_owned()),
        (PID_LABEL.to_owned(), pid),
        (PID_START_LABEL.to_owned(), start),
        (CREATED_LABEL.to_owned(), crate::store::now().to_string()),
        (ROLE_LABEL.to_owned(), role.to_owned()),
    ])
}

/// A run is over when its `vault run` process is gone. Resources made by older versions
/// carry no start time: they are over when their pid is not an agent-vault process and they
/// are older than the grace period.
fn abandoned(labels: &HashMap<String, String>) -> bool {
    if labels.get(KEEP_LABEL).is_some() {
        return false;
    }
    if let (Some(pid), Some(start)) = (labels.get(PID_LABEL), labels.get(PID_START_LABEL)) {
        return !is_alive(pid, start);
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

/// Removes the folders of runs whose process is gone, and old CA files of older versions.
pub fn prune_run_dirs() {
    let temp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if name.starts_with(RUN_DIR_PREFIX) {
            let owner = std::fs::read_to_string(path.join("owner")).unwrap_or_default();
            let (pid, start) = owner.trim().split_once(' ').unwrap_or(("", ""));
            if !is_alive(pid, start) {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if name.starts_with(LEGACY_CA_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > LEGACY_CA_AGE))
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Removes containers, networks and per-run volumes of runs that ended without cleaning up.
pub async fn prune(docker: &Docker) {
    prune_run_dirs();
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
    pub run_dir: Option<super::gate::RunDir>,
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
        if let Some(dir) = &self.run_dir {
            dir.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_dead_runs_are_abandoned_at_once() {
        let mut labels = labels("abc", "agent");
        assert!(!abandoned(&labels), "this process is alive");
        labels.insert(PID_START_LABEL.into(), "1".into());
        assert!(
            abandoned(&labels),
            "same pid, another start time: pid reused"
        );
        labels.insert(PID_LABEL.into(), i32::MAX.to_string());
        assert!(abandoned(&labels), "the process is gone");
        labels.insert(KEEP_LABEL.into(), "1".into());
        assert!(!abandoned(&labels), "kept on purpose");
    }

    #[test]
    fn resources_of_older_versions_wait_out_the_grace_period() {
        let mut labels = labels("abc", "agent");
        labels.remove(PID_START_LABEL);
        labels.insert(PID_LABEL.into(), i32::MAX.to_string());
        assert!(!abandoned(&labels), "just made: within the grace period");
        labels.insert(CREATED_LABEL.into(), "0".into());
        assert!(abandoned(&labels), "old and its process is gone");
    }

    #[test]
    fn start_time_reads_past_odd_command_names() {
        let me = std::process::id();
        assert!(start_time(me).is_some_and(|t| t.parse::<u64>().is_ok()));
        assert_eq!(start_time(u32::MAX), None);
    }
}
