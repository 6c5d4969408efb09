//! Test support for every subgraph crate: fresh databases on SQLite **and** PostgreSQL,
//! trust tokens as the gateway would send them, and a real HTTP server.

use std::net::SocketAddr;
use std::time::Duration;

use portico_trust::{
    HEADER_TRUST, HEADER_USER_ID, HEADER_USER_SCOPES, Identity, TrustSigner, TrustVerifier,
};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::db;

/// Base URL of the PostgreSQL server used by tests (override with
/// `PORTICO_TEST_POSTGRES_URL`); a database is created under it per call.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Pool size of test PostgreSQL connections (tests run in parallel; keep the server's
/// connection limit in mind).
const TEST_PG_POOL: u32 = 5;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh SQLite database (a temp file, WAL) and a fresh PostgreSQL database
/// (`CREATE DATABASE portico_test_<uuid>`), both empty (run migrations yourself).
/// PostgreSQL unreachable: panics when `CI=true`, otherwise prints a loud SKIPPED line and
/// returns only SQLite.
pub async fn test_databases() -> Vec<(&'static str, DatabaseConnection)> {
    let mut out = Vec::new();
    let path =
        std::env::temp_dir().join(format!("portico-test-{}.db", uuid::Uuid::new_v4().simple()));
    let sqlite = db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("sqlite test database");
    out.push(("sqlite", sqlite));
    match fresh_postgres().await {
        Ok(pg) => out.push(("postgres", pg)),
        Err(e) => {
            if in_ci() {
                panic!("PostgreSQL is required in CI (CI=true) but unreachable: {e}");
            }
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 SKIPPED postgres tests: {e}\n\
                 (start PostgreSQL on 127.0.0.1:5432 or set PORTICO_TEST_POSTGRES_URL)\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
        }
    }
    out
}

async fn fresh_postgres() -> Result<DatabaseConnection, String> {
    let base = std::env::var("PORTICO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let admin = tokio::time::timeout(
        Duration::from_secs(10),
        db::connect_with_pool_size(&base, 1),
    )
    .await
    .map_err(|_| format!("timed out connecting to {base}"))?
    .map_err(|e| format!("cannot connect to {base}: {e}"))?;
    drop_stale_test_databases(&admin).await;
    let name = format!("portico_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("CREATE DATABASE failed: {e}"))?;
    let _ = admin.close().await;
    let url = replace_database(&base, &name);
    db::connect_with_pool_size(&url, TEST_PG_POOL)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// Test databases older than this are dropped (once per process, best effort) so repeated
/// runs do not fill the disk.
const STALE_AFTER: &str = "1 hour";

async fn drop_stale_test_databases(admin: &DatabaseConnection) {
    static ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if ONCE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let sql = format!(
        "SELECT datname FROM pg_database WHERE datname LIKE 'portico\\_test\\_%' \
         AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '{STALE_AFTER}'"
    );
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            sql,
        ))
        .await
    else {
        return;
    };
    for row in rows {
        if let Ok(name) = row.try_get::<String>("", "datname")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// `postgres://u@h:p/old?x` → `postgres://u@h:p/<name>?x`.
fn replace_database(url: &str, name: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let scheme_end = main.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match main[scheme_end..].find('/') {
        Some(i) => &main[..scheme_end + i],
        None => main,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A gateway-side signer and the matching subgraph-side verifier.
#[derive(Clone, Debug)]
pub struct TestTrust {
    pub signer: TrustSigner,
    pub verifier: TrustVerifier,
}

impl TestTrust {
    pub fn new() -> Self {
        let signer = TrustSigner::generate();
        let verifier = signer.verifier();
        Self { signer, verifier }
    }
}

impl Default for TestTrust {
    fn default() -> Self {
        Self::new()
    }
}

/// The headers the gateway would send to `audience` for `user_id` (scopes `read write`),
/// or for an anonymous caller.
pub fn headers_for(
    signer: &TrustSigner,
    audience: &str,
    user_id: Option<&str>,
) -> Vec<(String, String)> {
    let identity = match user_id {
        Some(id) => Identity::user(id, vec!["read".into(), "write".into()]),
        None => Identity::anonymous(),
    };
    let mut headers = vec![(
        HEADER_TRUST.to_string(),
        signer.mint(audience, &identity, Duration::from_secs(30)),
    )];
    if let Some(id) = &identity.user_id {
        headers.push((HEADER_USER_ID.to_string(), id.clone()));
        headers.push((HEADER_USER_SCOPES.to_string(), identity.scopes_header()));
    }
    headers
}

/// Serve `router` on `127.0.0.1:0` in a background task; returns the address.
pub async fn spawn(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a test port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("test server stopped: {e}");
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "y"),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h:1", "z"), "postgres://h:1/z");
    }
}
