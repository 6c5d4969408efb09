//! The GraphQL schema of the posts service: `Post` (entity owner), the `User` entity
//! extended with `posts` and `feed`, the `post` query and the create/delete mutations.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use portico_kit::errors::{ErrorCode, gql_error};
use portico_kit::events;
use portico_kit::identity::require_user;
use portico_kit::pagination::{encode_cursor, forward_page, validate_first};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde_json::json;

use crate::entity::post;
use crate::loaders::{AuthorPostsLoader, PageKey, PostLoader};
use portico_kit::errors::internal;
use portico_kit::input::{after_cursor, plausible_id, storable_text};

/// Longest caption accepted, in characters.
pub const MAX_CAPTION_CHARS: usize = 2200;
/// Longest image URL accepted, in characters.
pub const MAX_IMAGE_URL_CHARS: usize = 2048;
/// Most followed authors the feed looks at.
pub const MAX_FEED_AUTHORS: usize = 5000;
/// Default and maximum page sizes.
pub const DEFAULT_PAGE: i32 = 10;
pub const MAX_PAGE: i32 = 100;

/// A photo post.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Post {
    pub id: ID,
    pub caption: String,
    pub image_url: Option<String>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub author_id: String,
}

impl From<post::Model> for Post {
    fn from(m: post::Model) -> Self {
        Self {
            id: ID(m.id),
            caption: m.caption,
            image_url: m.image_url,
            created_at: m.created_at,
            author_id: m.author_id,
        }
    }
}

#[ComplexObject]
impl Post {
    /// Who posted it (resolved by the users service).
    async fn author(&self) -> Option<User> {
        Some(User {
            id: ID(self.author_id.clone()),
            following: None,
        })
    }
}

/// A user, owned by the users service; this service adds their posts and feed.
pub struct User {
    pub id: ID,
    /// `followingIds` as sent by the router for `@requires`.
    pub following: Option<Vec<ID>>,
}

#[Object]
impl User {
    async fn id(&self) -> &ID {
        &self.id
    }

    // Ids of the users this user follows: owned (and described) by the users service;
    // the router sends them in the representation for `feed`.
    #[graphql(external)]
    async fn following_ids(&self) -> Vec<ID> {
        self.following.clone().unwrap_or_default()
    }

    /// The user's posts, newest first.
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<PostConnection>> {
        let first = validate_first(first, DEFAULT_PAGE, MAX_PAGE)?;
        let after = after_cursor(after.as_deref())?;
        let loader = ctx.data::<DataLoader<AuthorPostsLoader>>()?;
        let rows = loader
            .load_one(PageKey {
                parent: self.id.to_string(),
                limit: first + 1,
                after: after.clone(),
            })
            .await?
            .unwrap_or_default();
        Ok(Some(PostConnection::build(rows, first, after.is_some())))
    }

    /// Newest posts of the users this user follows, newest first. The keyset cursor on
    /// `(createdAt, id)` keeps pages stable while new posts arrive.
    #[graphql(requires = "followingIds")]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<PostConnection>> {
        let first = validate_first(first, DEFAULT_PAGE, MAX_PAGE)?;
        let after = after_cursor(after.as_deref())?;
        let Some(following) = &self.following else {
            return Err(gql_error(
                ErrorCode::BadUserInput,
                "User.feed needs followingIds in the entity representation",
            ));
        };
        if following.len() > MAX_FEED_AUTHORS {
            return Err(gql_error(
                ErrorCode::BadUserInput,
                format!("the feed supports following at most {MAX_FEED_AUTHORS} users"),
            ));
        }
        let following: Vec<String> = following
            .iter()
            .filter(|id| plausible_id(id))
            .map(|id| id.to_string())
            .collect();
        if following.is_empty() {
            return Ok(Some(PostConnection::build(
                Vec::new(),
                first,
                after.is_some(),
            )));
        }
        let db = ctx.data::<DatabaseConnection>()?;
        let mut query = post::Entity::find().filter(post::Column::AuthorId.is_in(following));
        if let Some((ts, id)) = &after {
            query = query.filter(
                sea_orm::Condition::any()
                    .add(post::Column::CreatedAt.lt(*ts))
                    .add(
                        sea_orm::Condition::all()
                            .add(post::Column::CreatedAt.eq(*ts))
                            .add(post::Column::Id.lt(id.clone())),
                    ),
            );
        }
        let rows = query
            .order_by_desc(post::Column::CreatedAt)
            .order_by_desc(post::Column::Id)
            .limit(first + 1)
            .all(db)
            .await
            .map_err(internal)?;
        Ok(Some(PostConnection::build(rows, first, after.is_some())))
    }
}

portico_kit::relay_connection!(
    /// A Relay connection of posts.
    PostConnection,
    /// An edge of a `PostConnection`.
    PostEdge,
    Post,
);

impl PostConnection {
    /// `rows` holds up to `first + 1` rows: the extra one only proves there is a next page.
    fn build(rows: Vec<post::Model>, first: u64, has_previous: bool) -> Self {
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
    /// A post by id; `null` when there is no such post.
    async fn post(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Post>> {
        load_post(ctx, id.to_string()).await
    }

    #[graphql(entity)]
    async fn find_post_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Post>> {
        load_post(ctx, id.to_string()).await
    }

    #[graphql(entity)]
    async fn find_user_by_id(
        &self,
        #[graphql(key)] id: ID,
        following_ids: Option<Vec<ID>>,
    ) -> User {
        User {
            id,
            following: following_ids,
        }
    }
}

async fn load_post(ctx: &Context<'_>, id: String) -> Result<Option<Post>> {
    let loader = ctx.data::<DataLoader<PostLoader>>()?;
    Ok(loader.load_one(id).await?.map(Post::from))
}

/// Root mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Publish a post as the authenticated user. `caption` ≤ 2200 characters; `imageUrl`
    /// an http(s) URL.
    async fn create_post(
        &self,
        ctx: &Context<'_>,
        caption: String,
        image_url: Option<String>,
    ) -> Result<Option<Post>> {
        let author = require_user(ctx)?;
        if caption.chars().count() > MAX_CAPTION_CHARS || !storable_text(&caption) {
            return Err(gql_error(
                ErrorCode::BadUserInput,
                format!("caption must be at most {MAX_CAPTION_CHARS} characters, without NUL"),
            ));
        }
        if let Some(url) = &image_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            let clean = !url.chars().any(char::is_control);
            if !scheme_ok || !clean || url.chars().count() > MAX_IMAGE_URL_CHARS {
                return Err(gql_error(
                    ErrorCode::BadUserInput,
                    format!(
                        "imageUrl must be an http(s) URL of at most {MAX_IMAGE_URL_CHARS} characters"
                    ),
                ));
            }
        }
        let model = post::Model {
            id: portico_kit::new_id(),
            author_id: author,
            caption,
            image_url,
            created_at: portico_kit::now(),
        };
        let db = ctx.data::<DatabaseConnection>()?;
        let txn = db.begin().await.map_err(internal)?;
        post::ActiveModel {
            id: Set(model.id.clone()),
            author_id: Set(model.author_id.clone()),
            caption: Set(model.caption.clone()),
            image_url: Set(model.image_url.clone()),
            created_at: Set(model.created_at),
        }
        .insert(&txn)
        .await
        .map_err(internal)?;
        events::enqueue(
            &txn,
            events::POST_CREATED,
            json!({ "postId": model.id, "authorId": model.author_id }),
        )
        .await
        .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        Ok(Some(model.into()))
    }

    /// Delete one of your own posts: `NOT_FOUND` if it does not exist, `FORBIDDEN` if it
    /// is someone else's. Returns `true`.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>> {
        let user = require_user(ctx)?;
        if !plausible_id(&id) {
            return Err(gql_error(ErrorCode::NotFound, "no such post"));
        }
        let db = ctx.data::<DatabaseConnection>()?;
        let Some(existing) = post::Entity::find_by_id(id.to_string())
            .one(db)
            .await
            .map_err(internal)?
        else {
            return Err(gql_error(ErrorCode::NotFound, "no such post"));
        };
        if existing.author_id != user {
            return Err(gql_error(
                ErrorCode::Forbidden,
                "only the author can delete a post",
            ));
        }
        // The write comes first in the transaction (SQLite takes the write lock at once);
        // of two concurrent deletes only the one that removed the row emits the event.
        let txn = db.begin().await.map_err(internal)?;
        let deleted = post::Entity::delete_many()
            .filter(post::Column::Id.eq(existing.id.clone()))
            .filter(post::Column::AuthorId.eq(user))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if deleted.rows_affected == 1 {
            events::enqueue(
                &txn,
                events::POST_DELETED,
                json!({ "postId": existing.id, "authorId": existing.author_id }),
            )
            .await
            .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)?;
        Ok(Some(true))
    }
}
