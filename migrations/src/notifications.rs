//! Migrations of the notifications service database: the common event tables,
//! `notifications` (natural key `source_key` unique, so a redelivered event can never
//! create a second notification; index `(recipient_id, read, created_at, id)` for the
//! unread list and count, `(recipient_id, created_at, id)` for the full list, `post_id`
//! for clean-up when a post is deleted) and the `post_authors` projection (post → author,
//! from POST_CREATED / POST_DELETED) used to find who to notify.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Applies the notifications service's migrations (common tables first).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_notifications").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::common::migrations();
        all.push(Box::new(CreateNotifications));
        all.push(Box::new(CreatePostAuthors));
        all
    }
}

/// Columns of the `notifications` table.
#[derive(DeriveIden)]
pub enum Notifications {
    Table,
    /// UUIDv7 string.
    Id,
    RecipientId,
    /// `LIKE`, `COMMENT` or `FOLLOW`.
    Kind,
    ActorId,
    PostId,
    /// What caused it (`like:<post>:<user>`, `comment:<comment>`, `follow:<a>:<b>`): unique.
    SourceKey,
    CreatedAt,
    Read,
}

/// Columns of the `post_authors` projection.
#[derive(DeriveIden)]
pub enum PostAuthors {
    Table,
    PostId,
    AuthorId,
}

struct CreateNotifications;

impl MigrationName for CreateNotifications {
    fn name(&self) -> &str {
        "m20250101_000400_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNotifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .if_not_exists()
                    .col(string_len(Notifications::Id, 36).primary_key())
                    .col(string_len(Notifications::RecipientId, 36))
                    .col(string_len(Notifications::Kind, 16))
                    .col(string_len(Notifications::ActorId, 36))
                    .col(string_len_null(Notifications::PostId, 36))
                    .col(string_len_uniq(Notifications::SourceKey, 128))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .col(boolean(Notifications::Read).default(false))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "idx_notifications_recipient_read_created",
                vec![
                    Notifications::RecipientId,
                    Notifications::Read,
                    Notifications::CreatedAt,
                    Notifications::Id,
                ],
            ),
            (
                "idx_notifications_recipient_created",
                vec![
                    Notifications::RecipientId,
                    Notifications::CreatedAt,
                    Notifications::Id,
                ],
            ),
            ("idx_notifications_post", vec![Notifications::PostId]),
        ] {
            let mut index = Index::create();
            index.if_not_exists().name(name).table(Notifications::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Notifications::Table).to_owned())
            .await
    }
}

struct CreatePostAuthors;

impl MigrationName for CreatePostAuthors {
    fn name(&self) -> &str {
        "m20250101_000401_notifications_post_authors"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePostAuthors {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PostAuthors::Table)
                    .if_not_exists()
                    .col(string_len(PostAuthors::PostId, 36).primary_key())
                    .col(string_len(PostAuthors::AuthorId, 36))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PostAuthors::Table).to_owned())
            .await
    }
}
