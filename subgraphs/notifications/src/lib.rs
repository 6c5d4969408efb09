//! The notifications subgraph: owns `Notification @key(id)` and contributes
//! `User.notifications` and `User.unreadNotificationCount` (visible to that user only) to
//! the users service's `User`. Notifications are built from domain events only
//! ([`consumer`]): POST_LIKED, POST_COMMENTED and USER_FOLLOWED create them (never for
//! your own action), their undo events remove them, and POST_CREATED / POST_DELETED keep
//! the post → author projection that says who to notify. Each event is handled once (the
//! kit's `processed_events`) and each fact yields one notification (unique `source_key`).

pub mod consumer;
pub mod entity;
pub mod live;
pub mod loaders;
pub mod schema;

use async_graphql::{SDLExportOptions, Schema, SchemaBuilder};
use portico_kit::{KitError, ServiceContext, data_loader};
use portico_migrations::MigratorTrait;
use sea_orm::{DatabaseConnection, DbErr};

pub use schema::{Mutation, Query, Subscription};

/// Service name: trust-token audience and consumer group.
pub const NAME: &str = "notifications";

/// The executable schema of this service.
pub type NotificationsSchema = Schema<Query, Mutation, Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query, Mutation, Subscription)
        .enable_federation()
        .enable_subscription_in_federation()
}

/// The Federation v2 SDL served at `_service { sdl }` (needs no database).
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation().compose_directive())
}

/// Apply this service's migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    portico_migrations::notifications::Migrator::up(db, None).await
}

/// The schema wired to a database (loaders included) and a live hub, without HTTP.
pub fn schema(db: DatabaseConnection, hub: live::Hub) -> NotificationsSchema {
    builder()
        .data(data_loader(loaders::NotificationLoader { db: db.clone() }))
        .data(db)
        .data(hub)
        .finish()
}

/// The service's HTTP router (queries over POST, `notificationAdded` over WebSocket);
/// starts the event consumer, which publishes each new notification once committed
/// (through Redis to every replica when the service has a Redis URL).
pub async fn app(ctx: ServiceContext) -> Result<axum::Router, KitError> {
    let hub = match &ctx.redis_url {
        Some(url) => live::Hub::redis(url)?,
        None => live::Hub::local(),
    };
    let (db, publisher) = (ctx.db.clone(), hub.clone());
    portico_kit::events::spawn_consumer_then(
        ctx.db.clone(),
        ctx.bus.clone(),
        consumer::GROUP,
        |txn, event| Box::pin(consumer::apply(txn, event)),
        move |event| {
            let (db, hub) = (db.clone(), publisher.clone());
            Box::pin(async move { live::publish_created_by(&db, &hub, event).await })
        },
    );
    let schema = schema(ctx.db.clone(), hub);
    Ok(portico_kit::server::graphql_router(schema, NAME, ctx.trust))
}
