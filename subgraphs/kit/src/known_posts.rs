//! The `known_posts` projection that services contributing to `Post` keep from the posts
//! service's events: POST_CREATED adds the post, POST_DELETED removes it together with
//! the service's own rows about it. Writes accept only posts this projection knows.
//! [`apply`] runs inside the kit consumer's transaction (which also records the event id,
//! so a redelivered event is skipped) and is idempotent on its own as well.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DeleteMany, EntityTrait, Set};

use crate::KitError;
use crate::events::{self, Event};

pub mod known_post {
    //! The `known_posts` table: posts that exist according to the posts service.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "known_posts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub post_id: String,
        pub author_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Apply one event to the projection (events of other kinds are ignored);
/// `dependents(post_id)` selects the service's own rows to delete with a deleted post.
pub async fn apply<C, E>(
    txn: &C,
    event: &Event,
    dependents: impl FnOnce(String) -> DeleteMany<E>,
) -> Result<(), KitError>
where
    C: ConnectionTrait,
    E: EntityTrait,
{
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
            dependents(post_id.clone()).exec(txn).await?;
            known_post::Entity::delete_by_id(post_id).exec(txn).await?;
        }
        _ => {}
    }
    Ok(())
}
