//! Redis Streams bus: `XADD` to one stream, consumer groups with `XREADGROUP`, `XACK` after
//! handling. Deliveries left pending by a consumer that died are claimed (`XAUTOCLAIM`) by
//! the group's live consumers once idle for [`CLAIM_IDLE`].
//!
//! Connections are bounded: connecting times out after [`CONNECT_TIMEOUT`] and the
//! connection manager retries a few times only, so a process started without Redis fails
//! (or, for the relay, retries in its own loop) instead of hanging.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, Value};

use super::{Acker, Bus, Delivery, DeliverySource, Event, Subscription};
use crate::KitError;

/// Bound on establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one command's response (blocking reads use their own, longer bound).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `XREADGROUP` blocks waiting for new entries.
const BLOCK_MS: u64 = 1_000;
/// Pending deliveries idle this long are claimed by another consumer of the group.
pub const CLAIM_IDLE: Duration = Duration::from_secs(30);
/// Approximate cap on the stream length.
const MAX_LEN: usize = 100_000;
const FIELD: &str = "event";

/// Redis Streams bus on one stream key.
#[derive(Clone)]
pub struct RedisStreamsBus {
    client: Client,
    conn: ConnectionManager,
    stream: String,
}

impl std::fmt::Debug for RedisStreamsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamsBus")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisStreamsBus {
    /// Connect to `url` (`redis://127.0.0.1:6379`) and use stream `stream_key`. Fails within
    /// a few seconds when Redis is unreachable.
    pub async fn connect(url: &str, stream_key: &str) -> Result<Self, KitError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT * 3,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| KitError::Bus(format!("timed out connecting to redis at {url}")))??;
        let mut bus = Self {
            client,
            conn,
            stream: stream_key.to_string(),
        };
        let _: String = redis::cmd("PING").query_async(&mut bus.conn).await?;
        Ok(bus)
    }

    /// The stream key.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    async fn read_connection(&self) -> Result<MultiplexedConnection, KitError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT + Duration::from_millis(BLOCK_MS)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

#[async_trait]
impl Bus for RedisStreamsBus {
    async fn publish(&self, event: &Event) -> Result<(), KitError> {
        let body = serde_json::to_string(event)?;
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_LEN)
            .arg("*")
            .arg(FIELD)
            .arg(body)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn subscribe(&self, group: &str) -> Result<Subscription, KitError> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(e.into());
        }
        let read = self.read_connection().await?;
        Ok(Subscription::new(Box::new(RedisSource {
            bus: self.clone(),
            read,
            group: group.to_string(),
            consumer: format!("consumer-{}", uuid::Uuid::new_v4().simple()),
            buffered: VecDeque::new(),
            last_claim: None,
        })))
    }
}

struct RedisSource {
    bus: RedisStreamsBus,
    read: MultiplexedConnection,
    group: String,
    consumer: String,
    buffered: VecDeque<(String, Event)>,
    last_claim: Option<tokio::time::Instant>,
}

impl RedisSource {
    fn push_entries(&mut self, ids: Vec<StreamId>) {
        for entry in ids {
            let event = entry
                .map
                .get(FIELD)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .and_then(|s| serde_json::from_str::<Event>(&s).ok());
            match event {
                Some(event) => self.buffered.push_back((entry.id, event)),
                None => {
                    tracing::error!(id = %entry.id, stream = %self.bus.stream, "dropping malformed stream entry");
                    let mut conn = self.bus.conn.clone();
                    let id = entry.id.clone();
                    let (stream, group) = (self.bus.stream.clone(), self.group.clone());
                    tokio::spawn(async move {
                        let _: redis::RedisResult<i64> = redis::cmd("XACK")
                            .arg(stream)
                            .arg(group)
                            .arg(id)
                            .query_async(&mut conn)
                            .await;
                    });
                }
            }
        }
    }

    async fn claim_stale(&mut self) -> Result<(), KitError> {
        let due = self
            .last_claim
            .is_none_or(|t| t.elapsed() >= CLAIM_IDLE / 2);
        if !due {
            return Ok(());
        }
        self.last_claim = Some(tokio::time::Instant::now());
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.bus.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(CLAIM_IDLE.as_millis() as u64)
            .arg("0")
            .arg("COUNT")
            .arg(100)
            .query_async(&mut self.read)
            .await?;
        if let Ok(claimed) = redis::from_redis_value::<redis::streams::StreamAutoClaimReply>(reply)
        {
            self.push_entries(claimed.claimed);
        }
        Ok(())
    }
}

#[async_trait]
impl DeliverySource for RedisSource {
    async fn next(&mut self) -> Result<Delivery, KitError> {
        loop {
            if let Some((id, event)) = self.buffered.pop_front() {
                let acker = RedisAck {
                    conn: self.bus.conn.clone(),
                    stream: self.bus.stream.clone(),
                    group: self.group.clone(),
                    id,
                };
                return Ok(Delivery::new(event, Box::new(acker)));
            }
            self.claim_stale().await?;
            if !self.buffered.is_empty() {
                continue;
            }
            let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(64)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&self.bus.stream)
                .arg(">")
                .query_async(&mut self.read)
                .await?;
            if let Some(reply) = reply {
                for key in reply.keys {
                    self.push_entries(key.ids);
                }
            }
        }
    }
}

struct RedisAck {
    conn: ConnectionManager,
    stream: String,
    group: String,
    id: String,
}

#[async_trait]
impl Acker for RedisAck {
    async fn ack(mut self: Box<Self>) -> Result<(), KitError> {
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.id)
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }
}
