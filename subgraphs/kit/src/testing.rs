//! Test support for every subgraph crate: fresh databases on SQLite **and** PostgreSQL,
//! trust tokens as the gateway would send them, a real HTTP server, and the harness the
//! platform subgraphs' `tests/it.rs` share ([`services`], [`TestService`],
//! [`assert_trust_enforced`], [`check_sdl_file`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use portico_trust::{
    Claims, HEADER_TRUST, HEADER_USER_ID, HEADER_USER_SCOPES, Identity, TrustSigner, TrustVerifier,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, Statement};
use serde_json::{Value, json};

use crate::events::{Bus, Event, InProcessBus};
use crate::{KitError, ServiceContext, db};

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

/// The body [`TestService::post`] sends for `query` and `vars` (the trust token binds it).
pub fn request_body(query: &str, vars: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "query": query, "variables": vars })).unwrap_or_default()
}

/// The headers the gateway would send to `audience` for `user_id` (scopes `read write`),
/// or for an anonymous caller, with a trust token for the request body `body`.
pub fn headers_for(
    signer: &TrustSigner,
    audience: &str,
    user_id: Option<&str>,
    body: &[u8],
) -> Vec<(String, String)> {
    let identity = match user_id {
        Some(id) => Identity::user(id, vec!["read".into(), "write".into()]),
        None => Identity::anonymous(),
    };
    let mut headers = vec![(
        HEADER_TRUST.to_string(),
        signer.mint(audience, &identity, body, Duration::from_secs(30)),
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

/// Largest statement count accepted for one batched request using `loaders` DataLoaders:
/// one statement per loader on a calm machine; up to three when a starved test machine
/// splits a batch past the DataLoader window. Still O(1), where N+1 would be 100+.
pub fn bounded(loaders: u64) -> u64 {
    3 * loaders
}

/// A fresh user id (UUIDv7), as the auth service would assign.
pub fn new_user() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs a subgraph's migrations on a test database (`|db| Box::pin(sut::migrate(db))`).
pub type MigrateFn = for<'a> fn(&'a DatabaseConnection) -> BoxFuture<'a, Result<(), DbErr>>;

/// A subgraph under test: a service over real HTTP on a fresh database, trust headers
/// minted by a test gateway key, and JSON helpers.
pub struct TestService {
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    /// The service name (trust-token audience).
    pub name: &'static str,
    /// `http://127.0.0.1:<port>/graphql`.
    pub url: String,
    /// The service's database.
    pub db: DatabaseConnection,
    /// The test gateway's signer and the service's verifier.
    pub trust: TestTrust,
    /// The service's event bus.
    pub bus: Arc<InProcessBus>,
    /// HTTP client for the requests.
    pub http: reqwest::Client,
}

/// Start the service `name` on every test database (SQLite, and PostgreSQL when
/// reachable): `migrate` each database, then serve `app` on it.
pub async fn services<A, F>(name: &'static str, migrate: MigrateFn, app: A) -> Vec<TestService>
where
    A: Fn(ServiceContext) -> F,
    F: Future<Output = Result<axum::Router, KitError>>,
{
    // Statement-counting tests must not depend on the machine's load (see
    // `set_data_loader_delay`); 50 ms per hop is nothing next to a test's runtime.
    crate::set_data_loader_delay(std::time::Duration::from_millis(50));
    let mut out = Vec::new();
    for (backend, db) in test_databases().await {
        migrate(&db).await.expect("migrations apply");
        let trust = TestTrust::new();
        let bus = Arc::new(InProcessBus::new());
        let ctx = ServiceContext {
            name,
            db: db.clone(),
            trust: trust.verifier.clone(),
            bus: bus.clone(),
            redis_url: None,
        };
        let router = app(ctx).await.expect("app starts");
        let addr = spawn(router).await;
        out.push(TestService {
            backend,
            name,
            url: format!("http://{addr}/graphql"),
            db,
            trust,
            bus,
            http: reqwest::Client::new(),
        });
    }
    out
}

impl TestService {
    /// POST a GraphQL request with explicit headers; returns HTTP status and JSON body.
    pub async fn post(
        &self,
        headers: Vec<(String, String)>,
        query: &str,
        vars: Value,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(request_body(query, &vars));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("json body");
        (status, body)
    }

    /// A request through the "gateway" as `user` (None = anonymous); asserts HTTP 200.
    pub async fn gql(&self, user: Option<&str>, query: &str, vars: Value) -> Value {
        let headers = headers_for(
            &self.trust.signer,
            self.name,
            user,
            &request_body(query, &vars),
        );
        let (status, body) = self.post(headers, query, vars).await;
        assert_eq!(status, 200, "[{}] {body}", self.backend);
        body
    }

    /// As [`Self::gql`], asserting there are no errors; returns `data`.
    pub async fn data(&self, user: Option<&str>, query: &str, vars: Value) -> Value {
        let body = self.gql(user, query, vars).await;
        assert!(
            body.get("errors").is_none(),
            "[{}] unexpected errors: {body}",
            self.backend
        );
        body["data"].clone()
    }

    /// As [`Self::gql`], asserting the first error has `extensions.code == code`.
    pub async fn error_code(&self, user: Option<&str>, query: &str, vars: Value, code: &str) {
        let body = self.gql(user, query, vars).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], code,
            "[{}] expected {code}: {body}",
            self.backend
        );
    }

    /// Statements run on the service database so far (see [`db::statement_counter`]).
    pub fn statements(&self) -> u64 {
        db::statement_counter(&self.db).load(Ordering::SeqCst)
    }

    /// Publish `event` on the service's bus, as another service's relay would.
    pub async fn publish(&self, event: &Event) {
        self.bus.publish(event).await.expect("publish");
    }

    /// `SELECT COUNT(*) AS n …` on the service database.
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(FromQueryResult)]
        struct N {
            n: i64,
        }
        let backend = self.db.get_database_backend();
        N::find_by_statement(Statement::from_string(backend, sql.to_string()))
            .one(&self.db)
            .await
            .expect("count query")
            .map(|r| r.n)
            .unwrap_or(0)
    }

    /// Wait until `sql` (a COUNT query) returns `want`.
    pub async fn wait_count(&self, sql: &str, want: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let n = self.count(sql).await;
            if n == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{}] `{sql}` stayed {n}, expected {want}",
                self.backend
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until background event work has settled: every outbox row published and the
    /// service's own consumer (if any) idle, so statement counts measure only the request.
    pub async fn quiesce(&self) {
        self.wait_count(
            "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
            0,
        )
        .await;
        let mut last = -1;
        loop {
            let n = self
                .count("SELECT COUNT(*) AS n FROM processed_events")
                .await;
            if n == last {
                return;
            }
            last = n;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every way of calling without a valid trust token is refused with 401 and no data.
pub async fn assert_trust_enforced(svc: &TestService, query: &str) {
    let user = new_user();
    let sent = request_body(query, &json!({}));
    let forged_signer = TrustSigner::generate();
    let expired = {
        let now = now_secs();
        svc.trust.signer.sign(&Claims {
            aud: svc.name.to_string(),
            iat: now - 120,
            exp: now - 60,
            kid: svc.trust.signer.kid().to_string(),
            idh: String::new(),
            sub: Some(user.clone()),
            bh: portico_trust::body_hash(&sent),
            jti: "expired".into(),
        })
    };
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no token", vec![(HEADER_USER_ID.to_string(), user.clone())]),
        (
            "forged",
            headers_for(&forged_signer, svc.name, Some(&user), &sent),
        ),
        (
            "expired",
            vec![
                (HEADER_TRUST.to_string(), expired),
                (HEADER_USER_ID.to_string(), user.clone()),
                (HEADER_USER_SCOPES.to_string(), "read write".to_string()),
            ],
        ),
        (
            "other audience",
            headers_for(&svc.trust.signer, "some-other-subgraph", Some(&user), &sent),
        ),
        (
            "identity swapped",
            headers_for(&svc.trust.signer, svc.name, Some(&user), &sent)
                .into_iter()
                .map(|(k, v)| {
                    if k == HEADER_USER_ID {
                        (k, new_user())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
        ),
    ];
    for (what, headers) in cases {
        let (status, body) = svc.post(headers, query, json!({})).await;
        assert_eq!(status, 401, "[{}] {what}: {body}", svc.backend);
        assert!(
            body.get("data").is_none(),
            "[{}] {what}: {body}",
            svc.backend
        );
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "[{}] {what}: {body}",
            svc.backend
        );
    }
    // A valid token for another body (a captured token reused for another operation).
    let other_body = headers_for(
        &svc.trust.signer,
        svc.name,
        Some(&user),
        &request_body("{ __typename }", &json!({})),
    );
    let (status, body) = svc.post(other_body, query, json!({})).await;
    assert_eq!(
        status, 401,
        "[{}] token for another body: {body}",
        svc.backend
    );
    let ok = headers_for(&svc.trust.signer, svc.name, Some(&user), &sent);
    let (status, body) = svc.post(ok.clone(), query, json!({})).await;
    assert_eq!(status, 200, "[{}] valid token: {body}", svc.backend);
    // The same request again (a replay): refused.
    let (status, body) = svc.post(ok, query, json!({})).await;
    assert_eq!(status, 401, "[{}] replayed token: {body}", svc.backend);
    assert_eq!(
        body["errors"][0]["message"], "trust token was already used",
        "[{}] {body}",
        svc.backend
    );
}

/// `<manifest_dir>/../../supergraph/<name>.graphql` equals `sdl`; `UPDATE_SDL=1` rewrites
/// the file. Call with `env!("CARGO_MANIFEST_DIR")` of the subgraph crate.
pub fn check_sdl_file(manifest_dir: &str, name: &str, sdl: &str) {
    let path = std::path::Path::new(manifest_dir)
        .join("../../supergraph")
        .join(format!("{name}.graphql"));
    if std::env::var("UPDATE_SDL").is_ok_and(|v| v == "1") {
        std::fs::write(&path, sdl).expect("write SDL file");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "{} differs from sdl(); run `cargo run -- generate` (or this test with UPDATE_SDL=1) to rewrite it",
        path.display()
    );
}

/// A free TCP port on 127.0.0.1 (bound and released; free unless taken meanwhile).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// For a test that cannot have `what` (a program or a service it needs): panics when
/// `CI=true` (CI has everything), otherwise prints a loud SKIPPED line naming `test`, so a
/// newcomer's laptop still passes.
pub fn skip_unless_ci(test: &str, what: &str) {
    if in_ci() {
        panic!("{test}: {what} is required in CI");
    }
    eprintln!("\n!!!!!!!!!!!!!!!!\nSKIPPED {test}: no {what}\n!!!!!!!!!!!!!!!!\n");
}

/// A private `redis-server` (no persistence) on `port`, killed on drop, for tests that
/// take Redis away and bring it back; `None` when the binary is missing (CI has it:
/// `scripts/services.sh` starts the shared Redis with it).
pub struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    pub fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { child, port })
    }

    /// [`start`](Self::start), or [`skip_unless_ci`] for `test` when there is no
    /// `redis-server`.
    pub fn start_or_skip(port: u16, test: &str) -> Option<Self> {
        let started = Self::start(port);
        if started.is_none() {
            skip_unless_ci(test, "redis-server");
        }
        started
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits (up to 5 s) until the server accepts connections.
    pub async fn wait_ready(&self) -> bool {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
