//! Identical work in flight, done once: the first caller with a key leads (does the work
//! and publishes its outcome), callers arriving with the same key while it runs join and
//! receive a copy. Used for subgraph queries (`execute/subgraph.rs`, per endpoint) and
//! for whole client queries (`http/graphql.rs`, per supergraph).
//!
//! Keys are compared in full (a hash collision only costs a comparison): one caller never
//! receives the outcome of different work. A key is hashed once per caller, with foldhash
//! seeded at random per table (keys hold whole subgraph request bodies, which were
//! hashed three times with SipHash: for the lookup, the insertion and the removal); the
//! table stores that hash beside the key, and the leader finds its own entry again by
//! the hash and an id, with no second copy of the key.
//! A leader that is dropped before publishing (its client went away, it panicked, it
//! timed out) leaves the table; those who joined it are told so and do the work
//! themselves.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Work in flight, by key.
pub(crate) struct InFlightTable<K, V> {
    /// Seeded at random: keys carry client-chosen bytes (variables, headers).
    hasher: foldhash::quality::RandomState,
    map: Mutex<HashTable<Entry<K, V>>>,
    next_id: AtomicU64,
}

/// A key's work in flight: its hash (computed once), the key, which leader registered
/// it, and its outcome once published.
struct Entry<K, V> {
    hash: u64,
    key: K,
    id: u64,
    outcome: watch::Receiver<Option<V>>,
}

impl<K, V> Default for InFlightTable<K, V> {
    fn default() -> Self {
        Self {
            hasher: foldhash::quality::RandomState::default(),
            map: Mutex::new(HashTable::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

/// What a caller does: lead (do the work, then [`Leader::publish`]) or take the outcome
/// of the identical work it joined.
pub(crate) enum Turn<'a, K: Hash + Eq, V> {
    Lead(Leader<'a, K, V>),
    Joined(V),
}

impl<K: Hash + Eq, V: Clone> InFlightTable<K, V> {
    /// How many keys are in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Joins the work in flight under `key` and waits for its outcome, or leads it. A
    /// caller whose leader was dropped before publishing leads without registering (the
    /// others who joined do their own work too, none waits on another).
    pub(crate) async fn join_or_lead(&self, key: K) -> Turn<'_, K, V> {
        let hash = self.hasher.hash_one(&key);
        let mut joined = {
            let mut map = self.map.lock();
            match map.find(hash, |e| e.hash == hash && e.key == key) {
                Some(entry) => entry.outcome.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let entry = Entry {
                        hash,
                        key,
                        id,
                        outcome: rx,
                    };
                    map.insert_unique(hash, entry, |e| e.hash);
                    return Turn::Lead(Leader {
                        table: self,
                        registered: Some((hash, id)),
                        tx: Some(tx),
                    });
                }
            }
        };
        if let Ok(shared) = joined.wait_for(Option::is_some).await
            && let Some(outcome) = shared.as_ref()
        {
            return Turn::Joined(outcome.clone());
        }
        Turn::Lead(Leader {
            table: self,
            registered: None,
            tx: None,
        })
    }
}

/// The caller doing the work. Dropping it without [`publish`](Self::publish) removes its
/// entry, so nobody waits on work that will not finish.
pub(crate) struct Leader<'a, K: Hash + Eq, V> {
    table: &'a InFlightTable<K, V>,
    /// The hash and id of the entry it registered.
    registered: Option<(u64, u64)>,
    tx: Option<watch::Sender<Option<V>>>,
}

impl<K: Hash + Eq, V> Leader<'_, K, V> {
    /// Whether this caller registered its key (others may join it).
    #[cfg(test)]
    pub(crate) fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// Gives `outcome` to those who joined (nobody joins once the key has left the
    /// table; without joiners nothing is copied).
    pub(crate) fn publish(mut self, outcome: &V)
    where
        V: Clone,
    {
        self.leave();
        if let Some(tx) = self.tx.take()
            && tx.receiver_count() > 0
        {
            let _ = tx.send(Some(outcome.clone()));
        }
    }

    fn leave(&mut self) {
        if let Some((hash, id)) = self.registered.take() {
            // Found by its hash and this leader's id: no key to compare.
            if let Ok(entry) = self.table.map.lock().find_entry(hash, |e| e.id == id) {
                entry.remove();
            }
        }
    }
}

impl<K: Hash + Eq, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn work(table: &InFlightTable<u32, u64>, key: u32, runs: &AtomicUsize) -> u64 {
        match table.join_or_lead(key).await {
            Turn::Joined(v) => v,
            Turn::Lead(leader) => {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let v = u64::from(key) * 10;
                leader.publish(&v);
                v
            }
        }
    }

    #[tokio::test]
    async fn identical_keys_in_flight_run_once_and_different_keys_apart() {
        let table = Arc::new(InFlightTable::<u32, u64>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20u32 {
            let (table, runs) = (table.clone(), runs.clone());
            tasks.push(tokio::spawn(
                async move { work(&table, i % 2, &runs).await },
            ));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task"));
        }
        for (i, v) in outcomes.iter().enumerate() {
            assert_eq!(*v, (i as u64 % 2) * 10);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one run per key");
        assert_eq!(table.len(), 0, "the table empties");
    }

    #[tokio::test]
    async fn joiners_of_a_dropped_leader_do_the_work_themselves() {
        let table = Arc::new(InFlightTable::<u32, u64>::default());
        let Turn::Lead(leader) = table.join_or_lead(7).await else {
            panic!("the first caller leads");
        };
        assert!(leader.is_registered());
        let joiner = {
            let table = table.clone();
            tokio::spawn(async move {
                match table.join_or_lead(7).await {
                    Turn::Joined(v) => Some(v),
                    Turn::Lead(l) => {
                        assert!(!l.is_registered(), "an orphan leads unregistered");
                        None
                    }
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(leader);
        assert_eq!(joiner.await.expect("task"), None);
        assert_eq!(table.len(), 0);
    }
}
