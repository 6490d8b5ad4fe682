//! The request log writer: the data path hands records to a bounded channel and never waits
//! for the database; a background task writes them in batches and trims old rows. Dropped
//! records (only when the channel is full) are counted in `/metrics` and warned of.
//!
//! Under load, batching is by time: when records were already queueing, the writer sleeps
//! [`GATHER`] and then takes everything, so a request costs a channel push, not a wake-up of
//! the writer, a blocking-pool hand-off and a SQLite transaction of its own. Light traffic
//! is written at once.

use std::sync::Arc;
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
/// Rows written that bring the next retention pass forward, so heavy traffic cannot grow the
/// log far past its caps between passes (1,000 req/s would add 900,000 rows in 15 minutes):
/// the per-vault cap, within these bounds. Such a pass checks only the vaults that logged.
const RETENTION_AFTER_ROWS: std::ops::RangeInclusive<usize> = 100..=100_000;

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Record>,
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
        (Self { tx }, handle)
    }

    pub fn record(&self, record: Record) {
        let metrics = crate::metrics::global();
        metrics.proxied(
            record.ingress,
            record.status,
            record.error_code,
            record.duration_ms,
        );
        if self.tx.try_send(record).is_err() {
            let dropped = metrics.request_log_dropped.inc() + 1;
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
    let mut since_trim = Logged::default();
    let mut trim_after = *RETENTION_AFTER_ROWS.end();
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
        since_trim.add(&batch);
        flush(&store, &mut batch).await;
        let now = tokio::time::Instant::now();
        let due = now >= next_trim;
        if due || since_trim.rows >= trim_after {
            // The periodic pass checks every vault; one brought forward, those that logged.
            let logged = std::mem::take(&mut since_trim);
            let vaults: Option<Vec<String>> =
                (!due).then(|| logged.vaults.iter().map(|v| v.to_string()).collect());
            if due {
                next_trim = now + RETENTION_EVERY;
            }
            let store = store.clone();
            let trimmed = tokio::task::spawn_blocking(move || {
                let effective = store.read(|c| retention.effective(c))?;
                trim_vaults(&store, effective, vaults.as_deref()).map(|_| effective)
            })
            .await;
            match trimmed {
                Ok(Ok(effective)) => trim_after = rows_before_pass(effective),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot trim the request log"),
                // A panic in the pass: said, not swallowed; the next pass tries again.
                Err(e) => tracing::warn!(error = %e, "the request-log trim stopped"),
            }
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

/// Rows logged that bring the next pass forward under `retention`.
fn rows_before_pass(retention: Retention) -> usize {
    let (least, most) = RETENTION_AFTER_ROWS.into_inner();
    match usize::try_from(retention.max_rows_per_vault) {
        Ok(cap) if cap > 0 => cap.clamp(least, most),
        _ => most,
    }
}

/// What was logged since the last retention pass.
#[derive(Default)]
struct Logged {
    rows: usize,
    vaults: std::collections::HashSet<Arc<str>>,
}

impl Logged {
    fn add(&mut self, batch: &[Record]) {
        self.rows += batch.len();
        let mut last: Option<&Arc<str>> = None;
        for record in batch {
            // Runs of one vault's records share its id: one lookup per run.
            if last.is_none_or(|last| !Arc::ptr_eq(last, &record.vault_id)) {
                self.vaults.insert(record.vault_id.clone());
                last = Some(&record.vault_id);
            }
        }
    }
}

/// Applies `retention` now, a chunk at a time (blocking); the owner's settings API calls it
/// too, so a change takes effect at once rather than at the next pass.
pub fn trim(store: &Store, retention: Retention) -> crate::store::Result<usize> {
    trim_vaults(store, retention, None)
}

/// [`trim`] for `vaults: None`; otherwise a pass brought forward by heavy logging, which
/// applies the per-vault cap to `vaults` only. Age is left to the periodic pass: its walk of
/// the whole log, several times a second under load, would cost more than the rows it finds.
fn trim_vaults(
    store: &Store,
    retention: Retention,
    vaults: Option<&[String]>,
) -> crate::store::Result<usize> {
    let max_age_secs = match vaults {
        None => retention.max_age_hours.saturating_mul(3600),
        Some(_) => 0,
    };
    request_log::trim(
        store,
        request_log::Trim {
            now: now(),
            max_age_secs,
            max_rows_per_vault: retention.max_rows_per_vault,
            vaults,
            chunk: request_log::TRIM_CHUNK,
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::request_log::tests::record;

    #[test]
    fn records_the_writer_has_no_room_for_are_counted() {
        let (tx, _held) = mpsc::channel(1);
        let log = AuditLog { tx };
        let dropped = || crate::metrics::global().request_log_dropped.get();
        let before = dropped();
        log.record(record("v", 1));
        assert_eq!(dropped(), before);
        log.record(record("v", 2));
        log.record(record("v", 3));
        assert_eq!(dropped(), before + 2);
    }
}
