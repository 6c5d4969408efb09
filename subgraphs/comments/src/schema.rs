//! The GraphQL schema of the comments service: `Comment` (entity owner), the `Post`
//! entity extended with `comments` and `commentCount`, and the add/delete mutations.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use portico_kit::errors::{ErrorCode, gql_error};
use portico_kit::events;
use portico_kit::identity::require_user;
use portico_kit::pagination::{encode_cursor, forward_page, validate_first};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use serde_json::json;

use crate::entity::comment;
use crate::loaders::{CommentCountLoader, CommentLoader, PageKey, PostCommentsLoader};
use portico_kit::errors::internal;
use portico_kit::input::{after_cursor, plausible_id, storable_text};
use portico_kit::known_posts::known_post;

/// Longest comment body accepted, in characters.
pub const MAX_BODY_CHARS: usize = 2000;
/// Default and maximum page sizes.
pub const DEFAULT_PAGE: i32 = 10;
pub const MAX_PAGE: i32 = 100;

/// A comment on a post.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Comment {
    pub id: ID,
    pub body: String,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub author_id: String,
    #[graphql(skip)]
    pub post_id: String,
}

impl From<comment::Model> for Comment {
    fn from(m: comment::Model) -> Self {
        Self {
            id: ID(m.id),
            body: m.body,
            created_at: m.created_at,
            author_id: m.author_id,
            post_id: m.post_id,
        }
    }
}

#[ComplexObject]
impl Comment {
    /// Who wrote it (resolved by the users service).
    async fn author(&self) -> Option<User> {
        Some(User {
            id: ID(self.author_id.clone()),
        })
    }

    /// The post it is on.
    async fn post(&self) -> Option<Post> {
        Some(Post {
            id: ID(self.post_id.clone()),
        })
    }
}

// A user reference; the users service resolves it (no description: the owner's is the
// one clients see).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(unresolvable = "id")]
pub struct User {
    pub id: ID,
}

/// A post, owned by the posts service; this service adds its comments.
pub struct Post {
    pub id: ID,
}

#[Object]
impl Post {
    async fn id(&self) -> &ID {
        &self.id
    }

    /// The post's comments, **oldest first** (conversation order); keyset cursor on
    /// `(createdAt, id)`, so comments added while paging appear on a later page.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<CommentConnection>> {
        let first = validate_first(first, DEFAULT_PAGE, MAX_PAGE)?;
        let after = after_cursor(after.as_deref())?;
        let loader = ctx.data::<DataLoader<PostCommentsLoader>>()?;
        let rows = loader
            .load_one(PageKey {
                parent: self.id.to_string(),
                limit: first + 1,
                after: after.clone(),
            })
            .await?
            .unwrap_or_default();
        Ok(Some(CommentConnection::build(rows, first, after.is_some())))
    }

    /// How many comments the post has.
    async fn comment_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let loader = ctx.data::<DataLoader<CommentCountLoader>>()?;
        let n = loader.load_one(self.id.to_string()).await?.unwrap_or(0);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

portico_kit::relay_connection!(
    /// A Relay connection of comments.
    CommentConnection,
    /// An edge of a `CommentConnection`.
    CommentEdge,
    Comment,
);

impl CommentConnection {
    /// `rows` holds up to `first + 1` rows: the extra one only proves there is a next page.
    fn build(rows: Vec<comment::Model>, first: u64, has_previous: bool) -> Self {
        let (edges, page_info) = forward_page(rows, first, has_previous, |m| {
            (encode_cursor(m.created_at, &m.id), m.into())
        });
        Self::from_edges(edges, page_info)
    }
}

/// Root queries and entity resolvers.
pub struct Query;

#[Object]
impl Query {
    /// A comment by id; `null` when there is no such comment.
    async fn comment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Comment>> {
        load_comment(ctx, id.to_string()).await
    }

    #[graphql(entity)]
    async fn find_comment_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Comment>> {
        load_comment(ctx, id.to_string()).await
    }

    #[graphql(entity)]
    async fn find_post_by_id(&self, id: ID) -> Post {
        Post { id }
    }
}

async fn load_comment(ctx: &Context<'_>, id: String) -> Result<Option<Comment>> {
    let loader = ctx.data::<DataLoader<CommentLoader>>()?;
    Ok(loader.load_one(id).await?.map(Comment::from))
}

/// Root mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Comment on a post as the authenticated user: body 1..2000 characters (not only
    /// whitespace); `NOT_FOUND` when the post does not exist.
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        body: String,
    ) -> Result<Option<Comment>> {
        let author = require_user(ctx)?;
        let len = body.chars().count();
        if body.trim().is_empty() || len > MAX_BODY_CHARS || !storable_text(&body) {
            return Err(gql_error(
                ErrorCode::BadUserInput,
                format!("body must be 1 to {MAX_BODY_CHARS} characters, without NUL"),
            ));
        }
        if !plausible_id(&post_id) {
            return Err(gql_error(ErrorCode::NotFound, "no such post"));
        }
        let db = ctx.data::<DatabaseConnection>()?;
        let known = known_post::Entity::find_by_id(post_id.to_string())
            .one(db)
            .await
            .map_err(internal)?;
        if known.is_none() {
            return Err(gql_error(ErrorCode::NotFound, "no such post"));
        }
        let model = comment::Model {
            id: portico_kit::new_id(),
            post_id: post_id.to_string(),
            author_id: author,
            body,
            created_at: portico_kit::now(),
        };
        let txn = db.begin().await.map_err(internal)?;
        comment::ActiveModel {
            id: Set(model.id.clone()),
            post_id: Set(model.post_id.clone()),
            author_id: Set(model.author_id.clone()),
            body: Set(model.body.clone()),
            created_at: Set(model.created_at),
        }
        .insert(&txn)
        .await
        .map_err(internal)?;
        events::enqueue(
            &txn,
            events::POST_COMMENTED,
            json!({ "postId": model.post_id, "commentId": model.id, "authorId": model.author_id }),
        )
        .await
        .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        Ok(Some(model.into()))
    }

    /// Delete one of your own comments: `NOT_FOUND` if it does not exist, `FORBIDDEN` if it
    /// is someone else's. Returns `true`.
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>> {
        let user = require_user(ctx)?;
        if !plausible_id(&id) {
            return Err(gql_error(ErrorCode::NotFound, "no such comment"));
        }
        let db = ctx.data::<DatabaseConnection>()?;
        let Some(existing) = comment::Entity::find_by_id(id.to_string())
            .one(db)
            .await
            .map_err(internal)?
        else {
            return Err(gql_error(ErrorCode::NotFound, "no such comment"));
        };
        if existing.author_id != user {
            return Err(gql_error(
                ErrorCode::Forbidden,
                "only the author can delete a comment",
            ));
        }
        // Write first in the transaction; only the delete that removed the row emits.
        let txn = db.begin().await.map_err(internal)?;
        let deleted = comment::Entity::delete_many()
            .filter(comment::Column::Id.eq(existing.id.clone()))
            .filter(comment::Column::AuthorId.eq(user))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if deleted.rows_affected == 1 {
            events::enqueue(
                &txn,
                events::COMMENT_DELETED,
                json!({
                    "postId": existing.post_id,
                    "commentId": existing.id,
                    "authorId": existing.author_id,
                }),
            )
            .await
            .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)?;
        Ok(Some(true))
    }
}
