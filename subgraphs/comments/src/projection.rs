//! The `known_posts` projection, kept from the posts service's events: POST_CREATED adds
//! the post, POST_DELETED removes it together with its comments. Handlers run inside the
//! kit consumer's transaction (which also records the event id, so a redelivered event is
//! skipped) and are idempotent on their own as well.

use portico_kit::KitError;
use portico_kit::events::{self, Event};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::entity::{comment, known_post};

/// Consumer group name of this service on the bus.
pub const GROUP: &str = "comments";

/// Apply one event to the projection (events of other kinds are ignored).
pub async fn apply<C: ConnectionTrait>(txn: &C, event: &Event) -> Result<(), KitError> {
    let field = |name: &str| {
        event
            .payload
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match event.kind.as_str() {
        events::POST_CREATED => {
            let (Some(post_id), Some(author_id)) = (field("postId"), field("authorId")) else {
                tracing::warn!(event = %event.id, "POST_CREATED without postId/authorId: ignored");
                return Ok(());
            };
            let _ = known_post::Entity::insert(known_post::ActiveModel {
                post_id: Set(post_id),
                author_id: Set(author_id),
            })
            .on_conflict(
                OnConflict::column(known_post::Column::PostId)
                    .do_nothing()
                    .to_owned(),
            )
            .try_insert()
            .exec_without_returning(txn)
            .await?;
        }
        events::POST_DELETED => {
            let Some(post_id) = field("postId") else {
                tracing::warn!(event = %event.id, "POST_DELETED without postId: ignored");
                return Ok(());
            };
            comment::Entity::delete_many()
                .filter(comment::Column::PostId.eq(post_id.clone()))
                .exec(txn)
                .await?;
            known_post::Entity::delete_by_id(post_id).exec(txn).await?;
        }
        _ => {}
    }
    Ok(())
}
