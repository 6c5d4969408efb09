//! The `users` subgraph: `User @key(fields: "id")` — profiles and the follow graph.
//!
//! - [`schema`]: `me`, `user`, `userByUsername`, `follow`, `unfollow`, and the `User`
//!   entity with counts, `followingIds` (for posts' `feed @requires`) and the
//!   followers/following connections.
//! - [`loaders`]: the DataLoaders every entity and per-parent list goes through — one SQL
//!   statement per batch, whatever the number of users in it.
//! - [`store`]: sea-orm entities.
//! - [`consumer`]: builds profiles from auth's `USER_REGISTERED` events (idempotent).
//!
//! `follow`/`unfollow` write the edge and its `USER_FOLLOWED`/`USER_UNFOLLOWED` event in one
//! transaction, and only when the state actually changed.

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptySubscription, Schema, SchemaBuilder};
use axum::Router;
use portico_kit::{KitError, ServiceContext};
use portico_migrations::MigratorTrait;
use sea_orm::DatabaseConnection;

pub mod consumer;
pub mod loaders;
pub mod schema;
pub mod store;

/// Service name and trust-token audience.
pub const NAME: &str = "users";

/// The GraphQL schema type of users.
pub type UsersSchema = Schema<schema::Query, schema::Mutation, EmptySubscription>;

fn schema_builder() -> SchemaBuilder<schema::Query, schema::Mutation, EmptySubscription> {
    Schema::build(schema::Query, schema::Mutation, EmptySubscription).enable_federation()
}

/// The Federation v2 SDL served at `_service { sdl }`.
pub fn sdl() -> String {
    schema_builder()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// Apply the users migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    portico_migrations::users::Migrator::up(db, None).await
}

/// The schema with its database and loaders (no background tasks).
pub fn build_schema(db: DatabaseConnection) -> UsersSchema {
    schema_builder()
        .data(db.clone())
        .data(loader(loaders::ProfileLoader(db.clone())))
        .data(loader(loaders::FollowerCountLoader(db.clone())))
        .data(loader(loaders::FollowingCountLoader(db.clone())))
        .data(loader(loaders::FollowingIdsLoader(db.clone())))
        .data(loader(loaders::FollowPageLoader(db)))
        .finish()
}

fn loader<T: Send + Sync + 'static>(l: T) -> DataLoader<T> {
    portico_kit::data_loader(l)
}

/// The users service router. Spawns the outbox relay and the `USER_REGISTERED` consumer.
pub async fn app(ctx: ServiceContext) -> Result<Router, KitError> {
    portico_kit::events::spawn_relay(ctx.db.clone(), ctx.bus.clone());
    consumer::spawn(ctx.db.clone(), ctx.bus.clone());
    let schema = build_schema(ctx.db.clone());
    Ok(portico_kit::server::graphql_router(
        schema,
        ctx.name,
        ctx.trust.clone(),
    ))
}
