//! The request log writer: the data path hands records to a bounded channel and never waits
//! for the database; a background task writes them in batches and trims old rows. Dropped
//! records (only when the channel is full) are counted and reported.
//!
//! Under load, batching is by time: when records were already queueing, the writer sleeps
//! [`GATHER`] and then takes everything, so a request costs a channel push, not a wake-up of
//! the writer, a blocking-pool hand-off and a SQLite transaction of its own. Light traffic
//! is written at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::retention::{Retention, RetentionEnv};
use crate::store::request_log::{self, Record};
use crate::store::{Store, now};

/// Room for a few seconds of heavy traffic, so the writer's pauses drop nothing.
const CHANNEL: usize = 65_536;
const BATCH: usize = 5_000;
/// How long the writer gathers records once traffic is heavy.
const GATHER: Duration = Duration::from_millis(100);
/// Records already waiting that mean heavy traffic.
const BUSY: usize = 32;
const RETENTION_EVERY: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Starts the writer on the current runtime. It stops when `shutdown` turns true (or
    /// every `AuditLog` is dropped), after writing what it holds.
    pub fn start(
        store: Arc<Store>,
        retention: RetentionEnv,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = tokio::spawn(write_loop(store, rx, retention, shutdown));
        (
            Self {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            handle,
        )
    }

    pub fn record(&self, record: Record) {
        crate::metrics::global().proxied(
            record.ingress,
            record.status,
            record.error_code,
            record.duration_ms,
        );
        if self.tx.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "request log is falling behind; records dropped");
            }
        }
    }
}

async fn write_loop(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<Record>,
    retention: RetentionEnv,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_trim = tokio::time::Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        let received = tokio::select! {
            received = gather(&mut rx, &mut batch) => received,
            () = &mut stop => {
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    flush(&store, &mut batch).await;
                }
                // What a gather in progress had already taken.
                flush(&store, &mut batch).await;
                return;
            }
        };
        if matches!(received, Ok(0)) {
            flush(&store, &mut batch).await;
            return;
        }
        flush(&store, &mut batch).await;
        if tokio::time::Instant::now() >= next_trim {
            next_trim += RETENTION_EVERY;
            let store = store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                store.write(|tx| trim(tx, retention.effective(tx)?))
            })
            .await;
        }
    }
}

/// Waits (up to 250 ms) for records; when [`BUSY`] or more were already waiting, gathers for
/// [`GATHER`] more. `Ok(0)` when the channel closed.
async fn gather(
    rx: &mut mpsc::Receiver<Record>,
    batch: &mut Vec<Record>,
) -> Result<usize, tokio::time::error::Elapsed> {
    let first =
        tokio::time::timeout(Duration::from_millis(250), rx.recv_many(batch, BATCH)).await?;
    if first < BUSY {
        // Light traffic (or a closed channel: 0): written at once, so the log is current
        // when someone looks.
        return Ok(first);
    }
    // Asleep rather than waiting on the channel, so senders wake nobody meanwhile.
    tokio::time::sleep(GATHER).await;
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(record) => batch.push(record),
            Err(_) => break,
        }
    }
    Ok(batch.len())
}

/// Applies `retention` now; the owner's settings API calls it too, so a change takes effect
/// at once rather than at the next pass.
pub fn trim(conn: &crate::store::Connection, retention: Retention) -> crate::store::Result<usize> {
    request_log::trim(
        conn,
        now(),
        retention.max_age_hours.saturating_mul(3600),
        retention.max_rows_per_vault,
    )
}

async fn flush(store: &Arc<Store>, batch: &mut Vec<Record>) {
    if batch.is_empty() {
        return;
    }
    let records = std::mem::take(batch);
    let store = store.clone();
    let written = tokio::task::spawn_blocking(move || {
        store.write(|tx| request_log::insert_all(tx, &records))
    })
    .await;
    if let Ok(Err(e)) = written {
        tracing::warn!(error = %e, "cannot write the request log");
    }
}
