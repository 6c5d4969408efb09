//! Domain events between services, without loss.
//!
//! Write side: [`enqueue`] inserts the event into the service's `outbox` table **inside the
//! transaction of the domain write**, so both commit or neither does. [`spawn_relay`]
//! publishes unpublished outbox rows in order to the [`Bus`] and marks them published; while
//! the bus is down it keeps retrying, so nothing written is lost (a row may be published
//! twice if the process dies between publish and mark — consumers are idempotent).
//!
//! Read side: [`spawn_consumer`] subscribes a consumer group and runs the handler in a
//! transaction that also records the event id in `processed_events`; an event already
//! recorded is acknowledged and skipped.
//!
//! Buses: [`InProcessBus`] (default, one per process, fan-out to every group) and
//! [`RedisStreamsBus`] (XADD / XREADGROUP consumer groups / XACK).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KitError;

mod inprocess;
mod outbox;
mod redis_streams;

pub use inprocess::InProcessBus;
pub use outbox::{
    ConsumerHandler, OUTBOX_RETENTION, PROCESSED_RETENTION, enqueue, prune, spawn_consumer,
    spawn_consumer_then, spawn_relay,
};
pub use redis_streams::RedisStreamsBus;

/// auth → users: `{userId, username}`.
pub const USER_REGISTERED: &str = "USER_REGISTERED";
/// users → notifications: `{followerId, followeeId}`.
pub const USER_FOLLOWED: &str = "USER_FOLLOWED";
/// users → notifications: `{followerId, followeeId}`.
pub const USER_UNFOLLOWED: &str = "USER_UNFOLLOWED";
/// posts → likes, comments, notifications: `{postId, authorId}`.
pub const POST_CREATED: &str = "POST_CREATED";
/// posts → likes, comments, notifications: `{postId, authorId}`.
pub const POST_DELETED: &str = "POST_DELETED";
/// likes → notifications: `{postId, userId}`.
pub const POST_LIKED: &str = "POST_LIKED";
/// likes → notifications: `{postId, userId}`.
pub const POST_UNLIKED: &str = "POST_UNLIKED";
/// comments → notifications: `{postId, commentId, authorId}`.
pub const POST_COMMENTED: &str = "POST_COMMENTED";
/// comments → notifications: `{postId, commentId, authorId}`.
pub const COMMENT_DELETED: &str = "COMMENT_DELETED";

/// A domain event as it travels on the bus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

impl Event {
    /// A new event with a fresh UUIDv7 id.
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_string(),
            payload,
            occurred_at: crate::now(),
        }
    }
}

/// Where events are published and from which consumer groups read them.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publish one event; `Err` when the bus is unreachable (the relay retries).
    async fn publish(&self, event: &Event) -> Result<(), KitError>;
    /// Join consumer group `group`: every group receives every event published after the
    /// group first subscribed (the in-process bus also replays its recent history); the
    /// subscribers of one group share its events (competing consumers).
    async fn subscribe(&self, group: &str) -> Result<Subscription, KitError>;
}

/// A source of deliveries, implemented by each bus.
#[async_trait]
pub trait DeliverySource: Send {
    /// Wait for the next delivery.
    async fn next(&mut self) -> Result<Delivery, KitError>;
}

/// Acknowledges one delivery, implemented by each bus.
#[async_trait]
pub trait Acker: Send {
    async fn ack(self: Box<Self>) -> Result<(), KitError>;
}

/// A consumer group membership: yields deliveries to acknowledge once handled.
pub struct Subscription {
    source: Box<dyn DeliverySource>,
}

impl Subscription {
    pub fn new(source: Box<dyn DeliverySource>) -> Self {
        Self { source }
    }

    /// Wait for the next event (use `tokio::time::timeout` to bound the wait).
    pub async fn next(&mut self) -> Result<Delivery, KitError> {
        self.source.next().await
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// One event handed to a consumer; call [`Delivery::ack`] once it is handled. An
/// unacknowledged Redis delivery is redelivered (claimed by another consumer) later.
pub struct Delivery {
    pub event: Event,
    acker: Box<dyn Acker>,
}

impl Delivery {
    pub fn new(event: Event, acker: Box<dyn Acker>) -> Self {
        Self { event, acker }
    }

    pub async fn ack(self) -> Result<(), KitError> {
        self.acker.ack().await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}
