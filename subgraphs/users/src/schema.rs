//! The users GraphQL API: the `User` entity, `me` / `user` / `userByUsername`, and the
//! idempotent `follow` / `unfollow` mutations.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use portico_kit::errors::{OrInternal, bad_input, not_found};
use portico_kit::events::{USER_FOLLOWED, USER_UNFOLLOWED, enqueue};
use portico_kit::identity::{identity, require_user};
use portico_kit::pagination::{PageInfo, decode_cursor, encode_cursor, validate_first};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};

use crate::loaders::{
    Direction, FollowPageLoader, FollowerCountLoader, FollowingCountLoader, FollowingIdsLoader,
    PageKey, ProfileLoader,
};
use crate::store::{follow, profile};

/// Default and maximum page sizes of connections.
pub const DEFAULT_PAGE: i32 = 10;
pub const MAX_PAGE: i32 = 100;

fn loader<'a, T: Send + Sync + 'static>(
    ctx: &Context<'a>,
) -> async_graphql::Result<&'a DataLoader<T>> {
    ctx.data::<DataLoader<T>>()
}

/// A user profile.
#[derive(Clone, Debug)]
pub struct User(pub profile::Model);

portico_kit::relay_connection!(
    /// A page of users (followers or followings), newest follow first.
    UserConnection,
    /// A follow edge.
    UserEdge,
    User,
);

async fn follow_page(
    ctx: &Context<'_>,
    user_id: &str,
    direction: Direction,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<UserConnection> {
    let first = validate_first(first, DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = after.as_deref().map(decode_cursor).transpose()?;
    let page = loader::<FollowPageLoader>(ctx)?
        .load_one(PageKey {
            user_id: user_id.to_string(),
            direction,
            first,
            after: cursor.clone(),
        })
        .await
        .or_internal()?
        .unwrap_or_default();
    let ids: Vec<String> = page.edges.iter().map(|(id, _)| id.clone()).collect();
    let profiles = loader::<ProfileLoader>(ctx)?
        .load_many(ids)
        .await
        .or_internal()?;
    let mut edges = Vec::with_capacity(page.edges.len());
    for (id, at) in &page.edges {
        // A followed user without a profile yet (event in flight) is left out.
        if let Some(p) = profiles.get(id) {
            edges.push((encode_cursor(*at, id), User(p.clone())));
        }
    }
    let cursors: Vec<String> = edges.iter().map(|(c, _)| c.clone()).collect();
    let page_info = PageInfo::forward(&cursors, page.has_next, cursor.is_some());
    Ok(UserConnection::from_edges(edges, page_info))
}

/// A member of the network: their profile and who they follow. The other services add
/// their posts, comments, likes and notifications.
#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }

    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }

    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Number of users following this user.
    async fn follower_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let n = loader::<FollowerCountLoader>(ctx)?
            .load_one(self.0.id.clone())
            .await
            .or_internal()?
            .unwrap_or(0);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Number of users this user follows.
    async fn following_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let n = loader::<FollowingCountLoader>(ctx)?
            .load_one(self.0.id.clone())
            .await
            .or_internal()?
            .unwrap_or(0);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Ids of every user this user follows (used by posts' `feed`).
    async fn following_ids(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ID>> {
        let ids = loader::<FollowingIdsLoader>(ctx)?
            .load_one(self.0.id.clone())
            .await
            .or_internal()?
            .unwrap_or_default();
        Ok(ids.into_iter().map(ID).collect())
    }

    /// Users following this user, newest first.
    async fn followers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        follow_page(ctx, &self.0.id, Direction::Followers, first, after).await
    }

    /// Users this user follows, newest first.
    async fn following(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        follow_page(ctx, &self.0.id, Direction::Following, first, after).await
    }
}

async fn load_user(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<User>> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    Ok(loader::<ProfileLoader>(ctx)?
        .load_one(id.to_string())
        .await
        .or_internal()?
        .map(User))
}

pub struct Query;

#[Object]
impl Query {
    /// The authenticated user (null for anonymous callers).
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match &identity(ctx).user_id {
            Some(id) => load_user(ctx, id).await,
            None => Ok(None),
        }
    }

    /// A user by id.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        load_user(ctx, &id).await
    }

    /// A user by username (case-insensitive).
    async fn user_by_username(
        &self,
        ctx: &Context<'_>,
        username: String,
    ) -> async_graphql::Result<Option<User>> {
        if username.len() > 64 {
            return Ok(None);
        }
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(profile::Entity::find()
            .filter(profile::Column::Username.eq(username.trim().to_lowercase()))
            .one(db)
            .await
            .or_internal()?
            .map(User))
    }

    #[graphql(entity)]
    async fn find_user_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<User>> {
        load_user(ctx, &id).await
    }
}

pub struct Mutation;

async fn target(ctx: &Context<'_>, me: &str, user_id: &ID) -> async_graphql::Result<User> {
    if user_id.as_str() == me {
        return Err(bad_input("you cannot follow yourself"));
    }
    load_user(ctx, user_id)
        .await?
        .ok_or_else(|| not_found("user not found"))
}

#[Object]
impl Mutation {
    /// Follow a user (idempotent). Returns the followed user.
    async fn follow(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<User> {
        let me = require_user(ctx)?;
        let user = target(ctx, &me, &user_id).await?;
        let db = ctx.data::<DatabaseConnection>()?;
        let txn = db.begin().await.or_internal()?;
        let inserted = follow::Entity::insert(follow::ActiveModel {
            follower_id: Set(me.clone()),
            followee_id: Set(user.0.id.clone()),
            created_at: Set(portico_kit::now()),
        })
        .on_conflict(
            OnConflict::columns([follow::Column::FollowerId, follow::Column::FolloweeId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .or_internal()?;
        if inserted == 1 {
            enqueue(
                &txn,
                USER_FOLLOWED,
                serde_json::json!({ "followerId": me, "followeeId": user.0.id }),
            )
            .await
            .or_internal()?;
        }
        txn.commit().await.or_internal()?;
        Ok(user)
    }

    /// Stop following a user (idempotent). Returns the user.
    async fn unfollow(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<User> {
        let me = require_user(ctx)?;
        let user = target(ctx, &me, &user_id).await?;
        let db = ctx.data::<DatabaseConnection>()?;
        let txn = db.begin().await.or_internal()?;
        let deleted = follow::Entity::delete_many()
            .filter(follow::Column::FollowerId.eq(&me))
            .filter(follow::Column::FolloweeId.eq(&user.0.id))
            .exec(&txn)
            .await
            .or_internal()?
            .rows_affected;
        if deleted == 1 {
            enqueue(
                &txn,
                USER_UNFOLLOWED,
                serde_json::json!({ "followerId": me, "followeeId": user.0.id }),
            )
            .await
            .or_internal()?;
        }
        txn.commit().await.or_internal()?;
        Ok(user)
    }
}
