//! How many threads run the server's connections (`AGENT_VAULT_WORKER_THREADS`).
//!
//! The default is one per core, as nginx's `worker_processes auto` and tokio's own default.
//! A worker with nothing to serve takes no CPU, so the threads cost the agents beside the
//! server nothing until their own traffic keeps them busy. On two cores, two workers served
//! 8–15% more proxied requests per second than one, at the same broker CPU per request
//! (`just profile-proxy ratio`, five rounds): with one, a request waited for the worker while
//! the other core idled. Password hashing and database work do not count against it: they
//! run on the blocking pool.

use super::ServerError;

pub const WORKERS_ENV: &str = "AGENT_VAULT_WORKER_THREADS";

/// More threads than this only cost memory: no machine this runs on has that many cores.
const MOST_WORKERS: usize = 1024;

/// The worker count from `AGENT_VAULT_WORKER_THREADS`, or the default for `cores` cores.
pub fn worker_threads(setting: Option<&str>, cores: usize) -> Result<usize, ServerError> {
    let default = cores.max(1);
    let Some(text) = setting.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MOST_WORKERS).contains(&n) => Ok(n),
        _ => Err(ServerError::Input(format!(
            "{WORKERS_ENV}={text} is not a thread count; give a whole number from 1 to {MOST_WORKERS}, or unset it for one per core ({default})"
        ))),
    }
}

/// The worker count for this machine and environment.
pub fn from_env() -> Result<usize, ServerError> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    worker_threads(std::env::var(WORKERS_ENV).ok().as_deref(), cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_core_by_default_and_at_least_one() {
        assert_eq!(worker_threads(None, 0).ok(), Some(1));
        assert_eq!(worker_threads(None, 1).ok(), Some(1));
        assert_eq!(worker_threads(None, 2).ok(), Some(2));
        assert_eq!(worker_threads(None, 16).ok(), Some(16));
        assert_eq!(worker_threads(Some(" "), 8).ok(), Some(8));
    }

    #[test]
    fn a_setting_is_a_whole_number_in_range() {
        assert_eq!(worker_threads(Some("3"), 2).ok(), Some(3));
        assert_eq!(worker_threads(Some(" 1 "), 2).ok(), Some(1));
        for bad in ["0", "-1", "two", "1.5", "1025", "99999999999999999999999"] {
            let err = worker_threads(Some(bad), 2).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(
                err.contains(WORKERS_ENV) && err.contains("from 1 to 1024"),
                "{bad}: {err}"
            );
        }
    }
}
