//! Password-hashing slots. One Argon2id run holds 64 MiB for a fraction of a second; without
//! a bound, fifty concurrent logins take fifty blocking threads and over 3 GiB. Every hash
//! and password check in the process (login, register, verify's hash, change-password, invite
//! acceptance, the web sign-in and approval pages, which all go through `ops::accounts`) runs
//! in one of [`HashSlots::slots`] slots; a few more callers may wait for one, briefly; the
//! rest are refused at once with [`Busy`] (a `429` with `Retry-After`), which keeps resident
//! memory under `(slots + 1) × 64 MiB` plus the server's own.
//!
//! The one more is a lane of its own for sign-ins already known to succeed (an address and
//! account that signed in before, see `ops::accounts`): anyone can keep the shared slots busy
//! with wrong passwords from enough addresses (a red team refused every login that way), but
//! not this lane, which takes only a password that has worked from that address before.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Most hashing slots, whatever the machine: 4 × 64 MiB is enough to keep logins snappy.
const MAX_SLOTS: usize = 4;
/// Callers that may wait for a slot, per slot.
const WAITERS_PER_SLOT: usize = 4;
/// How long a waiting caller waits before being told to come back.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// What the refusal suggests: about the time a few hashes take.
pub const RETRY_AFTER_SECS: u64 = 2;

/// The machine is busy hashing passwords; try again in [`RETRY_AFTER_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking other passwords; retry in {RETRY_AFTER_SECS} s")]
pub struct Busy;

/// What can stop a hash: no slot, or the blocking thread died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error("password hashing failed")]
    Failed,
}

pub struct HashSlots {
    shared: Lane,
    known: Lane,
    slots: usize,
}

/// Slots, and how many callers may wait for one.
struct Lane {
    permits: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Lane {
    fn new(slots: usize) -> Self {
        Self {
            permits: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * WAITERS_PER_SLOT,
        }
    }

    async fn wait_for_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Busy> {
        // Counted before waiting, so a burst beyond the queue is refused without waiting.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let acquired = tokio::time::timeout(MAX_WAIT, self.permits.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }
}

impl HashSlots {
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            shared: Lane::new(slots),
            known: Lane::new(1),
            slots,
        }
    }

    /// The process's slots: one per CPU, at most [`MAX_SLOTS`] (Argon2 is CPU-bound, so
    /// more slots than CPUs only add memory, not throughput).
    pub fn process() -> &'static Self {
        static SLOTS: OnceLock<HashSlots> = OnceLock::new();
        SLOTS.get_or_init(|| Self::new(machine_slots()))
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Runs `work` (a hash or a check) on a blocking thread in a slot.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, HashError> {
        self.run_as(false, work).await
    }

    /// [`Self::run`]; `known`: a sign-in known to succeed, which waits in its own lane when
    /// the shared slots are taken.
    pub async fn run_as<R: Send + 'static>(
        &self,
        known: bool,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, HashError> {
        let permit = match self.shared.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) if known => self.known.wait_for_slot().await?,
            Err(_) => self.shared.wait_for_slot().await?,
        };
        let result = tokio::task::spawn_blocking(work).await;
        drop(permit);
        result.map_err(|_| HashError::Failed)
    }
}

/// Slots for this machine: its CPUs, between 1 and [`MAX_SLOTS`].
pub fn machine_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_burst_beyond_slots_and_queue_is_refused_not_queued() {
        let slots = Arc::new(HashSlots::new(1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        // One caller holds the only slot until released.
        let holder = {
            let (slots, rx) = (slots.clone(), release_rx.clone());
            tokio::spawn(async move {
                slots
                    .run(move || {
                        let _ = rx.lock().unwrap().recv();
                    })
                    .await
            })
        };
        while slots.shared.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // Four may wait; the fifth is refused at once.
        let waiters: Vec<_> = (0..WAITERS_PER_SLOT)
            .map(|i| {
                let slots = slots.clone();
                tokio::spawn(async move { slots.run(move || i).await })
            })
            .collect();
        while slots.shared.waiting.load(Ordering::Acquire) < WAITERS_PER_SLOT {
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.run(|| ()).await, Err(HashError::Busy(Busy)));
        // A known sign-in has a lane of its own.
        assert_eq!(slots.run_as(true, || 7).await, Ok(7));
        release_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        for (i, waiter) in waiters.into_iter().enumerate() {
            assert_eq!(waiter.await.unwrap(), Ok(i));
        }
    }

    #[test]
    fn the_machine_gets_between_one_and_four_slots() {
        assert!((1..=MAX_SLOTS).contains(&machine_slots()));
    }
}
