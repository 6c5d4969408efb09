//! Database connections: SQLite (file or memory) by default, PostgreSQL by URL.
//!
//! SQLite runs in WAL mode with a busy timeout and a pool of **one** connection: SQLite
//! has a single writer anyway, and one connection makes concurrent writers queue in the
//! pool instead of failing with `SQLITE_BUSY` when a read transaction upgrades to a write.
//! Consequence for callers: inside a transaction, use the transaction, never `db` (it would
//! wait for the connection the transaction holds).
//!
//! Every connection made by [`connect`] counts its statements; tests read the counter with
//! [`statement_counter`] to prove batching. Statements on the kit's own event tables
//! (`outbox`, `processed_events`) are not counted, so a background relay does not make
//! counts flaky, nor are `execute_unprepared` calls (sea-orm does not report them).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseBackend, DatabaseConnection};

use crate::KitError;

/// Pool size for PostgreSQL connections made by [`connect`].
pub const POSTGRES_POOL_SIZE: u32 = 10;

/// Longest a query waits for a PostgreSQL connection. While the server is away the pool
/// keeps trying to connect until then, so this is how long a request takes to fail with
/// the database down (measured with 30 s: every request hung 30 s).
pub const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to `url`:
/// - `sqlite://./data/users.db?mode=rwc` (creates the parent directories),
/// - `sqlite::memory:`,
/// - `postgres://user:pass@host:5432/db`.
pub async fn connect(url: &str) -> Result<DatabaseConnection, KitError> {
    connect_with_pool_size(url, POSTGRES_POOL_SIZE).await
}

/// As [`connect`], with an explicit PostgreSQL pool size (SQLite always uses one).
pub async fn connect_with_pool_size(
    url: &str,
    pg_pool_size: u32,
) -> Result<DatabaseConnection, KitError> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        if let Some(path) = sqlite_file_path(url)
            && let Some(parent) = Path::new(&path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        opts.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .create_if_missing(true)
            });
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        opts.max_connections(pg_pool_size)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT);
    } else {
        return Err(KitError::Config(format!(
            "unsupported database url `{url}` (expected sqlite:… or postgres://…)"
        )));
    }
    let mut db = Database::connect(opts).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    db.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        if !sql.contains("\"outbox\"") && !sql.contains("\"processed_events\"") {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    if let Some(key) = pool_key(&db) {
        counters()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, counter);
    }
    Ok(db)
}

/// The number of SQL statements run on `db` (and its clones and transactions) so far.
/// Connections not made by [`connect`] get a counter that stays at zero.
pub fn statement_counter(db: &DatabaseConnection) -> Arc<AtomicU64> {
    pool_key(db)
        .and_then(|k| {
            counters()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&k)
                .cloned()
        })
        .unwrap_or_default()
}

fn counters() -> &'static Mutex<HashMap<usize, Arc<AtomicU64>>> {
    static COUNTERS: OnceLock<Mutex<HashMap<usize, Arc<AtomicU64>>>> = OnceLock::new();
    COUNTERS.get_or_init(Default::default)
}

/// A stable identity of the pool behind `db`, shared by all its clones: the address of the
/// pool's connect options, which live inside the pool's shared state.
fn pool_key(db: &DatabaseConnection) -> Option<usize> {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => {
            Some(Arc::as_ptr(&db.get_sqlite_connection_pool().connect_options()) as usize)
        }
        DatabaseBackend::Postgres => {
            Some(Arc::as_ptr(&db.get_postgres_connection_pool().connect_options()) as usize)
        }
        _ => None,
    }
}

/// The file path of a SQLite URL, `None` for in-memory databases.
fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return None;
    }
    Some(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file_path("sqlite://./data/users.db?mode=rwc").as_deref(),
            Some("./data/users.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(
            sqlite_file_path("sqlite:/tmp/x.db").as_deref(),
            Some("/tmp/x.db")
        );
    }
}
