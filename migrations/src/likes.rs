//! Migrations of the likes service database: the common event tables, `likes` (primary
//! key `(post_id, user_id)` = the uniqueness that makes liking idempotent and exact under
//! concurrency; index `(post_id, created_at, user_id)` for `Post.likes` pages) and the
//! `known_posts` projection fed by POST_CREATED / POST_DELETED events.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Applies the likes service's migrations (common tables first).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_likes").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::common::migrations();
        all.push(Box::new(CreateLikes));
        all.push(Box::new(CreateKnownPosts));
        all
    }
}

/// Columns of the `likes` table.
#[derive(DeriveIden)]
pub enum Likes {
    Table,
    PostId,
    UserId,
    CreatedAt,
}

/// Columns of the `known_posts` projection (posts that exist, from the posts service's events).
#[derive(DeriveIden)]
pub enum KnownPosts {
    Table,
    PostId,
    AuthorId,
}

struct CreateLikes;

impl MigrationName for CreateLikes {
    fn name(&self) -> &str {
        "m20250101_000300_likes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLikes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Likes::Table)
                    .if_not_exists()
                    .col(string_len(Likes::PostId, 36))
                    .col(string_len(Likes::UserId, 36))
                    .col(timestamp_with_time_zone(Likes::CreatedAt))
                    .primary_key(Index::create().col(Likes::PostId).col(Likes::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_likes_post_created_user")
                    .table(Likes::Table)
                    .col(Likes::PostId)
                    .col(Likes::CreatedAt)
                    .col(Likes::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_likes_user_post")
                    .table(Likes::Table)
                    .col(Likes::UserId)
                    .col(Likes::PostId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Likes::Table).to_owned())
            .await
    }
}

struct CreateKnownPosts;

impl MigrationName for CreateKnownPosts {
    fn name(&self) -> &str {
        "m20250101_000301_likes_known_posts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateKnownPosts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KnownPosts::Table)
                    .if_not_exists()
                    .col(string_len(KnownPosts::PostId, 36).primary_key())
                    .col(string_len(KnownPosts::AuthorId, 36))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KnownPosts::Table).to_owned())
            .await
    }
}
