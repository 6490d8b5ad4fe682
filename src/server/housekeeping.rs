//! Periodic clean-up of the store while the server runs: ended login sessions and tokens
//! (expired, past their lease's hard cap, or idle too long) are deleted at start and every
//! [`EVERY`], so the sessions table holds only sessions that can still be used.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Store, sessions};

pub const EVERY: Duration = Duration::from_secs(15 * 60);

/// Runs until `shutdown` turns true.
pub async fn run(store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => purge_sessions(&store).await,
            () = &mut stop => return,
        }
    }
}

async fn purge_sessions(store: &Arc<Store>) {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.write(sessions::purge_expired)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(purged)) => tracing::info!(purged, "ended sessions purged"),
        Ok(Err(e)) => tracing::warn!("cannot purge ended sessions: {e}"),
        Err(_) => tracing::warn!("the session purge task failed"),
    }
}
