//! In-process buckets: 64 shards, each a mutex over `hash(client) → tat`, held only for
//! one map lookup. Memory is bounded by `max_clients`: a full shard first forgets the
//! clients whose bucket is full again (`tat` in the past, which changes nothing), then,
//! if more than 7/8 of it is still in use, arbitrary clients down to 3/4 (their buckets
//! refill early: the bound wins over precision under a flood of distinct clients).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Instant;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::{Decision, Limiter, LimiterError, Quota, gcra};

const SHARDS: usize = 64;

/// The in-process backend (one budget per gateway process).
pub struct MemoryLimiter {
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

impl MemoryLimiter {
    /// A limiter tracking at most `max_clients` clients (rounded up to a multiple of 64).
    pub fn new(max_clients: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_clients.div_ceil(SHARDS).max(16),
            hasher: Default::default(),
            epoch: Instant::now(),
        }
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most clients ever tracked at once.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Charge synchronously (the trait's future is this, already resolved).
    pub fn acquire_now(&self, key: &str, cost: u64, quota: Quota) -> Decision {
        let hash = self.hasher.hash_one(key);
        let now = self.epoch.elapsed().as_micros() as u64;
        let mut shard = self.shards[(hash as usize) % SHARDS].lock();
        let tat = shard.get(&hash).copied().unwrap_or(0);
        let (decision, new_tat) = gcra(tat, now, cost, quota);
        if let Some(new_tat) = new_tat {
            if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
                shard.retain(|_, tat| *tat > now);
                if shard.len() > self.per_shard / 8 * 7 {
                    let excess = shard.len() - self.per_shard / 4 * 3;
                    let victims: Vec<u64> = shard.keys().take(excess).copied().collect();
                    for v in victims {
                        shard.remove(&v);
                    }
                }
            }
            shard.insert(hash, new_tat);
        }
        decision
    }
}

impl Limiter for MemoryLimiter {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        cost: u64,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        let decision = self.acquire_now(key, cost, quota);
        Box::pin(std::future::ready(Ok(decision)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_million_distinct_clients_stay_within_the_bound() {
        let limiter = MemoryLimiter::new(10_000);
        let quota = Quota {
            budget: 5_000,
            window: Duration::from_secs(60),
        };
        for i in 0..1_000_000u32 {
            assert!(limiter.acquire_now(&format!("addr:{i}"), 10, quota).allowed);
        }
        assert!(limiter.len() <= limiter.capacity(), "{}", limiter.len());
        assert!(limiter.capacity() <= 10_048);
        // Recent clients are still limited.
        let d = limiter.acquire_now("addr:999999", 10, quota);
        assert_eq!(d.remaining, 5_000 - 20);
    }

    #[test]
    fn budgets_are_per_client() {
        let limiter = MemoryLimiter::new(1024);
        let quota = Quota {
            budget: 30,
            window: Duration::from_secs(3600),
        };
        for _ in 0..3 {
            assert!(limiter.acquire_now("a", 10, quota).allowed);
        }
        assert!(!limiter.acquire_now("a", 10, quota).allowed);
        assert!(limiter.acquire_now("b", 30, quota).allowed);
    }
}
