//! DataLoaders of the posts service: every entity lookup and every per-author page goes
//! through one of these, so a batch of N parents is one SQL statement, not N.
//!
//! The loaders live in the schema data (one per process) without a cache: they batch
//! concurrent loads but never serve stale rows after a mutation.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::post;
use portico_kit::input::plausible_id;
pub use portico_kit::sql::PageKey;
use portico_kit::sql::{Order, PageQuery, load_pages};

/// Posts by id.
pub struct PostLoader {
    pub db: DatabaseConnection,
}

impl Loader<String> for PostLoader {
    type Value = post::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, post::Model>, Self::Error> {
        let rows = post::Entity::find()
            .filter(post::Column::Id.is_in(keys.iter().filter(|k| plausible_id(k)).cloned()))
            .all(&self.db)
            .await
            .map_err(portico_kit::errors::internal)?;
        Ok(rows.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}

/// Pages of an author's posts, newest first (`User.posts`).
pub struct AuthorPostsLoader {
    pub db: DatabaseConnection,
}

const POSTS_PAGE: PageQuery<'static> = PageQuery {
    table: "posts",
    columns: "id, author_id, caption, image_url, created_at",
    parent_column: "author_id",
    tie_column: "id",
    order: Order::NewestFirst,
};

impl Loader<PageKey> for AuthorPostsLoader {
    type Value = Vec<post::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PageKey],
    ) -> Result<HashMap<PageKey, Vec<post::Model>>, Self::Error> {
        load_pages::<post::Entity>(&self.db, &POSTS_PAGE, keys, plausible_id, |r| &r.author_id)
            .await
    }
}
