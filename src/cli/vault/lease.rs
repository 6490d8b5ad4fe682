//! Keeping a `vault run` token alive exactly as long as its run: the token is minted on a
//! short lease and this process renews it with a key the agent never sees. If the run dies
//! (even by `kill -9`), renewals stop and the token expires within one lease.

use std::time::Duration;

use serde_json::json;

use crate::cli::{Client, output};
use crate::crypto::SecretString;

/// `AGENT_VAULT_RUN_LEASE`: how long a run's token outlives the last renewal (Go duration).
pub const LEASE_ENV: &str = "AGENT_VAULT_RUN_LEASE";
const DEFAULT_LEASE_SECONDS: i64 = 300;
const MAX_LEASE_SECONDS: i64 = crate::api::MAX_LEASE_SECONDS;

/// The lease length from the environment, or the default of five minutes.
pub fn seconds_from_env() -> anyhow::Result<i64> {
    match std::env::var(LEASE_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            let seconds = crate::cli::duration::parse_seconds(&text)
                .map_err(|e| anyhow::anyhow!("{LEASE_ENV}: {e}"))?;
            if seconds > MAX_LEASE_SECONDS {
                anyhow::bail!("{LEASE_ENV}: a lease may last at most 1h");
            }
            Ok(seconds)
        }
        _ => Ok(DEFAULT_LEASE_SECONDS),
    }
}

/// Renews the lease in the background until dropped.
pub struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews five times per lease (at most once a minute), so a few failed attempts in a row —
/// a server restart — cost nothing. After a long pause (a laptop's sleep) the next renewal
/// revives the token, because only this process holds the key.
pub fn keep_alive(base: &str, key: SecretString, seconds: i64) -> anyhow::Result<Renewal> {
    let client = Client::new(base, None)?;
    let every = Duration::from_millis((seconds.max(1) as u64 * 1000 / 5).clamp(200, 60_000));
    Ok(Renewal(tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            let body = json!({ "lease_key": key.expose(), "lease_seconds": seconds });
            let renewed: anyhow::Result<serde_json::Value> =
                client.post("/v1/sessions/renew", &body).await;
            match renewed {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    output::warn(format!(
                        "could not renew the run's token (retrying; it lapses {seconds}s after the last renewal): {e:#}"
                    ));
                }
                Err(_) => {}
            }
        }
    })))
}
