//! The trust-token replay check shared by every replica of a subgraph, over Redis.
//!
//! Each subgraph process remembers the token ids it accepted ([`portico_trust::ReplayGuard`]),
//! but a token captured on the way to one replica could be replayed to another within its
//! minute of life. With a Redis URL (`portico subgraph --redis-url`, the same Redis as the
//! event bus), every accepted id is also recorded with `SET key 1 NX EXAT <dead after>`:
//! the first replica to see the id records it, any later one finds it and refuses the
//! request (HTTP 401, `trust token was already used`).
//!
//! Redis unreachable: the request is served on the process-local check alone and a
//! warning is logged (at most once per 10 s), so a Redis outage weakens replay
//! protection across replicas but never takes the subgraphs down with it.

use std::time::Duration;

use portico_trust::{ClaimFuture, SharedReplayStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::KitError;

/// Connecting to Redis gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One `SET` gives up after this long (the request then goes on without it).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Accepted trust-token ids in Redis, under `<prefix>:<audience>:<jti>`.
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Connect to `url`; keys start with `prefix` (`portico:trust:jti` in the platform).
    /// Fails within a few seconds when Redis is unreachable.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, KitError> {
        Ok(Self {
            conn: connect_bounded(url).await?,
            prefix: prefix.to_string(),
        })
    }
}

/// A Redis connection (reconnecting on its own) whose connect and every command are
/// bounded in time: connect within a few seconds or fail, and `RESPONSE_TIMEOUT` per
/// command, so a Redis outage costs a request little. Checked with a `PING`.
pub async fn connect_bounded(url: &str) -> Result<ConnectionManager, KitError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    let mut conn = tokio::time::timeout(
        CONNECT_TIMEOUT * 3,
        client.get_connection_manager_with_config(config),
    )
    .await
    .map_err(|_| KitError::Bus(format!("timed out connecting to redis at {url}")))??;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok(conn)
}

impl SharedReplayStore for RedisReplayStore {
    fn claim<'a>(&'a self, audience: &'a str, jti: &'a str, dead_after: u64) -> ClaimFuture<'a> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = format!("{}:{audience}:{jti}", self.prefix);
            let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(dead_after)
                .query_async(&mut conn)
                .await;
            // `OK` when recorded now, nil when the key was there.
            set.map(|reply| reply.is_some()).map_err(|e| e.to_string())
        })
    }
}
