//! Migrations of the auth service database: `accounts` (credentials) and
//! `refresh_tokens` (hashed opaque tokens grouped in rotation families).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Applies the auth service's migrations (common tables first).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_auth").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::common::migrations();
        all.push(Box::new(CreateAccounts));
        all.push(Box::new(CreateRefreshTokens));
        all
    }
}

/// Columns of `accounts`.
#[derive(DeriveIden)]
pub enum Accounts {
    Table,
    Id,
    /// Lower-case, unique.
    Username,
    /// Lower-case, unique.
    Email,
    /// argon2id PHC string.
    PasswordHash,
    CreatedAt,
}

/// Columns of `refresh_tokens`.
#[derive(DeriveIden)]
pub enum RefreshTokens {
    Table,
    Id,
    AccountId,
    /// All tokens descending from one login share a family; reuse revokes the family.
    FamilyId,
    /// SHA-256 of the opaque token, hex.
    TokenHash,
    CreatedAt,
    ExpiresAt,
    /// Set once the token has been exchanged for a new one.
    Rotated,
    /// Set on logout or on detected reuse.
    Revoked,
}

struct CreateAccounts;

impl MigrationName for CreateAccounts {
    fn name(&self) -> &str {
        "m20250101_000101_auth_accounts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAccounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(string_len(Accounts::Id, 36).primary_key())
                    .col(string_len_uniq(Accounts::Username, 30))
                    .col(string_len_uniq(Accounts::Email, 254))
                    .col(string_len(Accounts::PasswordHash, 255))
                    .col(timestamp_with_time_zone(Accounts::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Accounts::Table).to_owned())
            .await
    }
}

struct CreateRefreshTokens;

impl MigrationName for CreateRefreshTokens {
    fn name(&self) -> &str {
        "m20250101_000102_auth_refresh_tokens"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRefreshTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .if_not_exists()
                    .col(string_len(RefreshTokens::Id, 36).primary_key())
                    .col(string_len(RefreshTokens::AccountId, 36))
                    .col(string_len(RefreshTokens::FamilyId, 36))
                    .col(string_len_uniq(RefreshTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(boolean(RefreshTokens::Rotated).default(false))
                    .col(boolean(RefreshTokens::Revoked).default(false))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_account")
                            .from(RefreshTokens::Table, RefreshTokens::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_refresh_tokens_family", RefreshTokens::FamilyId),
            ("idx_refresh_tokens_account", RefreshTokens::AccountId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(RefreshTokens::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await
    }
}
