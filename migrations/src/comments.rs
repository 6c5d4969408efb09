//! Migrations of the comments service database: the common event tables, `comments`
//! (indexed by `(post_id, created_at, id)` for `Post.comments` pages and counts) and the
//! `known_posts` projection fed by POST_CREATED / POST_DELETED events.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Applies the comments service's migrations (common tables first).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_comments").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::common::migrations();
        all.push(Box::new(CreateComments));
        all.push(Box::new(CreateKnownPosts));
        all
    }
}

/// Columns of the `comments` table.
#[derive(DeriveIden)]
pub enum Comments {
    Table,
    /// UUIDv7 string.
    Id,
    PostId,
    AuthorId,
    Body,
    CreatedAt,
}

/// Columns of the `known_posts` projection (posts that exist, from the posts service's events).
#[derive(DeriveIden)]
pub enum KnownPosts {
    Table,
    PostId,
    AuthorId,
}

struct CreateComments;

impl MigrationName for CreateComments {
    fn name(&self) -> &str {
        "m20250101_000200_comments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateComments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Comments::Table)
                    .if_not_exists()
                    .col(string_len(Comments::Id, 36).primary_key())
                    .col(string_len(Comments::PostId, 36))
                    .col(string_len(Comments::AuthorId, 36))
                    .col(text(Comments::Body))
                    .col(timestamp_with_time_zone(Comments::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_comments_post_created_id")
                    .table(Comments::Table)
                    .col(Comments::PostId)
                    .col(Comments::CreatedAt)
                    .col(Comments::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Comments::Table).to_owned())
            .await
    }
}

struct CreateKnownPosts;

impl MigrationName for CreateKnownPosts {
    fn name(&self) -> &str {
        "m20250101_000201_comments_known_posts"
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
