//! In-process buckets: 64 shards, each a mutex over `hash(client) → tat`, held only for
//! one map lookup. Memory is bounded by `max_clients`: a full shard first forgets the
//! clients whose bucket is full again (`tat` in the past, which changes nothing), then,
//! if more than 7/8 of it is still in use, the clients closest to a full bucket (lowest
//! `tat`) down to 3/4. What it forgets goes into a fixed-size sketch (4 slots per client
//! place, each the highest `tat` forgotten there, 8 bytes a slot): a client the shard
//! does not know starts at its slot's `tat`, so an evicted client never comes back to a
//! fuller bucket than it left (a flood of distinct clients cannot reset a budget); a new
//! client sharing a slot with an evicted one shares its debt until that `tat` is past
//! (under a sustained flood of distinct clients, that debt grows: the bound and the
//! refusal of budget resets win over fairness to newcomers; raise `memory_max_clients`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Instant;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::{Decision, Limiter, LimiterError, Quota, gcra};

const SHARDS: usize = 64;

/// One shard: `hash(client) → tat`, and the sketch of forgotten clients' `tat`s.
struct Shard {
    tats: HashMap<u64, u64>,
    forgotten: Box<[u64]>,
}

impl Shard {
    fn new(places: usize) -> Self {
        Self {
            tats: HashMap::new(),
            forgotten: vec![0; places * 4].into_boxed_slice(),
        }
    }

    /// The sketch slot of `hash` (other bits than those choosing the shard).
    fn slot(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) % self.forgotten.len()
    }
}

/// The in-process backend (one budget per gateway process).
pub struct MemoryLimiter {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

impl MemoryLimiter {
    /// A limiter tracking at most `max_clients` clients (rounded up to a multiple of 64).
    pub fn new(max_clients: usize) -> Self {
        let per_shard = max_clients.div_ceil(SHARDS).max(16);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            per_shard,
            hasher: Default::default(),
            epoch: Instant::now(),
        }
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().tats.len()).sum()
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
        let mut guard = self.shards[(hash as usize) % SHARDS].lock();
        let shard = &mut *guard;
        let tat = match shard.tats.get(&hash) {
            Some(tat) => *tat,
            None => shard.forgotten[shard.slot(hash)],
        };
        let (decision, new_tat) = gcra(tat, now, cost, quota);
        if let Some(new_tat) = new_tat {
            if shard.tats.len() >= self.per_shard && !shard.tats.contains_key(&hash) {
                shard.tats.retain(|_, tat| *tat > now);
                if shard.tats.len() > self.per_shard / 8 * 7 {
                    // Forget the `excess` clients closest to a full bucket (ties: all of
                    // them), remembering each one's `tat` in its sketch slot.
                    let excess = shard.tats.len() - self.per_shard / 4 * 3;
                    let mut tats: Vec<u64> = shard.tats.values().copied().collect();
                    let (_, cut, _) = tats.select_nth_unstable(excess.saturating_sub(1));
                    let cut = *cut;
                    let Shard { tats, forgotten } = shard;
                    let slots = forgotten.len();
                    tats.retain(|h, tat| {
                        if *tat > cut {
                            return true;
                        }
                        let slot = &mut forgotten[((*h >> 32) as usize) % slots];
                        *slot = (*slot).max(*tat);
                        false
                    });
                }
            }
            shard.tats.insert(hash, new_tat);
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
        // Recent clients are still limited (a client sharing a sketch slot with
        // forgotten ones starts with their debt: here a few hundred points).
        let d = limiter.acquire_now("addr:999999", 10, quota);
        assert!(d.allowed, "{d:?}");
        assert!(d.remaining <= 5_000 - 20, "{d:?}");
    }

    #[test]
    fn a_client_evicted_by_a_flood_of_others_does_not_get_a_fresh_budget() {
        let limiter = MemoryLimiter::new(1024);
        let quota = Quota {
            budget: 100,
            window: Duration::from_secs(3600),
        };
        assert!(limiter.acquire_now("victim", 100, quota).allowed);
        assert!(!limiter.acquire_now("victim", 10, quota).allowed);
        // 100,000 other clients spend most of their budget: every shard overflows many
        // times, and the victim's entry is forgotten.
        for i in 0..100_000u32 {
            // Some of them share a slot with a forgotten debtor and are refused.
            limiter.acquire_now(&format!("flood:{i}"), 90, quota);
        }
        assert!(limiter.len() <= limiter.capacity());
        // Forgotten or not, the victim's bucket is no fuller than it was: still refused.
        let d = limiter.acquire_now("victim", 10, quota);
        assert!(!d.allowed, "{d:?}");
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
