//! Tables every service database has: the transactional `outbox` (events written in the
//! same transaction as the domain change, published later by the relay) and
//! `processed_events` (event ids each consumer has already handled, for idempotency).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// The common migrations, to be listed first by every service's Migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateOutbox), Box::new(CreateProcessedEvents)]
}

/// Columns of the `outbox` table.
#[derive(DeriveIden)]
pub enum Outbox {
    Table,
    /// Monotonic sequence: the publish order.
    Seq,
    /// Event id (UUIDv7 string).
    Id,
    Kind,
    /// JSON text.
    Payload,
    OccurredAt,
    /// NULL until the relay has published the event.
    PublishedAt,
}

/// Columns of the `processed_events` table.
#[derive(DeriveIden)]
pub enum ProcessedEvents {
    Table,
    Consumer,
    EventId,
    ProcessedAt,
}

struct CreateOutbox;

impl MigrationName for CreateOutbox {
    fn name(&self) -> &str {
        "m20250101_000001_common_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Outbox::Seq))
                    .col(string_len_uniq(Outbox::Id, 36))
                    .col(string_len(Outbox::Kind, 64))
                    .col(text(Outbox::Payload))
                    .col(timestamp_with_time_zone(Outbox::OccurredAt))
                    .col(timestamp_with_time_zone_null(Outbox::PublishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_outbox_unpublished")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}

struct CreateProcessedEvents;

impl MigrationName for CreateProcessedEvents {
    fn name(&self) -> &str {
        "m20250101_000002_common_processed_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateProcessedEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProcessedEvents::Table)
                    .if_not_exists()
                    .col(string_len(ProcessedEvents::Consumer, 64))
                    .col(string_len(ProcessedEvents::EventId, 36))
                    .col(timestamp_with_time_zone(ProcessedEvents::ProcessedAt))
                    .primary_key(
                        Index::create()
                            .col(ProcessedEvents::Consumer)
                            .col(ProcessedEvents::EventId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProcessedEvents::Table).to_owned())
            .await
    }
}
