//! The request log writer: the data path appends each record to a shared [`Batch`] and never
//! waits for the database; a background task takes the batch, writes it, and trims old rows.
//! Records that find the batch full (the writer far behind) are dropped, counted in
//! `/metrics` and warned of.
//!
//! Under load, batching is by time: while gathers keep finding [`BUSY`] or more records, the
//! writer sleeps [`GATHER`] between them, so a request costs an append under a lock, not a
//! wake-up of the writer, a blocking-pool hand-off and a SQLite transaction of its own.
//! Light traffic is written at once: the first record into an empty batch wakes the writer.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::retention::{Retention, RetentionEnv};
use crate::store::request_log::{self, Batch, Record};
use crate::store::{Store, now};

/// Records the batch holds at most: a few seconds of heavy traffic, so the writer's pauses
/// drop nothing.
const MAX_RECORDS: usize = 65_536;
/// Its bound in bytes, for long paths.
const MAX_BYTES: usize = 64 << 20;
/// Room a written batch keeps for the next one (a gather at heavy load is a few hundred KiB).
const KEEP_BYTES: usize = 1 << 20;
/// How long the writer gathers records once traffic is heavy.
const GATHER: Duration = Duration::from_millis(100);
/// Records in one gather that mean heavy traffic.
const BUSY: usize = 32;
/// How often an idle writer looks whether a retention pass is due.
const IDLE_TICK: Duration = Duration::from_millis(250);
const RETENTION_EVERY: Duration = Duration::from_secs(15 * 60);
/// Rows written that bring the next retention pass forward, so heavy traffic cannot grow the
/// log far past its caps between passes (1,000 req/s would add 900,000 rows in 15 minutes):
/// the per-vault cap, within these bounds. Such a pass checks only the vaults that logged.
const RETENTION_AFTER_ROWS: std::ops::RangeInclusive<usize> = 100..=100_000;

#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Batch>,
    /// Told when a record lands in an empty batch.
    wake: Notify,
    max_records: usize,
    max_bytes: usize,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Batch> {
        // Appending cannot leave a batch half-written in a way reading trips on.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AuditLog {
    /// Starts the writer on the current runtime. It stops when `shutdown` turns true (or its
    /// sender is dropped), after writing what it holds.
    pub fn start(
        store: Arc<Store>,
        retention: RetentionEnv,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let log = Self::with_room(MAX_RECORDS, MAX_BYTES);
        let handle = tokio::spawn(write_loop(store, log.shared.clone(), retention, shutdown));
        (log, handle)
    }

    fn with_room(max_records: usize, max_bytes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                pending: Mutex::default(),
                wake: Notify::new(),
                max_records,
                max_bytes,
            }),
        }
    }

    pub fn record(&self, record: Record) {
        let metrics = crate::metrics::global();
        metrics.proxied(
            record.ingress,
            record.status,
            record.error_code,
            record.duration_ms,
        );
        let mut pending = self.shared.pending();
        if pending.len() >= self.shared.max_records || pending.size() >= self.shared.max_bytes {
            drop(pending);
            let dropped = metrics.request_log_dropped.inc() + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "request log is falling behind; records dropped");
            }
            return;
        }
        let first = pending.is_empty();
        pending.push(&record);
        drop(pending);
        if first {
            self.shared.wake.notify_one();
        }
    }
}

async fn write_loop(
    store: Arc<Store>,
    shared: Arc<Shared>,
    retention: RetentionEnv,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_trim = tokio::time::Instant::now();
    let mut since_trim = Logged::default();
    let mut trim_after = *RETENTION_AFTER_ROWS.end();
    // Swapped with the shared batch: the two take turns, keeping their room.
    let mut batch = Batch::default();
    let mut busy = false;
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        let stopping = tokio::select! {
            biased;
            () = &mut stop => true,
            () = wait(busy, &shared.wake) => false,
        };
        std::mem::swap(&mut batch, &mut *shared.pending());
        busy = batch.len() >= BUSY;
        since_trim.add(&batch);
        batch = flush(&store, batch).await;
        if stopping {
            return;
        }
        let now = tokio::time::Instant::now();
        let due = now >= next_trim;
        if due || since_trim.rows >= trim_after {
            // The periodic pass checks every vault; one brought forward, those that logged.
            let logged = std::mem::take(&mut since_trim);
            let vaults: Option<Vec<String>> = (!due).then(|| logged.vaults.into_iter().collect());
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

/// Until the next batch is worth taking: after a busy one, [`GATHER`] (asleep, so records
/// wake nobody meanwhile); otherwise the first record, or [`IDLE_TICK`] without one.
async fn wait(busy: bool, wake: &Notify) {
    if busy {
        tokio::time::sleep(GATHER).await;
    } else {
        let _ = tokio::time::timeout(IDLE_TICK, wake.notified()).await;
    }
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
    vaults: std::collections::HashSet<String>,
}

impl Logged {
    fn add(&mut self, batch: &Batch) {
        self.rows += batch.len();
        let mut last = None;
        for entry in batch.entries() {
            // Runs of one vault's records: one lookup per run.
            if last != Some(entry.vault_id) {
                if !self.vaults.contains(entry.vault_id) {
                    self.vaults.insert(entry.vault_id.to_owned());
                }
                last = Some(entry.vault_id);
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

/// Writes `batch` and hands it back empty, for the next swap.
async fn flush(store: &Arc<Store>, mut batch: Batch) -> Batch {
    if batch.is_empty() {
        return batch;
    }
    let store = store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let written = store.write(|tx| request_log::insert_all(tx, &batch));
        batch.clear(KEEP_BYTES);
        (written, batch)
    })
    .await;
    match written {
        Ok((Ok(()), batch)) => batch,
        Ok((Err(e), batch)) => {
            tracing::warn!(error = %e, "cannot write the request log");
            batch
        }
        Err(e) => {
            tracing::warn!(error = %e, "the request-log write stopped");
            Batch::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::request_log::tests::record;

    /// One test for both bounds: the dropped counter is global, and tests run in parallel.
    #[test]
    fn records_the_writer_has_no_room_for_are_counted() {
        let dropped = || crate::metrics::global().request_log_dropped.get();
        let before = dropped();
        let log = AuditLog::with_room(1, MAX_BYTES);
        log.record(record("v", 1));
        assert_eq!(dropped(), before);
        log.record(record("v", 2));
        log.record(record("v", 3));
        assert_eq!(dropped(), before + 2);
        assert_eq!(log.shared.pending().len(), 1);

        // Bounded in bytes too: long paths fill it before the record count does.
        let log = AuditLog::with_room(MAX_RECORDS, 4096);
        let mut long = record("v", 1);
        long.path = "/a".repeat(2048);
        log.record(long.clone());
        log.record(long);
        log.record(record("v", 2));
        assert_eq!(dropped(), before + 4);
        assert_eq!(log.shared.pending().len(), 1);
    }
}
