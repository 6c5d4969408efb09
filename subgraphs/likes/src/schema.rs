//! The GraphQL schema of the likes service: the `Post` entity extended with `likeCount`,
//! `likedByMe` and `likes`, and the idempotent `likePost` / `unlikePost` mutations.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use portico_kit::errors::{ErrorCode, gql_error};
use portico_kit::events;
use portico_kit::identity::{identity, require_user};
use portico_kit::pagination::{encode_cursor, forward_page, validate_first};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait,
    TryInsertResult,
};
use serde_json::json;

use crate::entity::like;
use crate::loaders::{LikeCountLoader, LikedLoader, PageKey, PostLikesLoader};
use portico_kit::errors::internal;
use portico_kit::input::{after_cursor, plausible_id};
use portico_kit::known_posts::known_post;

/// Default and maximum page sizes.
pub const DEFAULT_PAGE: i32 = 10;
pub const MAX_PAGE: i32 = 100;

// A user reference; the users service resolves it (no description: the owner's is the
// one clients see).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(unresolvable = "id")]
pub struct User {
    pub id: ID,
}

/// One user's like of a post.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Like {
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub user_id: String,
}

#[ComplexObject]
impl Like {
    /// Who liked the post.
    async fn user(&self) -> Option<User> {
        Some(User {
            id: ID(self.user_id.clone()),
        })
    }
}

portico_kit::relay_connection!(
    /// A Relay connection of likes, newest first.
    LikeConnection,
    /// An edge of a `LikeConnection`.
    LikeEdge,
    Like,
);

impl LikeConnection {
    /// `rows` holds up to `first + 1` rows: the extra one only proves there is a next page.
    fn build(rows: Vec<like::Model>, first: u64, has_previous: bool) -> Self {
        let (edges, page_info) = forward_page(rows, first, has_previous, |m| {
            let cursor = encode_cursor(m.created_at, &m.user_id);
            let node = Like {
                created_at: m.created_at,
                user_id: m.user_id,
            };
            (cursor, node)
        });
        Self::from_edges(edges, page_info)
    }
}

/// A post, owned by the posts service; this service adds its likes.
pub struct Post {
    pub id: ID,
}

#[Object]
impl Post {
    async fn id(&self) -> &ID {
        &self.id
    }

    /// How many users like the post.
    async fn like_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let loader = ctx.data::<DataLoader<LikeCountLoader>>()?;
        let n = loader.load_one(self.id.to_string()).await?.unwrap_or(0);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Whether the authenticated user likes the post (`false` for anonymous callers).
    async fn liked_by_me(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(user) = identity(ctx).user_id.clone() else {
            return Ok(false);
        };
        let loader = ctx.data::<DataLoader<LikedLoader>>()?;
        Ok(loader
            .load_one((self.id.to_string(), user))
            .await?
            .unwrap_or(false))
    }

    /// Who liked the post, newest first.
    async fn likes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<LikeConnection>> {
        let first = validate_first(first, DEFAULT_PAGE, MAX_PAGE)?;
        let after = after_cursor(after.as_deref())?;
        let loader = ctx.data::<DataLoader<PostLikesLoader>>()?;
        let rows = loader
            .load_one(PageKey {
                parent: self.id.to_string(),
                limit: first + 1,
                after: after.clone(),
            })
            .await?
            .unwrap_or_default();
        Ok(Some(LikeConnection::build(rows, first, after.is_some())))
    }
}

/// Root queries: entity resolvers only.
pub struct Query;

#[Object]
impl Query {
    #[graphql(entity)]
    async fn find_post_by_id(&self, id: ID) -> Post {
        Post { id }
    }
}

/// Root mutations.
pub struct Mutation;

async fn ensure_known(db: &DatabaseConnection, post_id: &str) -> Result<()> {
    if !plausible_id(post_id) {
        return Err(gql_error(ErrorCode::NotFound, "no such post"));
    }
    let known = known_post::Entity::find_by_id(post_id.to_string())
        .one(db)
        .await
        .map_err(internal)?;
    match known {
        Some(_) => Ok(()),
        None => Err(gql_error(ErrorCode::NotFound, "no such post")),
    }
}

#[Object]
impl Mutation {
    /// Like a post as the authenticated user. Idempotent: liking twice counts once, and
    /// POST_LIKED is emitted only when the like is new. `NOT_FOUND` for unknown posts.
    async fn like_post(&self, ctx: &Context<'_>, post_id: ID) -> Result<Option<Post>> {
        let user = require_user(ctx)?;
        let db = ctx.data::<DatabaseConnection>()?;
        ensure_known(db, &post_id).await?;
        // The insert is the transaction's first statement (SQLite takes the write lock
        // at once); the primary key (post_id, user_id) makes concurrent likes exact.
        let txn = db.begin().await.map_err(internal)?;
        let inserted = like::Entity::insert(like::ActiveModel {
            post_id: Set(post_id.to_string()),
            user_id: Set(user.clone()),
            created_at: Set(portico_kit::now()),
        })
        .on_conflict(
            OnConflict::columns([like::Column::PostId, like::Column::UserId])
                .do_nothing()
                .to_owned(),
        )
        .try_insert()
        .exec_without_returning(&txn)
        .await
        .map_err(internal)?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            events::enqueue(
                &txn,
                events::POST_LIKED,
                json!({ "postId": post_id.to_string(), "userId": user }),
            )
            .await
            .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)?;
        Ok(Some(Post { id: post_id }))
    }

    /// Remove the authenticated user's like. Idempotent: POST_UNLIKED is emitted only
    /// when a like was removed. `NOT_FOUND` for unknown posts.
    async fn unlike_post(&self, ctx: &Context<'_>, post_id: ID) -> Result<Option<Post>> {
        let user = require_user(ctx)?;
        let db = ctx.data::<DatabaseConnection>()?;
        ensure_known(db, &post_id).await?;
        let txn = db.begin().await.map_err(internal)?;
        let deleted = like::Entity::delete_many()
            .filter(like::Column::PostId.eq(post_id.to_string()))
            .filter(like::Column::UserId.eq(user.clone()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if deleted.rows_affected > 0 {
            events::enqueue(
                &txn,
                events::POST_UNLIKED,
                json!({ "postId": post_id.to_string(), "userId": user }),
            )
            .await
            .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)?;
        Ok(Some(Post { id: post_id }))
    }
}
