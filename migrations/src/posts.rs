//! Migrations of the posts service database: the common event tables, then `posts`
//! with the `(author_id, created_at, id)` index that serves both `User.posts` and the
//! feed's keyset pagination (newest first).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Applies the posts service's migrations (common tables first).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_posts").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::common::migrations();
        all.push(Box::new(CreatePosts));
        all
    }
}

/// Columns of the `posts` table.
#[derive(DeriveIden)]
pub enum Posts {
    Table,
    /// UUIDv7 string.
    Id,
    AuthorId,
    Caption,
    ImageUrl,
    CreatedAt,
}

struct CreatePosts;

impl MigrationName for CreatePosts {
    fn name(&self) -> &str {
        "m20250101_000100_posts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePosts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Posts::Table)
                    .if_not_exists()
                    .col(string_len(Posts::Id, 36).primary_key())
                    .col(string_len(Posts::AuthorId, 36))
                    .col(text(Posts::Caption))
                    .col(text_null(Posts::ImageUrl))
                    .col(timestamp_with_time_zone(Posts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_posts_author_created_id")
                    .table(Posts::Table)
                    .col(Posts::AuthorId)
                    .col(Posts::CreatedAt)
                    .col(Posts::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Posts::Table).to_owned())
            .await
    }
}
