//! One byte budget for every request body the proxy holds in memory for a body
//! substitution (everything else streams). Without it each request may buffer up to its own
//! cap, and many at once exhaust memory. A body reserves twice its size as it arrives (the
//! bytes received and the rewritten copy), and gives it back when the request is sent or
//! dropped; a request that would exceed the budget is refused at once (`503` with
//! `Retry-After`), never queued. `AGENT_VAULT_BODY_BUFFER_MB` sets the budget.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub const ENV: &str = "AGENT_VAULT_BODY_BUFFER_MB";
/// Default total, in MiB.
pub const DEFAULT_MB: usize = 256;
/// Largest single body buffered, whatever the total.
pub const MAX_PER_REQUEST: usize = 32 * 1024 * 1024;
/// Reserved per byte received: the body and its rewritten copy.
const COPIES: usize = 2;
const MIB: usize = 1024 * 1024;

#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes of the budget held by one request; returned on drop.
#[derive(Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

/// Why a body cannot be buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the per-request cap: the agent's request is too large.
    TooLarge { limit: usize },
    /// The budget is spent by other requests right now.
    Busy,
}

impl BodyBudget {
    pub fn new(total_bytes: usize) -> Self {
        // The semaphore counts bytes; its limit is far above any sensible budget.
        let total = total_bytes.clamp(COPIES, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The budget from `AGENT_VAULT_BODY_BUFFER_MB` (default [`DEFAULT_MB`]), with a warning
    /// for a value that is not a positive number.
    pub fn from_env(value: Option<&str>) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mb = match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => DEFAULT_MB,
            Some(text) => match text.parse::<usize>() {
                Ok(mb) if mb > 0 => mb,
                _ => {
                    warnings.push(format!(
                        "{ENV}={} is not a positive number of MiB; using {DEFAULT_MB}",
                        crate::ceilings::excerpt(text, 32)
                    ));
                    DEFAULT_MB
                }
            },
        };
        (Self::new(mb.saturating_mul(MIB)), warnings)
    }

    /// The largest body one request may buffer: the per-request cap, or what the total allows.
    pub fn per_request(&self) -> usize {
        MAX_PER_REQUEST.min(self.total / COPIES)
    }

    /// Bytes free right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Grows `reservation` to cover a body of `body_len` bytes (so far).
    pub fn reserve(&self, reservation: &mut Reservation, body_len: usize) -> Result<(), Refused> {
        let limit = self.per_request();
        if body_len > limit {
            return Err(Refused::TooLarge { limit });
        }
        let wanted = body_len * COPIES;
        let held = reservation.permit.as_ref().map_or(0, |p| p.num_permits());
        let Some(more) = wanted.checked_sub(held).filter(|more| *more > 0) else {
            return Ok(());
        };
        let more = u32::try_from(more).map_err(|_| Refused::TooLarge { limit })?;
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| Refused::Busy)?;
        match &mut reservation.permit {
            Some(held) => held.merge(permit),
            none => *none = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_total_and_are_returned_on_drop() {
        let budget = BodyBudget::new(1000);
        assert_eq!(budget.per_request(), 500);
        let mut first = Reservation::default();
        budget.reserve(&mut first, 200).unwrap();
        budget.reserve(&mut first, 400).unwrap();
        assert_eq!(budget.available(), 200);
        let mut second = Reservation::default();
        assert_eq!(budget.reserve(&mut second, 101), Err(Refused::Busy));
        budget.reserve(&mut second, 100).unwrap();
        assert_eq!(
            budget.reserve(&mut second, 501),
            Err(Refused::TooLarge { limit: 500 })
        );
        drop(first);
        drop(second);
        assert_eq!(budget.available(), 1000);
    }

    #[test]
    fn the_environment_sets_the_total() {
        let (budget, warnings) = BodyBudget::from_env(Some("3"));
        assert!(warnings.is_empty());
        assert_eq!(budget.available(), 3 * MIB);
        let (budget, warnings) = BodyBudget::from_env(Some("lots"));
        assert_eq!(budget.available(), DEFAULT_MB * MIB);
        assert!(warnings[0].contains(ENV), "{warnings:?}");
    }
}
