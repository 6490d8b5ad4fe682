//! One byte budget for every request body the proxy holds in memory for a body
//! substitution (everything else streams). Without it each request may buffer up to its own
//! cap, and many at once exhaust memory. A body reserves twice its size as it arrives (the
//! bytes received and the rewritten copy), and gives it back when the request is sent or
//! dropped; a request that would exceed the budget is refused at once (`503` with
//! `Retry-After`), never queued. `AGENT_VAULT_BODY_BUFFER_MB` sets the budget. One person
//! (the share key of the proxy port: a user with their tokens and agents) holds at most half
//! of it, or one largest body where that is more: a red team held it all with eight bodies
//! sent to within a byte of their end, and every other vault's substitutions failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    by_person: ByPerson,
}

/// Bytes held by each person's reservations.
type ByPerson = Arc<Mutex<HashMap<Arc<str>, usize, foldhash::fast::RandomState>>>;

/// Bytes of the budget held by one request; returned on drop.
#[derive(Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    /// Whose share the bytes count against, and the table they are counted in.
    person: Option<(Arc<str>, ByPerson)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let (Some((person, by_person)), Some(permit)) = (&self.person, &self.permit) {
            give_back(by_person, person, permit.num_permits());
        }
    }
}

fn give_back(by_person: &ByPerson, person: &Arc<str>, bytes: usize) {
    let mut by_person = by_person.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(held) = by_person.get_mut(person) {
        *held = held.saturating_sub(bytes);
        if *held == 0 {
            by_person.remove(person);
        }
    }
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
            by_person: Arc::default(),
        }
    }

    /// An empty reservation whose bytes count against `person`'s share.
    pub fn reservation_for(&self, person: Arc<str>) -> Reservation {
        Reservation {
            permit: None,
            person: Some((person, self.by_person.clone())),
        }
    }

    /// What one person may hold at once: half the total, or one largest body.
    fn person_share(&self) -> usize {
        (self.total / 2).max(self.per_request() * COPIES)
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
        let more_permits = u32::try_from(more).map_err(|_| Refused::TooLarge { limit })?;
        // The person's count is taken first, under its lock, so two of their requests cannot
        // both pass the check; given back if the total refuses.
        let person = reservation.person.as_ref();
        if let Some((person, by_person)) = person {
            let mut by_person = by_person.lock().unwrap_or_else(|e| e.into_inner());
            let held = by_person.get(person).copied().unwrap_or(0);
            if held + more > self.person_share() {
                return Err(Refused::Busy);
            }
            by_person.insert(person.clone(), held + more);
        }
        let Ok(permit) = self.bytes.clone().try_acquire_many_owned(more_permits) else {
            if let Some((person, by_person)) = person {
                give_back(by_person, person, more);
            }
            return Err(Refused::Busy);
        };
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
    fn one_person_holds_at_most_half_the_budget() {
        let budget = BodyBudget::new(256 * MIB);
        let largest = budget.per_request();
        let person = |name: &str| budget.reservation_for(Arc::from(name));
        let (mut a1, mut a2, mut a3) = (person("a"), person("a"), person("a"));
        budget.reserve(&mut a1, largest).unwrap();
        budget.reserve(&mut a2, largest).unwrap();
        assert_eq!(
            budget.reserve(&mut a3, 1),
            Err(Refused::Busy),
            "a's half is held"
        );
        let mut b = person("b");
        budget.reserve(&mut b, largest).unwrap();
        drop(a1);
        budget.reserve(&mut a3, 1).unwrap();
        drop((a2, a3, b));
        assert_eq!(budget.available(), 256 * MIB);
        assert!(budget.by_person.lock().unwrap().is_empty());
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
