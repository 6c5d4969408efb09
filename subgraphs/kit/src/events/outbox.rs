//! The transactional outbox ([`enqueue`]), its relay ([`spawn_relay`]) and idempotent
//! consumers ([`spawn_consumer`]).

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use sea_orm::sea_query::{LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Bus, Event};
use crate::KitError;

/// Fallback polling interval of the relay (it is also woken by [`enqueue`]).
const RELAY_POLL: Duration = Duration::from_millis(500);
/// Rows published per relay round.
const RELAY_BATCH: u64 = 100;
/// Longest pause between retries while the bus or database is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Handler attempts per delivery before it is left for redelivery.
const MAX_ATTEMPTS: u32 = 8;
/// Published outbox rows are kept this long (to look into), then deleted.
pub const OUTBOX_RETENTION: Duration = Duration::from_secs(3600);
/// Processed event ids are remembered this long: far beyond any redelivery (a relay
/// re-publishing after a crash: seconds; a stream entry claimed from a dead consumer:
/// minutes), then deleted.
pub const PROCESSED_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the relay prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub(crate) mod outbox_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub id: String,
        pub kind: String,
        pub payload: String,
        pub occurred_at: DateTimeUtc,
        pub published_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod processed_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "processed_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        pub processed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn relays() -> &'static Mutex<Vec<Weak<Notify>>> {
    static RELAYS: OnceLock<Mutex<Vec<Weak<Notify>>>> = OnceLock::new();
    RELAYS.get_or_init(Default::default)
}

fn wake_relays() {
    let mut list = relays().lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|w| match w.upgrade() {
        Some(n) => {
            n.notify_one();
            true
        }
        None => false,
    });
}

/// Write an event to the outbox. Call it with the transaction of the domain write so the
/// event commits (or rolls back) with it. Returns the event id.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    kind: &str,
    payload: serde_json::Value,
) -> Result<Uuid, DbErr> {
    let event = Event::new(kind, payload);
    let row = outbox_row::ActiveModel {
        seq: NotSet,
        id: Set(event.id.to_string()),
        kind: Set(event.kind.clone()),
        payload: Set(event.payload.to_string()),
        occurred_at: Set(event.occurred_at),
        published_at: Set(None),
    };
    outbox_row::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    wake_relays();
    Ok(event.id)
}

fn row_to_event(row: &outbox_row::Model) -> Result<Event, KitError> {
    Ok(Event {
        id: Uuid::parse_str(&row.id).map_err(|e| KitError::Other(e.to_string()))?,
        kind: row.kind.clone(),
        payload: serde_json::from_str(&row.payload)?,
        occurred_at: row.occurred_at,
    })
}

/// Publish up to one batch of unpublished outbox rows, in order; stops at the first
/// publish failure. Returns how many rows were published.
///
/// On PostgreSQL the batch is claimed with `FOR UPDATE SKIP LOCKED` inside a transaction,
/// so several replicas of a service relay the same outbox without publishing a row twice.
/// SQLite has one process and one connection: there the rows are read and marked without
/// holding a transaction across the publish (a slow bus must not block the writer).
pub async fn relay_once(db: &DatabaseConnection, bus: &dyn Bus) -> Result<usize, KitError> {
    let unpublished = || {
        outbox_row::Entity::find()
            .filter(outbox_row::Column::PublishedAt.is_null())
            .order_by_asc(outbox_row::Column::Seq)
            .limit(RELAY_BATCH)
    };
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let txn = db.begin().await?;
        let rows = unpublished()
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        let result = publish_rows(&txn, bus, &rows).await;
        txn.commit().await?;
        result
    } else {
        let rows = unpublished().all(db).await?;
        publish_rows(db, bus, &rows).await
    }
}

async fn publish_rows<C: ConnectionTrait>(
    conn: &C,
    bus: &dyn Bus,
    rows: &[outbox_row::Model],
) -> Result<usize, KitError> {
    let mut published = 0;
    for row in rows {
        match row_to_event(row) {
            Ok(event) => bus.publish(&event).await?,
            Err(e) => tracing::error!(seq = row.seq, error = %e, "skipping malformed outbox row"),
        }
        outbox_row::Entity::update_many()
            .col_expr(
                outbox_row::Column::PublishedAt,
                sea_orm::sea_query::Expr::value(crate::now()),
            )
            .filter(outbox_row::Column::Seq.eq(row.seq))
            .exec(conn)
            .await?;
        published += 1;
    }
    Ok(published)
}

/// Run the relay in the background: publishes unpublished outbox rows in order, retries
/// while the bus (or database) is down, wakes promptly after [`enqueue`].
/// Deletes outbox rows published before `published_before` and processed-event ids
/// recorded before `processed_before` (never an unpublished row); returns how many of
/// each. Without it both tables grow by a row per event forever (a soak with 10% writes
/// grew the demo by 50 MiB in three minutes).
pub async fn prune(
    db: &DatabaseConnection,
    published_before: chrono::DateTime<chrono::Utc>,
    processed_before: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, u64), KitError> {
    let outbox = outbox_row::Entity::delete_many()
        .filter(outbox_row::Column::PublishedAt.is_not_null())
        .filter(outbox_row::Column::PublishedAt.lt(published_before))
        .exec(db)
        .await?
        .rows_affected;
    let processed = processed_row::Entity::delete_many()
        .filter(processed_row::Column::ProcessedAt.lt(processed_before))
        .exec(db)
        .await?
        .rows_affected;
    Ok((outbox, processed))
}

/// [`prune`] with the retention periods, as of now.
async fn prune_now(db: &DatabaseConnection) {
    let now = chrono::Utc::now();
    let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
    match prune(db, ago(OUTBOX_RETENTION), ago(PROCESSED_RETENTION)).await {
        Ok((0, 0)) => {}
        Ok((outbox, processed)) => {
            tracing::debug!(
                outbox,
                processed,
                "pruned published events and processed ids"
            )
        }
        Err(e) => tracing::warn!(error = %e, "pruning the outbox failed; retrying later"),
    }
}

pub fn spawn_relay(db: DatabaseConnection, bus: Arc<dyn Bus>) -> JoinHandle<()> {
    let notify = Arc::new(Notify::new());
    relays()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::downgrade(&notify));
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut pruned = tokio::time::Instant::now();
        loop {
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = tokio::time::Instant::now();
                prune_now(&db).await;
            }
            match relay_once(&db, bus.as_ref()).await {
                Ok(n) => {
                    backoff = Duration::from_millis(100);
                    if n as u64 == RELAY_BATCH {
                        continue;
                    }
                    tokio::select! {
                        _ = notify.notified() => {
                            // let the enqueuing transaction commit
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        _ = tokio::time::sleep(RELAY_POLL) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "outbox relay failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    })
}

/// The handler of a consumer: runs inside the transaction that records the event as
/// processed. Write it as `|txn, event| Box::pin(handle(txn, event))`.
pub type ConsumerHandler = Arc<
    dyn for<'a> Fn(&'a DatabaseTransaction, &'a Event) -> BoxFuture<'a, Result<(), KitError>>
        + Send
        + Sync,
>;

/// Outcome of handling one delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    Processed,
    Duplicate,
}

/// Handle one event idempotently for `group`: record it in `processed_events` and run the
/// handler in the same transaction; an event already recorded is skipped.
pub(crate) async fn handle_once(
    db: &DatabaseConnection,
    group: &str,
    event: &Event,
    handler: &ConsumerHandler,
) -> Result<Handled, KitError> {
    let txn = db.begin().await?;
    let inserted = processed_row::Entity::insert(processed_row::ActiveModel {
        consumer: Set(group.to_string()),
        event_id: Set(event.id.to_string()),
        processed_at: Set(crate::now()),
    })
    .on_conflict(
        OnConflict::columns([
            processed_row::Column::Consumer,
            processed_row::Column::EventId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(Handled::Duplicate);
    }
    handler(&txn, event).await?;
    txn.commit().await?;
    Ok(Handled::Processed)
}

/// Run a consumer of consumer group `group` in the background. Each event is handled by
/// `handler` in a transaction that also inserts `(group, event id)` into
/// `processed_events`; an event already processed is acknowledged and skipped. A failing
/// handler is retried with backoff; after [`MAX_ATTEMPTS`] the delivery is left
/// unacknowledged (Redis redelivers it later) and logged.
pub fn spawn_consumer<F>(
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    group: &'static str,
    handler: F,
) -> JoinHandle<()>
where
    F: for<'a> Fn(&'a DatabaseTransaction, &'a Event) -> BoxFuture<'a, Result<(), KitError>>
        + Send
        + Sync
        + 'static,
{
    spawn_consumer_then(db, bus, group, handler, |_: &Event| Box::pin(async {}))
}

/// [`spawn_consumer`], and `after(event)` once an event's transaction committed (not for
/// duplicates): what the handler wrote is visible then, e.g. to publish it to live
/// subscribers.
pub fn spawn_consumer_then<F, A>(
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    group: &'static str,
    handler: F,
    after: A,
) -> JoinHandle<()>
where
    F: for<'a> Fn(&'a DatabaseTransaction, &'a Event) -> BoxFuture<'a, Result<(), KitError>>
        + Send
        + Sync
        + 'static,
    A: for<'a> Fn(&'a Event) -> BoxFuture<'a, ()> + Send + Sync + 'static,
{
    let handler: ConsumerHandler = Arc::new(handler);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut sub = match bus.subscribe(group).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(group, error = %e, "subscribe failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            loop {
                let delivery = match sub.next().await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(group, error = %e, "receiving events failed; resubscribing");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                };
                let mut attempt = 0;
                let mut pause = Duration::from_millis(50);
                let ok = loop {
                    attempt += 1;
                    match handle_once(&db, group, &delivery.event, &handler).await {
                        Ok(Handled::Processed) => {
                            after(&delivery.event).await;
                            break true;
                        }
                        Ok(Handled::Duplicate) => break true,
                        Err(e) if attempt < MAX_ATTEMPTS => {
                            tracing::warn!(group, event = %delivery.event.id, kind = %delivery.event.kind, attempt, error = %e, "event handler failed; retrying");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(MAX_BACKOFF);
                        }
                        Err(e) => {
                            tracing::error!(group, event = %delivery.event.id, kind = %delivery.event.kind, error = %e, "event handler keeps failing; leaving it for redelivery");
                            break false;
                        }
                    }
                };
                if ok && let Err(e) = delivery.ack().await {
                    tracing::warn!(group, error = %e, "ack failed (event will be redelivered and skipped)");
                }
            }
        }
    })
}
