//! DataLoader of the notifications service: notifications by id (for `_entities`), one
//! SQL statement per batch, no cache.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use portico_kit::errors::internal;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::notification;
use portico_kit::input::plausible_id;

/// Notifications by id.
pub struct NotificationLoader {
    pub db: DatabaseConnection,
}

impl Loader<String> for NotificationLoader {
    type Value = notification::Model;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, notification::Model>, Self::Error> {
        let rows = notification::Entity::find()
            .filter(
                notification::Column::Id.is_in(keys.iter().filter(|k| plausible_id(k)).cloned()),
            )
            .all(&self.db)
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(|n| (n.id.clone(), n)).collect())
    }
}
