//! The automatic persisted queries store (`[apq]`): query texts by SHA-256. Always a
//! bounded in-process cache; with `redis_url`, also Redis, shared by the gateway's
//! replicas, so a query registered through one replica is found by all of them.
//!
//! Redis is a second level: a lookup that misses in memory asks Redis (within
//! `redis_timeout_ms`), and checks that the text it gets back hashes to the key (a
//! store anyone else can write to is not trusted); registering writes both, Redis with
//! a TTL. Redis unreachable or slow: a lookup is a miss (`PERSISTED_QUERY_NOT_FOUND`,
//! and APQ clients send the text again, which is served), a registration stays in
//! memory; both are counted and logged at most every 10 s. Keys: `<prefix><sha256 hex>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;

use crate::config::ApqConfig;
use crate::plan::{BoundedCache, QueryHash, hash_query};
use crate::redis_conn::RedisConn;

struct Shared {
    conn: RedisConn,
    prefix: String,
    ttl_secs: u64,
}

/// What the store counts (shown in `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct ApqCounters {
    /// Lookups answered by Redis after a memory miss.
    pub(crate) redis_hits: AtomicU64,
    /// Redis calls that failed or timed out.
    pub(crate) redis_failures: AtomicU64,
    /// Texts read from Redis that did not hash to their key (ignored).
    pub(crate) redis_mismatches: AtomicU64,
}

pub(crate) struct ApqStore {
    memory: BoundedCache<QueryHash, Arc<str>>,
    redis: Option<Shared>,
    pub(crate) counters: ApqCounters,
    last_warning: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl ApqStore {
    /// The store of `config`; a bad `redis_url` is an error naming the key.
    pub(crate) fn new(config: &ApqConfig) -> Result<Self, String> {
        let redis = match &config.redis_url {
            Some(url) => Some(Shared {
                conn: RedisConn::new(
                    url,
                    Duration::from_millis(config.redis_timeout_ms.max(1)),
                    Duration::from_millis(config.redis_retry_interval_ms),
                )?,
                prefix: config.redis_key_prefix.clone(),
                ttl_secs: config.redis_ttl_secs.max(1),
            }),
            None => None,
        };
        Ok(Self {
            memory: BoundedCache::new(config.max_entries),
            redis,
            counters: ApqCounters::default(),
            last_warning: parking_lot::Mutex::new(None),
        })
    }

    fn failed(&self, what: &str, message: &str) {
        self.counters.redis_failures.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warning.lock();
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(error = %message, "APQ store: Redis {what} failed; using this process's memory");
        }
    }

    /// The text registered under `hash`, from memory, else from Redis.
    pub(crate) async fn get(&self, hash: &QueryHash) -> Option<Arc<str>> {
        if let Some(text) = self.memory.get(hash) {
            return Some(text);
        }
        let shared = self.redis.as_ref()?;
        let key = format!("{}{}", shared.prefix, hex::encode(hash));
        let reply = shared
            .conn
            .run(|mut c| async move { c.get::<_, Option<String>>(key).await })
            .await;
        match reply {
            Ok(Some(text)) if hash_query(&text) == *hash => {
                self.counters.redis_hits.fetch_add(1, Ordering::Relaxed);
                let text: Arc<str> = Arc::from(text);
                self.memory.insert(*hash, text.clone());
                Some(text)
            }
            Ok(Some(_)) => {
                self.counters
                    .redis_mismatches
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(None) => None,
            Err(message) => {
                self.failed("lookup", &message);
                None
            }
        }
    }

    /// Registers `text` (already checked to hash to `hash`).
    pub(crate) async fn insert(&self, hash: QueryHash, text: Arc<str>) {
        self.memory.insert(hash, text.clone());
        let Some(shared) = &self.redis else {
            return;
        };
        let key = format!("{}{}", shared.prefix, hex::encode(hash));
        let ttl = shared.ttl_secs;
        let reply = shared
            .conn
            .run(|mut c| async move { c.set_ex::<_, _, ()>(key, text.as_ref(), ttl).await })
            .await;
        if let Err(message) = reply {
            self.failed("registration", &message);
        }
    }
}
