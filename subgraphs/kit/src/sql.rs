//! Small SQL helpers shared by the loaders: backend-specific placeholders and a
//! "first N rows per parent" query built on `ROW_NUMBER()` (SQLite ≥ 3.25 and PostgreSQL),
//! so a whole DataLoader batch of per-parent pages is one statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbBackend, EntityTrait, Statement, Value};

/// A keyset position: `(created_at, tie-breaking id)`.
pub type Keyset = (DateTime<Utc>, String);

/// The shape of a page request shared by several parents: `(limit, after)`.
pub type PageShape = (u64, Option<Keyset>);

/// One page of a parent's list: `limit` rows after the keyset cursor `after`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub parent: String,
    pub limit: u64,
    pub after: Option<Keyset>,
}

/// Numbered placeholders for PostgreSQL (`$1`, `$2`, …), `?` for SQLite.
pub struct Params {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Params {
    pub fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            values: Vec::new(),
        }
    }

    /// Bind `value` and return its placeholder.
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_string(),
        }
    }

    /// Bind every value and return `p1, p2, …` for an `IN (…)` list.
    pub fn bind_list<I, V>(&mut self, values: I) -> String
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        values
            .into_iter()
            .map(|v| self.bind(v))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// Sort direction of a keyset page on `(created_at, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

impl Order {
    fn dir(self) -> &'static str {
        match self {
            Order::NewestFirst => "DESC",
            Order::OldestFirst => "ASC",
        }
    }

    fn cmp(self) -> &'static str {
        match self {
            Order::NewestFirst => "<",
            Order::OldestFirst => ">",
        }
    }
}

/// The description of one windowed page query.
pub struct PageQuery<'a> {
    pub table: &'a str,
    pub columns: &'a str,
    pub parent_column: &'a str,
    pub tie_column: &'a str,
    pub order: Order,
}

impl PageQuery<'_> {
    /// Up to `limit` rows per parent in `parents`, after the keyset `after`, in `order`.
    pub fn statement(
        &self,
        backend: DbBackend,
        parents: &[String],
        after: Option<&(DateTime<Utc>, String)>,
        extra_where: Option<&str>,
        limit: u64,
    ) -> Statement {
        let PageQuery {
            table,
            columns,
            parent_column,
            tie_column,
            order,
        } = self;
        let dir = order.dir();
        let mut p = Params::new(backend);
        let list = p.bind_list(parents.iter().cloned());
        let mut filter = format!("{parent_column} IN ({list})");
        if let Some(extra) = extra_where {
            filter.push_str(" AND ");
            filter.push_str(extra);
        }
        if let Some((ts, tie)) = after {
            let cmp = order.cmp();
            let a = p.bind(*ts);
            let b = p.bind(*ts);
            let c = p.bind(tie.clone());
            filter.push_str(&format!(
                " AND (created_at {cmp} {a} OR (created_at = {b} AND {tie_column} {cmp} {c}))"
            ));
        }
        let lim = p.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY \
             {parent_column} ORDER BY created_at {dir}, {tie_column} {dir}) AS rn__ FROM {table} \
             WHERE {filter}) t WHERE rn__ <= {lim} ORDER BY {parent_column}, created_at {dir}, \
             {tie_column} {dir}"
        );
        p.statement(sql)
    }
}

/// The body of a per-parent page DataLoader: one `query` statement per distinct page shape
/// in `keys`, rows of entity `E` grouped by `parent_of`. Parents that are not `plausible`
/// ids get an empty page without touching SQL.
pub async fn load_pages<E: EntityTrait>(
    db: &DatabaseConnection,
    query: &PageQuery<'_>,
    keys: &[PageKey],
    plausible: impl Fn(&str) -> bool,
    parent_of: impl Fn(&E::Model) -> &str,
) -> async_graphql::Result<HashMap<PageKey, Vec<E::Model>>> {
    // Keys asking for the same page shape share one statement.
    let mut groups: HashMap<PageShape, Vec<String>> = HashMap::new();
    for key in keys {
        groups
            .entry((key.limit, key.after.clone()))
            .or_default()
            .push(key.parent.clone());
    }
    let mut out = HashMap::new();
    for key in keys.iter().filter(|k| !plausible(&k.parent)) {
        out.insert(key.clone(), Vec::new());
    }
    for parents in groups.values_mut() {
        parents.retain(|p| plausible(p));
    }
    let backend = db.get_database_backend();
    for ((limit, after), parents) in groups {
        if parents.is_empty() {
            continue;
        }
        let stmt = query.statement(backend, &parents, after.as_ref(), None, limit);
        let rows = E::find()
            .from_raw_sql(stmt)
            .all(db)
            .await
            .map_err(crate::errors::internal)?;
        let mut by_parent: HashMap<String, Vec<E::Model>> = HashMap::new();
        for row in rows {
            by_parent
                .entry(parent_of(&row).to_string())
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
