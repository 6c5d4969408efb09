//! The likes subgraph — the hot path, scaled on its own: contributes `Post.likeCount`,
//! `Post.likedByMe` and `Post.likes` to the posts service's `Post`. `likePost` /
//! `unlikePost` are idempotent and exact under concurrency (primary key `(post_id,
//! user_id)` + insert-on-conflict-do-nothing; counts are `COUNT(*)`), accept only posts
//! this service has heard of through POST_CREATED events (the `known_posts` projection,
//! [`projection`]), and commit POST_LIKED / POST_UNLIKED through the kit's outbox only
//! when the state changed. Counts, "liked by me" and like pages go through DataLoaders.

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
pub const NAME: &str = "likes";

/// The executable schema of this service.
pub type LikesSchema = Schema<Query, Mutation, EmptySubscription>;

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
    portico_migrations::likes::Migrator::up(db, None).await
}

/// The schema wired to a database (loaders included), without HTTP.
pub fn schema(db: DatabaseConnection) -> LikesSchema {
    builder()
        .data(data_loader(loaders::LikeCountLoader { db: db.clone() }))
        .data(data_loader(loaders::LikedLoader { db: db.clone() }))
        .data(data_loader(loaders::PostLikesLoader { db: db.clone() }))
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
