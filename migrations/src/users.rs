//! Migrations of the users service database: `profiles` and the `follows` graph, with
//! indexes for the followers/following connections (keyset on `created_at`) and counts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Applies the users service's migrations (common tables first).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_users").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::common::migrations();
        all.push(Box::new(CreateProfiles));
        all.push(Box::new(CreateFollows));
        all
    }
}

/// Columns of `profiles`.
#[derive(DeriveIden)]
pub enum Profiles {
    Table,
    Id,
    Username,
    DisplayName,
    Bio,
    AvatarUrl,
    CreatedAt,
}

/// Columns of `follows`.
#[derive(DeriveIden)]
pub enum Follows {
    Table,
    FollowerId,
    FolloweeId,
    CreatedAt,
}

struct CreateProfiles;

impl MigrationName for CreateProfiles {
    fn name(&self) -> &str {
        "m20250101_000201_users_profiles"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateProfiles {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Profiles::Table)
                    .if_not_exists()
                    .col(string_len(Profiles::Id, 36).primary_key())
                    .col(string_len_uniq(Profiles::Username, 30))
                    .col(string_len_null(Profiles::DisplayName, 100))
                    .col(text_null(Profiles::Bio))
                    .col(string_len_null(Profiles::AvatarUrl, 2048))
                    .col(timestamp_with_time_zone(Profiles::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Profiles::Table).to_owned())
            .await
    }
}

struct CreateFollows;

impl MigrationName for CreateFollows {
    fn name(&self) -> &str {
        "m20250101_000202_users_follows"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateFollows {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Follows::Table)
                    .if_not_exists()
                    .col(string_len(Follows::FollowerId, 36))
                    .col(string_len(Follows::FolloweeId, 36))
                    .col(timestamp_with_time_zone(Follows::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Follows::FollowerId)
                            .col(Follows::FolloweeId),
                    )
                    .to_owned(),
            )
            .await?;
        // followers of X, newest first: WHERE followee_id = X ORDER BY created_at, follower_id
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_follows_followee_created")
                    .table(Follows::Table)
                    .col(Follows::FolloweeId)
                    .col(Follows::CreatedAt)
                    .col(Follows::FollowerId)
                    .to_owned(),
            )
            .await?;
        // whom X follows, newest first
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_follows_follower_created")
                    .table(Follows::Table)
                    .col(Follows::FollowerId)
                    .col(Follows::CreatedAt)
                    .col(Follows::FolloweeId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Follows::Table).to_owned())
            .await
    }
}
