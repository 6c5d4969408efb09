//! This service's use of the kit's `known_posts` projection
//! ([`portico_kit::known_posts`]): a deleted post takes its comments with it.

use portico_kit::KitError;
use portico_kit::events::Event;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::entity::comment;

/// Consumer group name of this service on the bus.
pub const GROUP: &str = "comments";

/// Apply one event to the projection (events of other kinds are ignored).
pub async fn apply<C: ConnectionTrait>(txn: &C, event: &Event) -> Result<(), KitError> {
    portico_kit::known_posts::apply(txn, event, |post_id| {
        comment::Entity::delete_many().filter(comment::Column::PostId.eq(post_id))
    })
    .await
}
