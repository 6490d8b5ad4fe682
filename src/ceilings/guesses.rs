//! A per-address budget for wrong verification codes that refills with time.
//!
//! Each code allows a few wrong guesses, but registering again makes new codes; without a
//! budget that outlives registrations, guessing would be limited only by how fast one can
//! re-register. The budget is kept per normalized address (existing or not, so a refusal says
//! nothing about which addresses have accounts): [`ALLOWANCE`] wrong codes, then one more
//! every [`REFILL`]. It decays, so a stranger who spends someone's budget locks them out for
//! at most `REFILL` at a time, never for good. A correct code is refused only while the budget
//! is spent. The table is bounded: when full, fully refilled entries go first, then the ones
//! with the fewest wrong guesses, so spraying addresses cannot reset a spent budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong codes an address may spend at once.
pub const ALLOWANCE: f64 = 10.0;
/// How long the budget takes to regain one guess (so about ten an hour once spent).
pub const REFILL: Duration = Duration::from_secs(6 * 60);
/// Addresses tracked at once.
const CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Spent {
    guesses: f64,
    at: Instant,
}

impl Spent {
    fn now(&self, now: Instant) -> f64 {
        let regained = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        (self.guesses - regained).max(0.0)
    }
}

/// The address has spent its guesses; it may try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    pub retry_after_secs: u64,
}

pub struct GuessBudget {
    spent: Mutex<HashMap<String, Spent>>,
    capacity: usize,
}

impl Default for GuessBudget {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl GuessBudget {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            spent: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The process's budget (one server per process, and the budget must outlive requests).
    pub fn process() -> &'static Self {
        static BUDGET: std::sync::OnceLock<GuessBudget> = std::sync::OnceLock::new();
        BUDGET.get_or_init(Self::default)
    }

    /// Takes one guess of `address` before its code is checked, or refuses when none is left.
    /// Taken up front, under one lock: guesses sent at once cannot all pass a check made
    /// before any of them is counted. A guess that turns out right is given back
    /// ([`Self::refund`]).
    pub fn spend(&self, address: &str) -> Result<(), Exhausted> {
        self.spend_at(address, Instant::now())
    }

    /// Gives back a guess taken by [`Self::spend`] that was not a wrong code.
    pub fn refund(&self, address: &str) {
        let now = Instant::now();
        let mut table = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table.get_mut(address) {
            *entry = Spent {
                guesses: (entry.now(now) - 1.0).max(0.0),
                at: now,
            };
        }
    }

    fn spend_at(&self, address: &str, now: Instant) -> Result<(), Exhausted> {
        let mut table = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(spent) = table.get(address) {
            let over = spent.now(now) - (ALLOWANCE - 1.0);
            if over > 0.0 {
                return Err(Exhausted {
                    retry_after_secs: (over * REFILL.as_secs_f64()).ceil().max(1.0) as u64,
                });
            }
        } else if table.len() >= self.capacity {
            make_room(&mut table, self.capacity, now);
        }
        let entry = table.entry(address.to_owned()).or_insert(Spent {
            guesses: 0.0,
            at: now,
        });
        *entry = Spent {
            guesses: (entry.now(now) + 1.0).min(ALLOWANCE),
            at: now,
        };
        Ok(())
    }
}

/// Drops refilled entries; if none, the one with the fewest guesses spent.
fn make_room(table: &mut HashMap<String, Spent>, capacity: usize, now: Instant) {
    table.retain(|_, spent| spent.now(now) > 0.0);
    if table.len() >= capacity {
        let least = table
            .iter()
            .min_by(|a, b| a.1.now(now).total_cmp(&b.1.now(now)))
            .map(|(address, _)| address.clone());
        if let Some(address) = least {
            table.remove(&address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_spent_then_refills() {
        let budget = GuessBudget::default();
        let start = Instant::now();
        for _ in 0..ALLOWANCE as usize {
            assert!(budget.spend_at("a@x.io", start).is_ok());
        }
        let refused = budget.spend_at("a@x.io", start).unwrap_err();
        assert_eq!(refused.retry_after_secs, REFILL.as_secs());
        // Other addresses are unaffected.
        assert!(budget.spend_at("b@x.io", start).is_ok());
        // One refill later, exactly one more guess.
        let later = start + REFILL;
        assert!(budget.spend_at("a@x.io", later).is_ok());
        assert!(budget.spend_at("a@x.io", later).is_err());
        // Never locked for good.
        assert!(budget.spend_at("a@x.io", later + REFILL * 20).is_ok());
    }

    #[test]
    fn a_right_guess_is_given_back() {
        let budget = GuessBudget::default();
        for _ in 0..ALLOWANCE as usize * 3 {
            budget.spend("a@x.io").unwrap();
            budget.refund("a@x.io");
        }
        assert!(budget.spend("a@x.io").is_ok());
    }

    #[test]
    fn spraying_addresses_does_not_reset_a_spent_budget() {
        let budget = GuessBudget::with_capacity(8);
        let now = Instant::now();
        for _ in 0..ALLOWANCE as usize {
            budget.spend_at("victim@x.io", now).unwrap();
        }
        for i in 0..100 {
            budget.spend_at(&format!("spray{i}@x.io"), now).unwrap();
        }
        assert!(budget.spent.lock().unwrap().len() <= 8);
        assert!(budget.spend_at("victim@x.io", now).is_err());
    }
}
