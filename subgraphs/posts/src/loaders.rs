//! DataLoaders of the posts service: every entity lookup and every per-author page goes
//! through one of these, so a batch of N parents is one SQL statement, not N.
//!
//! The loaders live in the schema data (one per process) without a cache: they batch
//! concurrent loads but never serve stale rows after a mutation.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::post;
use crate::input::plausible_id;
use portico_kit::sql::{Keyset, Order, PageQuery, PageShape};

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

/// One page of a parent's list: `limit` rows after the keyset cursor `after`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub parent: String,
    pub limit: u64,
    pub after: Option<Keyset>,
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
        // Keys asking for the same page shape share one statement.
        let mut groups: HashMap<PageShape, Vec<String>> = HashMap::new();
        for key in keys {
            groups
                .entry((key.limit, key.after.clone()))
                .or_default()
                .push(key.parent.clone());
        }
        // Parents that cannot exist get an empty page without touching SQL.
        let mut out = HashMap::new();
        for key in keys.iter().filter(|k| !plausible_id(&k.parent)) {
            out.insert(key.clone(), Vec::new());
        }
        for parents in groups.values_mut() {
            parents.retain(|p| plausible_id(p));
        }
        let backend = self.db.get_database_backend();
        for ((limit, after), parents) in groups {
            if parents.is_empty() {
                continue;
            }
            let stmt = POSTS_PAGE.statement(backend, &parents, after.as_ref(), None, limit);
            let rows = post::Entity::find()
                .from_raw_sql(stmt)
                .all(&self.db)
                .await
                .map_err(portico_kit::errors::internal)?;
            let mut by_parent: HashMap<String, Vec<post::Model>> = HashMap::new();
            for row in rows {
                by_parent
                    .entry(row.author_id.clone())
                    .or_default()
                    .push(row);
            }
            for parent in parents {
                let rows = by_parent.remove(&parent).unwrap_or_default();
                out.insert(
                    PageKey {
                        parent,
                        limit,
                        after: after.clone(),
                    },
                    rows,
                );
            }
        }
        Ok(out)
    }
}
