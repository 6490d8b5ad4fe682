//! A bounded table of per-key budgets: each key (a client address, an account, a token, a
//! principal) gets its own GCRA bucket from `governor` and, where the tier caps concurrency,
//! its own semaphore. The table is sharded LRU maps of fixed total size, so spraying new
//! addresses or tokens evicts the coldest keys instead of growing memory.
//!
//! An evicted key starts again with a full budget: with the default 16 384 keys, an attacker
//! must keep that many hotter keys busy to get one fresh budget back, which the GLOBAL tier
//! bounds anyway.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use lru::LruCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Keys kept per table (all shards together).
pub const DEFAULT_CAPACITY: usize = 16_384;
const SHARDS: usize = 16;

/// A key's budget.
pub struct Bucket {
    limiter: Option<Limiter>,
    inflight: Option<Arc<Semaphore>>,
}

/// What a check saw: allowed with what is left, or refused until `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed { limit: u32, remaining: u32 },
    Refused { limit: u32, retry_after: Duration },
}

impl Bucket {
    pub fn new(quota: Option<Quota>, concurrency: u32) -> Self {
        Self {
            limiter: quota.map(|q| {
                RateLimiter::direct_with_clock(q, DefaultClock::default())
                    .with_middleware::<StateInformationMiddleware>()
            }),
            inflight: (concurrency > 0).then(|| Arc::new(Semaphore::new(concurrency as usize))),
        }
    }

    /// Takes one request from the bucket.
    pub fn check(&self) -> Outcome {
        let Some(limiter) = &self.limiter else {
            return Outcome::Allowed {
                limit: 0,
                remaining: 0,
            };
        };
        match limiter.check() {
            Ok(snapshot) => Outcome::Allowed {
                limit: snapshot.quota().burst_size().get(),
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Outcome::Refused {
                limit: not_until.quota().burst_size().get(),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    /// A slot among this key's requests in flight, waiting up to `wait`; `Ok(None)` when the
    /// tier has no ceiling, `Err` when none freed up in time.
    pub async fn slot(&self, wait: Duration) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let Some(semaphore) = &self.inflight else {
            return Ok(None);
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        match tokio::time::timeout(wait, semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(()),
        }
    }

    pub fn has_ceiling(&self) -> bool {
        self.inflight.is_some()
    }
}

/// One shard: keys to buckets, least recently used evicted first.
type Shard = Mutex<LruCache<String, Arc<Bucket>, foldhash::fast::RandomState>>;

/// Buckets by key, bounded.
pub struct Table {
    quota: Option<Quota>,
    concurrency: u32,
    hasher: foldhash::fast::RandomState,
    shards: Box<[Shard]>,
}

impl Table {
    pub fn new(quota: Option<Quota>, concurrency: u32, capacity: usize) -> Self {
        let per_shard = NonZeroUsize::new((capacity / SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            quota,
            concurrency,
            hasher: Default::default(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::with_hasher(per_shard, Default::default())))
                .collect(),
        }
    }

    /// The key's bucket, made on first use (and the coldest key of its shard evicted when full).
    pub fn bucket(&self, key: &str) -> Arc<Bucket> {
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A poisoned shard only means another thread panicked mid-update of an LRU map; its
        // contents are still valid budgets.
        let mut map = match self.shards.get(shard).map(|m| m.lock()) {
            Some(Ok(map)) => map,
            Some(Err(poisoned)) => poisoned.into_inner(),
            None => return Arc::new(Bucket::new(self.quota, self.concurrency)),
        };
        map.get_or_insert_ref(key, || Arc::new(Bucket::new(self.quota, self.concurrency)))
            .clone()
    }

    pub fn check(&self, key: &str) -> Outcome {
        self.bucket(key).check()
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|m| m.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn quota(per_second: u32, burst: u32) -> Quota {
        Quota::per_second(NonZeroU32::new(per_second).unwrap())
            .allow_burst(NonZeroU32::new(burst).unwrap())
    }

    #[test]
    fn a_key_is_refused_past_its_burst_and_others_are_not() {
        let table = Table::new(Some(quota(1, 3)), 0, 64);
        for left in [2, 1, 0] {
            assert_eq!(
                table.check("a"),
                Outcome::Allowed {
                    limit: 3,
                    remaining: left
                }
            );
        }
        match table.check("a") {
            Outcome::Refused { limit, retry_after } => {
                assert_eq!(limit, 3);
                assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(table.check("b"), Outcome::Allowed { .. }));
    }

    #[test]
    fn the_table_stays_bounded() {
        let table = Table::new(Some(quota(1, 1)), 0, 256);
        for i in 0..10_000 {
            table.check(&format!("10.0.{}.{}", i / 256, i % 256));
        }
        assert!(table.len() <= 256, "{}", table.len());
    }

    #[tokio::test]
    async fn concurrency_slots_are_per_key() {
        let table = Table::new(None, 1, 64);
        let a = table.bucket("a");
        let held = a.slot(Duration::ZERO).await.unwrap();
        assert!(held.is_some());
        assert!(a.slot(Duration::from_millis(10)).await.is_err());
        assert!(
            table
                .bucket("b")
                .slot(Duration::ZERO)
                .await
                .unwrap()
                .is_some()
        );
        drop(held);
        assert!(a.slot(Duration::ZERO).await.unwrap().is_some());
    }
}
