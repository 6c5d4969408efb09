//! DataLoaders: every entity lookup and per-parent list of the users subgraph is batched
//! into one SQL statement per batch (`IN (...)`, window functions for pages).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Statement, Value,
};

use crate::store::{follow, profile};

/// Loader errors are shared between the waiting resolvers.
pub type LoadError = Arc<DbErr>;

/// Profiles by id.
pub struct ProfileLoader(pub DatabaseConnection);

impl Loader<String> for ProfileLoader {
    type Value = profile::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, profile::Model>, LoadError> {
        let rows = profile::Entity::find()
            .filter(profile::Column::Id.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}

async fn counts(
    db: &DatabaseConnection,
    group_col: follow::Column,
    keys: &[String],
) -> Result<HashMap<String, i64>, LoadError> {
    let rows: Vec<(String, i64)> = follow::Entity::find()
        .select_only()
        .column(group_col)
        .column_as(Expr::col(group_col).count(), "n")
        .filter(group_col.is_in(keys.iter().cloned()))
        .group_by(group_col)
        .into_tuple()
        .all(db)
        .await?;
    let mut out: HashMap<String, i64> = keys.iter().map(|k| (k.clone(), 0)).collect();
    out.extend(rows);
    Ok(out)
}

/// Number of followers by user id.
pub struct FollowerCountLoader(pub DatabaseConnection);

impl Loader<String> for FollowerCountLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, i64>, LoadError> {
        counts(&self.0, follow::Column::FolloweeId, keys).await
    }
}

/// Number of followed users by user id.
pub struct FollowingCountLoader(pub DatabaseConnection);

impl Loader<String> for FollowingCountLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, i64>, LoadError> {
        counts(&self.0, follow::Column::FollowerId, keys).await
    }
}

/// Ids of every user a user follows (for posts' `feed @requires(fields: "followingIds")`).
pub struct FollowingIdsLoader(pub DatabaseConnection);

impl Loader<String> for FollowingIdsLoader {
    type Value = Vec<String>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Vec<String>>, LoadError> {
        let rows: Vec<(String, String)> = follow::Entity::find()
            .select_only()
            .column(follow::Column::FollowerId)
            .column(follow::Column::FolloweeId)
            .filter(follow::Column::FollowerId.is_in(keys.iter().cloned()))
            .into_tuple()
            .all(&self.0)
            .await?;
        let mut out: HashMap<String, Vec<String>> =
            keys.iter().map(|k| (k.clone(), Vec::new())).collect();
        for (follower, followee) in rows {
            out.entry(follower).or_default().push(followee);
        }
        Ok(out)
    }
}

/// Which side of the follow graph a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Users following the parent.
    Followers,
    /// Users the parent follows.
    Following,
}

impl Direction {
    /// (parent column, listed column)
    fn columns(self) -> (&'static str, &'static str) {
        match self {
            Direction::Followers => ("followee_id", "follower_id"),
            Direction::Following => ("follower_id", "followee_id"),
        }
    }
}

/// One page of a user's followers or followings, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub user_id: String,
    pub direction: Direction,
    /// Page size.
    pub first: u64,
    /// Keyset cursor: strictly older than `(created_at, user id)`.
    pub after: Option<(DateTime<Utc>, String)>,
}

/// A page: `(listed user id, followed at)` newest first, and whether more follow.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub edges: Vec<(String, DateTime<Utc>)>,
    pub has_next: bool,
}

/// Pages of followers/followings. Keys sharing direction, size and cursor (the usual case:
/// the same field on many users) are answered by one statement using
/// `ROW_NUMBER() OVER (PARTITION BY parent ...)`.
pub struct FollowPageLoader(pub DatabaseConnection);

type PageGroup = (Direction, u64, Option<(DateTime<Utc>, String)>);

impl Loader<PageKey> for FollowPageLoader {
    type Value = Page;
    type Error = LoadError;

    async fn load(&self, keys: &[PageKey]) -> Result<HashMap<PageKey, Page>, LoadError> {
        let mut groups: BTreeMap<String, (PageGroup, Vec<String>)> = BTreeMap::new();
        for k in keys {
            let g = (k.direction, k.first, k.after.clone());
            groups
                .entry(format!("{g:?}"))
                .or_insert_with(|| (g, Vec::new()))
                .1
                .push(k.user_id.clone());
        }
        let mut out = HashMap::new();
        for ((direction, first, after), users) in groups.into_values() {
            let pages = load_pages(&self.0, direction, first, after.as_ref(), &users).await?;
            for user in users {
                let page = pages.get(&user).cloned().unwrap_or_default();
                out.insert(
                    PageKey {
                        user_id: user,
                        direction,
                        first,
                        after: after.clone(),
                    },
                    page,
                );
            }
        }
        Ok(out)
    }
}

async fn load_pages(
    db: &DatabaseConnection,
    direction: Direction,
    first: u64,
    after: Option<&(DateTime<Utc>, String)>,
    users: &[String],
) -> Result<HashMap<String, Page>, DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::new();
    let mut ph = |v: Value| {
        values.push(v);
        match backend {
            DatabaseBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_string(),
        }
    };
    let (parent, other) = direction.columns();
    let ids: Vec<String> = users.iter().map(|u| ph(u.clone().into())).collect();
    let mut filter = format!("{parent} IN ({})", ids.join(", "));
    if let Some((at, id)) = after {
        let (a1, a2, i) = (ph((*at).into()), ph((*at).into()), ph(id.clone().into()));
        filter.push_str(&format!(
            " AND (created_at < {a1} OR (created_at = {a2} AND {other} < {i}))"
        ));
    }
    let limit = ph(((first + 1) as i64).into());
    let sql = format!(
        "SELECT parent_id, other_id, created_at FROM (\
           SELECT {parent} AS parent_id, {other} AS other_id, created_at, \
             ROW_NUMBER() OVER (PARTITION BY {parent} ORDER BY created_at DESC, {other} DESC) AS rn \
           FROM follows WHERE {filter}\
         ) t WHERE rn <= {limit} ORDER BY parent_id, rn"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut pages: HashMap<String, Page> = HashMap::new();
    for row in rows {
        let parent_id: String = row.try_get("", "parent_id")?;
        let other_id: String = row.try_get("", "other_id")?;
        let created_at: DateTime<Utc> = row.try_get("", "created_at")?;
        let page = pages.entry(parent_id).or_default();
        if page.edges.len() as u64 == first {
            page.has_next = true;
        } else {
            page.edges.push((other_id, created_at));
        }
    }
    Ok(pages)
}
