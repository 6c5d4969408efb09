//! sea-orm migrations for the Portico demo services: one [`MigratorTrait`] implementation
//! per service, each with its own migration table (`seaql_migrations_<service>`) so the
//! services can live in separate databases (the default) or share one.
//!
//! Every service's Migrator starts with [`common::migrations`]: the `outbox` and
//! `processed_events` tables used by the kit's event machinery.
//!
//! [`MigratorTrait`]: sea_orm_migration::MigratorTrait

pub mod auth;
pub mod comments;
pub mod common;
pub mod likes;
pub mod notifications;
pub mod posts;
pub mod users;

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};
