//! Live notifications: `Subscription.notificationAdded` streams the authenticated user's
//! new notifications. The consumer publishes each notification once its transaction
//! committed ([`publish_created_by`]); the [`Hub`] hands it to the subscribers of this
//! process, or, with Redis, to those of every replica (`PUBLISH` on one channel; each
//! replica's listener forwards what it receives to its own subscribers, its own
//! notifications included, so a notification reaches every subscriber exactly once).
//!
//! Subscribers read from a bounded broadcast buffer: one that falls behind by more than
//! [`BUFFER`] notifications misses the oldest ones and its stream goes on (a slow client
//! never grows this process's memory).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use portico_kit::events::{self, Event};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::consumer::{comment_key, follow_key, like_key};
use crate::entity::notification;

/// Notifications buffered per subscriber before the oldest are dropped for it.
pub const BUFFER: usize = 256;

/// Redis channel of the fan-out.
pub const CHANNEL: &str = "portico:notifications:live";

/// A new notification as it travels between replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveNotification {
    pub id: String,
    pub recipient_id: String,
    pub kind: String,
    pub actor_id: String,
    pub post_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

impl From<notification::Model> for LiveNotification {
    fn from(m: notification::Model) -> Self {
        Self {
            id: m.id,
            recipient_id: m.recipient_id,
            kind: m.kind,
            actor_id: m.actor_id,
            post_id: m.post_id,
            created_at: m.created_at,
            read: m.read,
        }
    }
}

/// Where new notifications are published and subscribed to.
#[derive(Clone)]
pub struct Hub {
    local: broadcast::Sender<Arc<LiveNotification>>,
    redis: Option<redis::Client>,
    /// The publishing connection, opened at the first notification and kept (dropped
    /// after a failure, to be opened again).
    publisher: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

impl Hub {
    /// In this process only.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        Self {
            local,
            redis: None,
            publisher: Arc::default(),
        }
    }

    /// Across replicas through Redis at `url`; starts this replica's listener, which
    /// reconnects (with backoff) whenever the connection is lost.
    pub fn redis(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let hub = Self {
            redis: Some(client.clone()),
            ..Self::local()
        };
        let local = hub.local.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match listen(&client, &local).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(error = %e, "live notifications: Redis listener failed; retrying");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        });
        Ok(hub)
    }

    /// A subscriber's receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveNotification>> {
        self.local.subscribe()
    }

    /// Hands `n` to its subscribers (of every replica, with Redis).
    pub async fn publish(&self, n: LiveNotification) {
        let Some(client) = &self.redis else {
            // No subscriber is not an error.
            let _ = self.local.send(Arc::new(n));
            return;
        };
        let payload = match serde_json::to_string(&n) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "live notification not serialisable");
                return;
            }
        };
        let sent = async {
            let mut slot = self.publisher.lock().await;
            let mut c = match slot.as_ref() {
                Some(c) => c.clone(),
                None => slot
                    .insert(client.get_multiplexed_async_connection().await?)
                    .clone(),
            };
            drop(slot);
            redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(payload)
                .query_async::<i64>(&mut c)
                .await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(2), sent).await;
        if !matches!(outcome, Ok(Ok(_))) {
            *self.publisher.lock().await = None;
        }
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "live notification not published to Redis; delivering locally");
                let _ = self.local.send(Arc::new(n));
            }
            Err(_) => {
                tracing::warn!("live notification: Redis did not answer; delivering locally");
                let _ = self.local.send(Arc::new(n));
            }
        }
    }
}

/// Forwards the channel's messages to this replica's subscribers until the connection
/// ends.
async fn listen(
    client: &redis::Client,
    local: &broadcast::Sender<Arc<LiveNotification>>,
) -> Result<(), redis::RedisError> {
    use futures::StreamExt as _;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        match serde_json::from_str::<LiveNotification>(&payload) {
            Ok(n) => {
                let _ = local.send(Arc::new(n));
            }
            Err(e) => tracing::warn!(error = %e, "malformed live notification ignored"),
        }
    }
    Ok(())
}

/// The natural key of the notification `event` creates, if it creates one.
fn created_key(event: &Event) -> Option<String> {
    let field = |name: &str| event.payload.get(name).and_then(|v| v.as_str());
    match event.kind.as_str() {
        events::POST_LIKED => Some(like_key(field("postId")?, field("userId")?)),
        events::POST_COMMENTED => Some(comment_key(field("commentId")?)),
        events::USER_FOLLOWED => Some(follow_key(field("followerId")?, field("followeeId")?)),
        _ => None,
    }
}

/// After `event`'s transaction committed: publishes the notification it created (none
/// for other events, or when it notified nobody).
pub async fn publish_created_by(db: &DatabaseConnection, hub: &Hub, event: &Event) {
    let Some(key) = created_key(event) else {
        return;
    };
    let found = notification::Entity::find()
        .filter(notification::Column::SourceKey.eq(key))
        .one(db)
        .await;
    match found {
        Ok(Some(m)) => hub.publish(m.into()).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "live notification not read back"),
    }
}
