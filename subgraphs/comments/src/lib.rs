//! The comments subgraph: owns `Comment @key(id)` and contributes `Post.comments`
//! (oldest first) and `Post.commentCount` to the posts service's `Post`. `addComment`
//! accepts only posts this service has heard of through POST_CREATED events (the
//! `known_posts` projection, [`projection`]); writes commit their POST_COMMENTED /
//! COMMENT_DELETED event in the same transaction through the kit's outbox. Entity
//! lookups, comment pages and counts go through DataLoaders ([`loaders`]).

pub mod entity;
pub mod loaders;
pub mod projection;
pub mod schema;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use portico_kit::{KitError, ServiceContext, data_loader};
use portico_migrations::MigratorTrait;
use sea_orm::{DatabaseConnection, DbErr};

pub use schema::{Mutation, Query};

/// Service name: trust-token audience and consumer group.
pub const NAME: &str = "comments";

/// The executable schema of this service.
pub type CommentsSchema = Schema<Query, Mutation, EmptySubscription>;

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
    portico_migrations::comments::Migrator::up(db, None).await
}

/// The schema wired to a database (loaders included), without HTTP.
pub fn schema(db: DatabaseConnection) -> CommentsSchema {
    builder()
        .data(data_loader(loaders::CommentLoader { db: db.clone() }))
        .data(data_loader(loaders::PostCommentsLoader { db: db.clone() }))
        .data(data_loader(loaders::CommentCountLoader { db: db.clone() }))
        .data(db)
        .finish()
}

/// The service's HTTP router; starts the outbox relay and the `known_posts` consumer.
pub async fn app(ctx: ServiceContext) -> Result<axum::Router, KitError> {
    portico_kit::events::spawn_relay(ctx.db.clone(), ctx.bus.clone());
    portico_kit::events::spawn_consumer(
        ctx.db.clone(),
        ctx.bus.clone(),
        projection::GROUP,
        |txn, event| Box::pin(projection::apply(txn, event)),
    );
    let schema = schema(ctx.db.clone());
    Ok(portico_kit::server::graphql_router(schema, NAME, ctx.trust))
}
