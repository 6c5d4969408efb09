//! Consumer of auth's `USER_REGISTERED` events: creates the profile. Idempotent twice over —
//! the kit skips event ids already processed, and the insert ignores an existing profile.

use std::sync::Arc;

use portico_kit::KitError;
use portico_kit::events::{Bus, Event, USER_REGISTERED, spawn_consumer};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, DatabaseTransaction, EntityTrait};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::store::profile;

/// Consumer group name.
pub const GROUP: &str = "users";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRegistered {
    user_id: String,
    username: String,
}

/// Spawn the consumer.
pub fn spawn(db: DatabaseConnection, bus: Arc<dyn Bus>) -> JoinHandle<()> {
    spawn_consumer(db, bus, GROUP, |txn, event| Box::pin(handle(txn, event)))
}

/// Handle one event inside the consumer's transaction.
pub async fn handle(txn: &DatabaseTransaction, event: &Event) -> Result<(), KitError> {
    if event.kind != USER_REGISTERED {
        return Ok(());
    }
    let payload: UserRegistered = serde_json::from_value(event.payload.clone())?;
    profile::Entity::insert(profile::ActiveModel {
        id: Set(payload.user_id),
        username: Set(payload.username),
        display_name: Set(None),
        bio: Set(None),
        avatar_url: Set(None),
        created_at: Set(event.occurred_at),
    })
    .on_conflict(
        OnConflict::column(profile::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}
