//! DataLoaders of the likes service: per-post counts, "did this user like these posts",
//! and per-post pages of likes. Each batch is one SQL statement (per distinct page shape
//! or user). Loaders live in the schema data without a cache: they batch, never serve
//! stale values after a like or unlike.

use std::collections::{HashMap, HashSet};

use async_graphql::dataloader::Loader;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
};

use crate::entity::like;
use portico_kit::input::plausible_id;
pub use portico_kit::sql::PageKey;
use portico_kit::sql::{Order, PageQuery, load_pages};

/// Number of likes per post (`Post.likeCount`).
pub struct LikeCountLoader {
    pub db: DatabaseConnection,
}

#[derive(FromQueryResult)]
struct CountRow {
    post_id: String,
    n: i64,
}

impl Loader<String> for LikeCountLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, i64>, Self::Error> {
        let rows = like::Entity::find()
            .select_only()
            .column(like::Column::PostId)
            .column_as(like::Column::UserId.count(), "n")
            .filter(like::Column::PostId.is_in(keys.iter().filter(|k| plausible_id(k)).cloned()))
            .group_by(like::Column::PostId)
            .into_model::<CountRow>()
            .all(&self.db)
            .await
            .map_err(portico_kit::errors::internal)?;
        let mut out: HashMap<String, i64> = keys.iter().map(|k| (k.clone(), 0)).collect();
        for row in rows {
            out.insert(row.post_id, row.n);
        }
        Ok(out)
    }
}

/// `(post id, user id)` → whether that user likes that post (`Post.likedByMe`).
pub struct LikedLoader {
    pub db: DatabaseConnection,
}

#[derive(FromQueryResult)]
struct PostIdRow {
    post_id: String,
}

impl Loader<(String, String)> for LikedLoader {
    type Value = bool;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), bool>, Self::Error> {
        let mut by_user: HashMap<&str, Vec<String>> = HashMap::new();
        for (post, user) in keys
            .iter()
            .filter(|(p, u)| plausible_id(p) && plausible_id(u))
        {
            by_user.entry(user.as_str()).or_default().push(post.clone());
        }
        let mut out: HashMap<(String, String), bool> =
            keys.iter().map(|k| (k.clone(), false)).collect();
        for (user, posts) in by_user {
            let liked: HashSet<String> = like::Entity::find()
                .select_only()
                .column(like::Column::PostId)
                .filter(like::Column::UserId.eq(user))
                .filter(like::Column::PostId.is_in(posts.iter().cloned()))
                .into_model::<PostIdRow>()
                .all(&self.db)
                .await
                .map_err(portico_kit::errors::internal)?
                .into_iter()
                .map(|r| r.post_id)
                .collect();
            for post in posts {
                let is_liked = liked.contains(&post);
                out.insert((post, user.to_string()), is_liked);
            }
        }
        Ok(out)
    }
}

/// Pages of a post's likes, newest first (`Post.likes`).
pub struct PostLikesLoader {
    pub db: DatabaseConnection,
}

const LIKES_PAGE: PageQuery<'static> = PageQuery {
    table: "likes",
    columns: "post_id, user_id, created_at",
    parent_column: "post_id",
    tie_column: "user_id",
    order: Order::NewestFirst,
};

impl Loader<PageKey> for PostLikesLoader {
    type Value = Vec<like::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PageKey],
    ) -> Result<HashMap<PageKey, Vec<like::Model>>, Self::Error> {
        load_pages::<like::Entity>(&self.db, &LIKES_PAGE, keys, plausible_id, |r| &r.post_id).await
    }
}
