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

/// One labelled resource, as the janitor sees it.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub kind: Kind,
    /// Container id, network or volume name.
    pub handle: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Network,
    Volume,
}

/// Every labelled resource on the engine (three calls).
async fn inventory(docker: &Docker) -> Vec<Labelled> {
    let filters = label_filter();
    let mut all = Vec::new();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default();
    all.extend(containers.into_iter().filter_map(|c| {
        Some(Labelled {
            kind: Kind::Container,
            handle: c.id?,
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
        })
    }));
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default();
    all.extend(networks.into_iter().filter_map(|n| {
        let name = n.name?;
        Some(Labelled {
            kind: Kind::Network,
            handle: name.clone(),
            name,
            labels: n.labels.unwrap_or_default(),
        })
    }));
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
    all.extend(
        volumes
            .into_iter()
            .filter(|v| v.name != SHARED_HOME_VOLUME)
            .map(|v| Labelled {
                kind: Kind::Volume,
                handle: v.name.clone(),
                name: v.name,
                labels: v.labels,
            }),
    );
    all
}

/// What the janitor does with the resources of one run id.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// Remove all but what `--keep` kept.
    Remove,
}

/// Decides a slot's fate from its resources. `idle` is how long a ready slot may wait.
fn judge_slot(group: &[&Labelled], current_firewall: Option<&str>, idle: Duration) -> Verdict {
    let agent = group.iter().find(|r| {
        r.kind == Kind::Container && r.labels.get(ROLE_LABEL).map(String::as_str) == Some("agent")
    });
    if let Some(agent) = agent {
        // Claimed: the run that claimed it owns it.
        return match owner_alive(&agent.labels) {
            true => Verdict::Keep,
            false => Verdict::Remove,
        };
    }
    // Unclaimed and its maker still at work (making it, or the run making its own slot).
    if group.iter().any(|r| owner_alive(&r.labels)) {
        return Verdict::Keep;
    }
    let helper = group.iter().find(|r| {
        r.kind == Kind::Container
            && r.labels.get(ROLE_LABEL).map(String::as_str) == Some("firewall")
    });
    match helper {
        Some(helper) if super::slots::ready_id(&helper.name).is_some() => {
            let created: i64 = helper
                .labels
                .get(CREATED_LABEL)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let fresh = crate::store::now() - created < idle.as_secs() as i64;
            match fresh && super::slots::is_current(&helper.labels, current_firewall) {
                true => Verdict::Keep,
                false => Verdict::Remove,
            }
        }
        // Used and its run is over, or half made by a maker that died.
        _ => Verdict::Remove,
    }
}

fn owner_alive(labels: &HashMap<String, String>) -> bool {
    match (labels.get(PID_LABEL), labels.get(PID_START_LABEL)) {
        (Some(pid), Some(start)) => is_alive(pid, start),
        _ => false,
    }
}

/// Removes resources of runs that are over: slots by the slot rules, resources of older
/// versions by [`abandoned`], and the folders of dead runs. A ready slot waits `idle` at
/// most, and only while it runs `current_firewall` (when known).
pub async fn prune(docker: &Docker, current_firewall: Option<&str>, idle: Duration) {
    prune_run_dirs();
    let all = inventory(docker).await;
    let mut groups: HashMap<&str, Vec<&Labelled>> = HashMap::new();
    for resource in &all {
        if let Some(run) = resource.labels.get(RUN_LABEL) {
            groups.entry(run.as_str()).or_default().push(resource);
        }
    }
    let mut doomed: Vec<&Labelled> = Vec::new();
    for group in groups.values() {
        let is_slot = group
            .iter()
            .any(|r| r.labels.contains_key(super::slots::SLOT_LABEL));
        if is_slot {
            if judge_slot(group, current_firewall, idle) == Verdict::Remove {
                doomed.extend(group.iter().copied());
            }
        } else {
            doomed.extend(group.iter().copied().filter(|r| abandoned(&r.labels)));
        }
    }
    remove_all(docker, doomed).await;
}

/// Removes every resource of run `id` but what `--keep` kept (an explicit release).
pub async fn release(docker: &Docker, id: &str) {
    let all = inventory(docker).await;
    let group = all
        .iter()
        .filter(|r| r.labels.get(RUN_LABEL).map(String::as_str) == Some(id))
        .collect();
    remove_all(docker, group).await;
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{RUN_DIR_PREFIX}{id}")));
}

/// Containers first (together), then networks and volumes (together); kept ones stay.
async fn remove_all(docker: &Docker, resources: Vec<&Labelled>) {
    let resources: Vec<&Labelled> = resources
        .into_iter()
        .filter(|r| !r.labels.contains_key(KEEP_LABEL))
        .collect();
    let force = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let containers = resources
        .iter()
        .filter(|r| r.kind == Kind::Container)
        .map(|r| {
            let force = force.clone();
            async move {
                let _ = docker.remove_container(&r.handle, Some(force)).await;
            }
        });
    futures_util::future::join_all(containers).await;
    let rest = resources.iter().map(|r| async move {
        match r.kind {
            Kind::Container => {}
            Kind::Network => {
                let _ = docker.remove_network(&r.handle).await;
            }
            Kind::Volume => {
                let options = None::<bollard::query_parameters::RemoveVolumeOptions>;
                let _ = docker.remove_volume(&r.handle, options).await;
            }
        }
    });
    futures_util::future::join_all(rest).await;
}

/// Everything a run created. Its containers are removed when the run ends (the agent's
/// unless kept); its network and volume follow in the background (see `maintain`), so the
/// run does not wait for them.
#[derive(Default)]
pub struct Resources {
    /// The run id the resources are labelled with.
    pub id: Option<String>,
    pub agent: Option<String>,
    pub helper: Option<String>,
    pub network: Option<String>,
    /// The per-run home volume (never the shared one).
    pub volume: Option<String>,
    pub run_dir: Option<super::gate::RunDir>,
    pub keep_agent: bool,
}

impl Resources {
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
        if let Some(dir) = &self.run_dir {
            dir.remove();
        }
        let leftover = self.network.is_some() || (self.volume.is_some() && !self.keep_agent);
        match (&self.id, leftover) {
            (Some(id), true) if super::maintain::spawn(Some(id)) => {}
            _ => {
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
            }
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

    fn resource(kind: Kind, name: &str, role: &str, alive: bool) -> Labelled {
        let mut labels = labels("slot1", role);
        labels.insert(crate::sandbox::slots::SLOT_LABEL.into(), "1".into());
        if !alive {
            labels.insert(PID_START_LABEL.into(), "1".into());
        }
        Labelled {
            kind,
            handle: name.into(),
            name: name.into(),
            labels,
        }
    }

    #[test]
    fn slots_are_judged_by_their_claimer_or_their_readiness() {
        let idle = Duration::from_secs(900);
        let network = resource(Kind::Network, "agent-vault-slot1", "network", false);
        let ready = resource(
            Kind::Container,
            "/agent-vault-slot-slot1",
            "firewall",
            false,
        );
        let used = resource(
            Kind::Container,
            "/agent-vault-firewall-slot1",
            "firewall",
            false,
        );
        let live_agent = resource(Kind::Container, "/agent-vault-agent-slot1", "agent", true);
        let dead_agent = resource(Kind::Container, "/agent-vault-agent-slot1", "agent", false);
        let judge = |group: &[&Labelled]| judge_slot(group, None, idle);
        assert_eq!(judge(&[&network, &ready]), Verdict::Keep, "ready and fresh");
        assert_eq!(
            judge_slot(
                &[&network, &ready],
                Some("agent-vault/firewall:other"),
                idle
            ),
            Verdict::Remove,
            "made for another firewall image"
        );
        assert_eq!(
            judge_slot(&[&network, &ready], None, Duration::ZERO),
            Verdict::Remove,
            "idle too long"
        );
        assert_eq!(
            judge(&[&network, &ready, &live_agent]),
            Verdict::Keep,
            "claimed by a live run"
        );
        assert_eq!(
            judge(&[&network, &used, &dead_agent]),
            Verdict::Remove,
            "its run died"
        );
        assert_eq!(
            judge(&[&network, &used]),
            Verdict::Remove,
            "its run is over"
        );
        assert_eq!(
            judge(&[&network]),
            Verdict::Remove,
            "half made by a dead maker"
        );
        let making = resource(Kind::Network, "agent-vault-slot1", "network", true);
        assert_eq!(judge(&[&making]), Verdict::Keep, "its maker is at work");
    }

    #[test]
    fn start_time_reads_past_odd_command_names() {
        let me = std::process::id();
        assert!(start_time(me).is_some_and(|t| t.parse::<u64>().is_ok()));
        assert_eq!(start_time(u32::MAX), None);
    }
}
