//! The notifications subgraph: owns `Notification @key(id)` and contributes
//! `User.notifications` and `User.unreadNotificationCount` (visible to that user only) to
//! the users service's `User`. Notifications are built from domain events only
//! ([`consumer`]): POST_LIKED, POST_COMMENTED and USER_FOLLOWED create them (never for
//! your own action), their undo events remove them, and POST_CREATED / POST_DELETED keep
//! the post → author projection that says who to notify. Each event is handled once (the
//! kit's `processed_events`) and each fact yields one notification (unique `source_key`).

pub mod consumer;
pub mod entity;
pub mod loaders;
pub mod schema;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use portico_kit::{KitError, ServiceContext, data_loader};
use portico_migrations::MigratorTrait;
use sea_orm::{DatabaseConnection, DbErr};

pub use schema::{Mutation, Query};

/// Service name: trust-token audience and consumer group.
pub const NAME: &str = "notifications";

/// The executable schema of this service.
pub type NotificationsSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription).enable_federation()
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

/// The schema wired to a database (loaders included), without HTTP.
pub fn schema(db: DatabaseConnection) -> NotificationsSchema {
    builder()
        .data(data_loader(loaders::NotificationLoader { db: db.clone() }))
        .data(db)
        .finish()
}

/// The service's HTTP router; starts the event consumer.
pub async fn app(ctx: ServiceContext) -> Result<axum::Router, KitError> {
    portico_kit::events::spawn_consumer(
        ctx.db.clone(),
        ctx.bus.clone(),
        consumer::GROUP,
        |txn, event| Box::pin(consumer::apply(txn, event)),
    );
    let schema = schema(ctx.db.clone());
    Ok(portico_kit::server::graphql_router(schema, NAME, ctx.trust))
}
