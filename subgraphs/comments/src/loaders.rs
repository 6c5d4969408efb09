//! DataLoaders of the comments service: comments by id, per-post comment pages and
//! per-post counts. Each batch is one SQL statement (per distinct page shape for pages).
//! Loaders live in the schema data without a cache: they batch, never serve stale rows.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
};

use crate::entity::comment;
use portico_kit::input::plausible_id;
pub use portico_kit::sql::PageKey;
use portico_kit::sql::{Order, PageQuery, load_pages};

/// Comments by id.
pub struct CommentLoader {
    pub db: DatabaseConnection,
}

impl Loader<String> for CommentLoader {
    type Value = comment::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, comment::Model>, Self::Error> {
        let rows = comment::Entity::find()
            .filter(comment::Column::Id.is_in(keys.iter().filter(|k| plausible_id(k)).cloned()))
            .all(&self.db)
            .await
            .map_err(portico_kit::errors::internal)?;
        Ok(rows.into_iter().map(|c| (c.id.clone(), c)).collect())
    }
}

/// Pages of a post's comments, oldest first (`Post.comments`).
pub struct PostCommentsLoader {
    pub db: DatabaseConnection,
}

const COMMENTS_PAGE: PageQuery<'static> = PageQuery {
    table: "comments",
    columns: "id, post_id, author_id, body, created_at",
    parent_column: "post_id",
    tie_column: "id",
    order: Order::OldestFirst,
};

impl Loader<PageKey> for PostCommentsLoader {
    type Value = Vec<comment::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PageKey],
    ) -> Result<HashMap<PageKey, Vec<comment::Model>>, Self::Error> {
        load_pages::<comment::Entity>(&self.db, &COMMENTS_PAGE, keys, plausible_id, |r| &r.post_id)
            .await
    }
}

/// Number of comments per post (`Post.commentCount`).
pub struct CommentCountLoader {
    pub db: DatabaseConnection,
}

#[derive(FromQueryResult)]
struct CountRow {
    post_id: String,
    n: i64,
}

impl Loader<String> for CommentCountLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, i64>, Self::Error> {
        let rows = comment::Entity::find()
            .select_only()
            .column(comment::Column::PostId)
            .column_as(comment::Column::Id.count(), "n")
            .filter(comment::Column::PostId.is_in(keys.iter().filter(|k| plausible_id(k)).cloned()))
            .group_by(comment::Column::PostId)
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
