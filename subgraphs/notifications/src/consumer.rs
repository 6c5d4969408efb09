//! Builds notifications from domain events. Runs inside the kit consumer's transaction
//! (which records the event id in `processed_events`, so a redelivered event is skipped);
//! on top of that every notification has a unique natural key (`source_key`) and is
//! inserted with ON CONFLICT DO NOTHING, so even the same fact arriving under two event ids
//! yields one notification. Nobody is notified of their own action; undo events
//! (POST_UNLIKED, COMMENT_DELETED, USER_UNFOLLOWED, POST_DELETED) remove the notification.

use chrono::SubsecRound;
use portico_kit::KitError;
use portico_kit::events::{self, Event};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::entity::{notification, post_author};
use crate::schema::NotificationKind;

/// Consumer group name of this service on the bus.
pub const GROUP: &str = "notifications";

/// Natural key of a like notification.
pub fn like_key(post_id: &str, user_id: &str) -> String {
    format!("like:{post_id}:{user_id}")
}

/// Natural key of a comment notification.
pub fn comment_key(comment_id: &str) -> String {
    format!("comment:{comment_id}")
}

/// Natural key of a follow notification.
pub fn follow_key(follower_id: &str, followee_id: &str) -> String {
    format!("follow:{follower_id}:{followee_id}")
}

/// Apply one event (events of other kinds are ignored; malformed ones are logged and
/// skipped so they cannot block the stream).
pub async fn apply<C: ConnectionTrait>(txn: &C, event: &Event) -> Result<(), KitError> {
    let field = |name: &str| {
        event
            .payload
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let malformed = |needs: &str| {
        tracing::warn!(event = %event.id, kind = %event.kind, needs, "malformed event ignored");
        Ok(())
    };
    match event.kind.as_str() {
        events::POST_CREATED => {
            let (Some(post_id), Some(author_id)) = (field("postId"), field("authorId")) else {
                return malformed("postId, authorId");
            };
            let _ = post_author::Entity::insert(post_author::ActiveModel {
                post_id: Set(post_id),
                author_id: Set(author_id),
            })
            .on_conflict(
                OnConflict::column(post_author::Column::PostId)
                    .do_nothing()
                    .to_owned(),
            )
            .try_insert()
            .exec_without_returning(txn)
            .await?;
        }
        events::POST_DELETED => {
            let Some(post_id) = field("postId") else {
                return malformed("postId");
            };
            notification::Entity::delete_many()
                .filter(notification::Column::PostId.eq(post_id.clone()))
                .exec(txn)
                .await?;
            post_author::Entity::delete_by_id(post_id).exec(txn).await?;
        }
        events::POST_LIKED => {
            let (Some(post_id), Some(user_id)) = (field("postId"), field("userId")) else {
                return malformed("postId, userId");
            };
            if let Some(author) = author_of(txn, &post_id).await? {
                let key = like_key(&post_id, &user_id);
                notify(
                    txn,
                    event,
                    author,
                    NotificationKind::Like,
                    user_id,
                    Some(post_id),
                    key,
                )
                .await?;
            }
        }
        events::POST_UNLIKED => {
            let (Some(post_id), Some(user_id)) = (field("postId"), field("userId")) else {
                return malformed("postId, userId");
            };
            forget(txn, like_key(&post_id, &user_id)).await?;
        }
        events::POST_COMMENTED => {
            let (Some(post_id), Some(comment_id), Some(author_id)) =
                (field("postId"), field("commentId"), field("authorId"))
            else {
                return malformed("postId, commentId, authorId");
            };
            if let Some(post_author) = author_of(txn, &post_id).await? {
                let key = comment_key(&comment_id);
                notify(
                    txn,
                    event,
                    post_author,
                    NotificationKind::Comment,
                    author_id,
                    Some(post_id),
                    key,
                )
                .await?;
            }
        }
        events::COMMENT_DELETED => {
            let Some(comment_id) = field("commentId") else {
                return malformed("commentId");
            };
            forget(txn, comment_key(&comment_id)).await?;
        }
        events::USER_FOLLOWED => {
            let (Some(follower), Some(followee)) = (field("followerId"), field("followeeId"))
            else {
                return malformed("followerId, followeeId");
            };
            let key = follow_key(&follower, &followee);
            notify(
                txn,
                event,
                followee,
                NotificationKind::Follow,
                follower,
                None,
                key,
            )
            .await?;
        }
        events::USER_UNFOLLOWED => {
            let (Some(follower), Some(followee)) = (field("followerId"), field("followeeId"))
            else {
                return malformed("followerId, followeeId");
            };
            forget(txn, follow_key(&follower, &followee)).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn author_of<C: ConnectionTrait>(txn: &C, post_id: &str) -> Result<Option<String>, KitError> {
    let author = post_author::Entity::find_by_id(post_id.to_string())
        .one(txn)
        .await?
        .map(|p| p.author_id);
    if author.is_none() {
        tracing::debug!(
            post_id,
            "event about an unknown (or deleted) post: no notification"
        );
    }
    Ok(author)
}

async fn notify<C: ConnectionTrait>(
    txn: &C,
    event: &Event,
    recipient: String,
    kind: NotificationKind,
    actor: String,
    post_id: Option<String>,
    source_key: String,
) -> Result<(), KitError> {
    if recipient == actor {
        return Ok(());
    }
    let _ = notification::Entity::insert(notification::ActiveModel {
        id: Set(portico_kit::new_id()),
        recipient_id: Set(recipient),
        kind: Set(kind.as_str().to_string()),
        actor_id: Set(actor),
        post_id: Set(post_id),
        source_key: Set(source_key),
        created_at: Set(event.occurred_at.trunc_subsecs(6)),
        read: Set(false),
    })
    .on_conflict(
        OnConflict::column(notification::Column::SourceKey)
            .do_nothing()
            .to_owned(),
    )
    .try_insert()
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

async fn forget<C: ConnectionTrait>(txn: &C, source_key: String) -> Result<(), KitError> {
    notification::Entity::delete_many()
        .filter(notification::Column::SourceKey.eq(source_key))
        .exec(txn)
        .await?;
    Ok(())
}
