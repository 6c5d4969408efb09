//! The posts subgraph: owns `Post @key(id)` (caption, image, author, creation time) and
//! contributes `User.posts` and `User.feed @requires(fields: "followingIds")` to the users
//! service's `User`. Writes commit their domain event (POST_CREATED / POST_DELETED) in
//! the same transaction through the kit's outbox; the relay started by [`app`] publishes
//! them. Entity and per-author lookups go through DataLoaders ([`loaders`]), so one
//! `_entities` batch is one SQL statement.

pub mod entity;
pub mod loaders;
pub mod schema;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use portico_kit::{KitError, ServiceContext, data_loader};
use portico_migrations::MigratorTrait;
use sea_orm::{DatabaseConnection, DbErr};

pub use schema::{Mutation, Query};

/// Service name: trust-token audience and schema name.
pub const NAME: &str = "posts";

/// The executable schema of this service.
pub type PostsSchema = Schema<Query, Mutation, EmptySubscription>;

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
    portico_migrations::posts::Migrator::up(db, None).await
}

/// The schema wired to a database (loaders included), without HTTP.
pub fn schema(db: DatabaseConnection) -> PostsSchema {
    builder()
        .data(data_loader(loaders::PostLoader { db: db.clone() }))
        .data(data_loader(loaders::AuthorPostsLoader { db: db.clone() }))
        .data(db)
        .finish()
}

/// The service's HTTP router (trust-checked `/graphql`, `/health`); starts the outbox relay.
pub async fn app(ctx: ServiceContext) -> Result<axum::Router, KitError> {
    portico_kit::events::spawn_relay(ctx.db.clone(), ctx.bus.clone());
    let schema = schema(ctx.db.clone());
    Ok(portico_kit::server::graphql_router(schema, NAME, ctx.trust))
}
