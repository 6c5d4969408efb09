//! A small bounded, thread-safe cache. When full, the oldest eighth of the entries (by
//! insertion) is evicted; a hit is a lock and an `Arc` clone.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

struct Inner<K, V> {
    map: HashMap<K, (V, u64)>,
    tick: u64,
}

pub struct BoundedCache<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                tick: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Adds `old`'s hits and misses to this cache's (a reload carries the counters over).
    pub fn count_on_from(&self, old: &Self) {
        self.hits
            .fetch_add(old.hits.load(Ordering::Relaxed), Ordering::Relaxed);
        self.misses
            .fetch_add(old.misses.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let found = self.inner.lock().map.get(key).map(|(v, _)| v.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Like [`get`](Self::get), without counting a hit or a miss.
    pub fn peek(&self, key: &K) -> Option<V> {
        self.inner.lock().map.get(key).map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut inner = self.inner.lock();
        if inner.map.len() >= self.capacity && !inner.map.contains_key(&key) {
            let mut ticks: Vec<u64> = inner.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[(ticks.len() / 8).min(ticks.len() - 1)];
            inner.map.retain(|_, (_, t)| *t > cut);
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.insert(key, (value, tick));
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_counts_hits() {
        let c = BoundedCache::new(16);
        for i in 0..100 {
            c.insert(i, i * 2);
        }
        assert!(c.len() <= 16);
        assert_eq!(c.get(&99), Some(198));
        assert_eq!(c.get(&0), None);
        assert_eq!(c.stats(), (1, 1));
    }
}
