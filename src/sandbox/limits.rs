//! Resource limits of the agent's container: memory, CPU and processes, and a read-only root
//! filesystem with a writable `/tmp` and home. An agent that runs away (a fork bomb, a build
//! that eats all memory) hurts only itself, and nothing it writes outside `/workspace`, its
//! home volume and `/tmp` survives the run.
//!
//! Defaults leave room for the host (and the broker on it): three quarters of its memory (at
//! most 8 GiB) and of its cores (at least one), 4096 processes.

use std::collections::HashMap;

const GIB: i64 = 1024 * 1024 * 1024;
const MAX_DEFAULT_MEMORY: i64 = 8 * GIB;
const DEFAULT_PIDS: i64 = 4096;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitError(String);

/// What the user asked for; `None` means the default.
#[derive(Debug, Default, Clone)]
pub struct Requested {
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    pub writable_root: bool,
}

/// Limits as Docker takes them; `None` is no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
    pub read_only_root: bool,
}

impl Requested {
    pub fn resolve(&self) -> Result<Limits, LimitError> {
        let memory_bytes = match &self.memory {
            None => default_memory(),
            Some(text) => parse_size(text)?,
        };
        let nano_cpus = match self.cpus {
            None => Some(default_cpus()),
            Some(0.0) => None,
            Some(c) if c.is_finite() && c > 0.0 => Some((c * 1e9).round() as i64),
            Some(c) => {
                return Err(LimitError(format!(
                    "--cpus {c} is not a CPU count; write e.g. 2 or 1.5 (0 for no limit)"
                )));
            }
        };
        let pids = match self.pids {
            None => Some(DEFAULT_PIDS),
            Some(0) => None,
            Some(n) if n >= 16 => Some(n),
            Some(n) => {
                return Err(LimitError(format!(
                    "--pids-limit {n} is too low for a shell and its tools; use 16 or more (0 for no limit)"
                )));
            }
        };
        Ok(Limits {
            memory_bytes,
            nano_cpus,
            pids,
            read_only_root: !self.writable_root,
        })
    }
}

/// `4g`, `512m`, `1.5g`, `65536k` or plain bytes; `0` or `none` for no limit.
fn parse_size(text: &str) -> Result<Option<i64>, LimitError> {
    let bad = || {
        LimitError(format!(
            "--memory {text:?} is not a size; write e.g. 4g or 512m (0 for no limit)"
        ))
    };
    let lower = text.trim().to_ascii_lowercase();
    if lower == "0" || lower == "none" {
        return Ok(None);
    }
    let lower = lower.trim_end_matches('b');
    let (number, unit) = match lower.char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1024.0),
        Some((i, 'm')) => (&lower[..i], 1024.0 * 1024.0),
        Some((i, 'g')) => (&lower[..i], GIB as f64),
        Some((i, 't')) => (&lower[..i], GIB as f64 * 1024.0),
        _ => (lower, 1.0),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = (value * unit).round();
    if !bytes.is_finite() || bytes < (6 * 1024 * 1024) as f64 || bytes > i64::MAX as f64 {
        return Err(LimitError(format!(
            "--memory {text:?} is out of range; a container needs at least 6m (0 for no limit)"
        )));
    }
    Ok(Some(bytes as i64))
}

fn default_memory() -> Option<i64> {
    let total_kib: i64 = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((total_kib * 1024 / 4 * 3).min(MAX_DEFAULT_MEMORY))
}

fn default_cpus() -> i64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    (cores * 750_000_000).max(1_000_000_000)
}

/// The writable places of a read-only root: `/tmp` and the agent's home, in memory.
pub fn tmpfs(home: &str, (uid, gid): (u32, u32)) -> HashMap<String, String> {
    HashMap::from([
        ("/tmp".to_owned(), "rw,nosuid,nodev,mode=1777".to_owned()),
        (
            home.to_owned(),
            format!("rw,nosuid,nodev,mode=0755,uid={uid},gid={gid}"),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker_s() {
        assert_eq!(parse_size("4g").unwrap(), Some(4 * GIB));
        assert_eq!(parse_size("512M").unwrap(), Some(512 * 1024 * 1024));
        assert_eq!(parse_size("1.5g").unwrap(), Some(3 * GIB / 2));
        assert_eq!(parse_size("2gb").unwrap(), Some(2 * GIB));
        assert_eq!(parse_size("0").unwrap(), None);
        assert_eq!(parse_size("none").unwrap(), None);
        for bad in ["", "g", "lots", "-1g", "1k", "1e400g"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_limits_and_zero_lifts_them() {
        let limits = Requested::default().resolve().unwrap();
        assert!(limits.memory_bytes.is_some_and(|m| m <= MAX_DEFAULT_MEMORY));
        assert!(limits.nano_cpus.is_some_and(|c| c >= 1_000_000_000));
        assert_eq!(limits.pids, Some(DEFAULT_PIDS));
        assert!(limits.read_only_root);
        let lifted = Requested {
            memory: Some("0".into()),
            cpus: Some(0.0),
            pids: Some(0),
            writable_root: true,
        }
        .resolve()
        .unwrap();
        assert_eq!(
            lifted,
            Limits {
                memory_bytes: None,
                nano_cpus: None,
                pids: None,
                read_only_root: false
            }
        );
        for bad in [
            Requested {
                cpus: Some(-1.0),
                ..Requested::default()
            },
            Requested {
                pids: Some(3),
                ..Requested::default()
            },
        ] {
            assert!(bad.resolve().is_err());
        }
    }
}
