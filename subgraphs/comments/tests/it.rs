//! Integration tests of the comments subgraph: over real HTTP with gateway trust tokens,
//! each scenario on SQLite and on a fresh PostgreSQL database.
// The harness at the end of this file is shared verbatim by the platform subgraphs' suites;
// not every suite uses every helper.
#![allow(dead_code, unused_imports)]

use portico_comments as sut;

const ADD: &str = "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) { id body createdAt author { id } post { id } } }";
const DEL: &str = "mutation($id: ID!) { deleteComment(id: $id) }";
const POSTS: &str = "query($reps: [_Any!]!, $first: Int, $after: String) { _entities(representations: $reps) { ... on Post { id commentCount comments(first: $first, after: $after) { edges { cursor node { id body author { id } } } nodes { id } pageInfo { hasNextPage hasPreviousPage endCursor } } } } }";

/// Announce a post as the posts service would, and wait until the projection has it.
async fn known_post(svc: &Svc, author: &str) -> String {
    let post = uuid::Uuid::now_v7().to_string();
    let event = Event::new(
        portico_kit::events::POST_CREATED,
        json!({ "postId": post, "authorId": author }),
    );
    svc.publish(&event).await;
    svc.wait_count(
        &format!("SELECT COUNT(*) AS n FROM known_posts WHERE post_id = '{post}'"),
        1,
    )
    .await;
    post
}

async fn add(svc: &Svc, user: &str, post: &str, body: &str) -> String {
    let d = svc
        .data(Some(user), ADD, json!({ "p": post, "b": body }))
        .await;
    d["addComment"]["id"]
        .as_str()
        .expect("comment id")
        .to_string()
}

#[test]
fn sdl_file_matches_the_schema() {
    check_sdl_file();
    let sdl = sut::sdl();
    assert!(sdl.contains("type Comment @key(fields: \"id\")"), "{sdl}");
    assert!(
        sdl.contains("type User @key(fields: \"id\", resolvable: false)"),
        "{sdl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_trust_token_are_refused() {
    for svc in services().await {
        assert_trust_enforced(&svc, "{ comment(id: \"x\") { id } }").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_delete_comments() {
    for svc in services().await {
        let (alice, bob) = (new_user(), new_user());
        let post = known_post(&svc, &alice).await;

        svc.error_code(
            None,
            ADD,
            json!({ "p": post, "b": "hi" }),
            "UNAUTHENTICATED",
        )
        .await;
        for body in [
            String::new(),
            "   \n".to_string(),
            "ü".repeat(2001),
            "a\u{0}b".to_string(),
        ] {
            svc.error_code(
                Some(&bob),
                ADD,
                json!({ "p": post, "b": body }),
                "BAD_USER_INPUT",
            )
            .await;
        }
        for unknown in ["no-such-post", "nul\u{0}"] {
            svc.error_code(
                Some(&bob),
                ADD,
                json!({ "p": unknown, "b": "hi" }),
                "NOT_FOUND",
            )
            .await;
        }

        let d = svc
            .data(Some(&bob), ADD, json!({ "p": post, "b": "ü".repeat(2000) }))
            .await;
        let c = &d["addComment"];
        assert_eq!(c["author"]["id"], bob.as_str());
        assert_eq!(c["post"]["id"], post.as_str());
        let id = c["id"].as_str().expect("id").to_string();

        let q = "query($id: ID!) { comment(id: $id) { id body } }";
        let d = svc.data(None, q, json!({ "id": id })).await;
        assert_eq!(d["comment"]["id"], id.as_str());
        let d = svc.data(None, q, json!({ "id": "nope" })).await;
        assert!(d["comment"].is_null());

        svc.error_code(Some(&alice), DEL, json!({ "id": id }), "FORBIDDEN")
            .await;
        for unknown in ["nope", "nul\u{0}"] {
            svc.error_code(Some(&bob), DEL, json!({ "id": unknown }), "NOT_FOUND")
                .await;
        }
        let d = svc.data(Some(&bob), DEL, json!({ "id": id })).await;
        assert_eq!(d["deleteComment"], true);
        svc.error_code(Some(&bob), DEL, json!({ "id": id }), "NOT_FOUND")
            .await;

        let commented = format!(
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'POST_COMMENTED' AND payload LIKE '%{id}%'"
        );
        let deleted = format!(
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'COMMENT_DELETED' AND payload LIKE '%{id}%'"
        );
        assert_eq!(svc.count(&commented).await, 1, "[{}]", svc.backend);
        assert_eq!(svc.count(&deleted).await, 1, "[{}]", svc.backend);

        // POST_DELETED removes the post from the projection, and its comments with it.
        add(&svc, &bob, &post, "still here").await;
        let event = Event::new(
            portico_kit::events::POST_DELETED,
            json!({ "postId": post, "authorId": alice }),
        );
        svc.publish(&event).await;
        svc.wait_count(
            &format!("SELECT COUNT(*) AS n FROM comments WHERE post_id = '{post}'"),
            0,
        )
        .await;
        svc.error_code(
            Some(&bob),
            ADD,
            json!({ "p": post, "b": "late" }),
            "NOT_FOUND",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_paginated_oldest_first_with_counts() {
    for svc in services().await {
        let author = new_user();
        let post = known_post(&svc, &author).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(add(&svc, &new_user(), &post, &format!("c{i}")).await);
        }
        let reps = json!([{ "__typename": "Post", "id": post }]);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let d = svc
                .data(
                    None,
                    POSTS,
                    json!({ "reps": reps, "first": 2, "after": after }),
                )
                .await;
            let p = &d["_entities"][0];
            if after.is_none() {
                assert_eq!(p["commentCount"], 5);
                assert_eq!(p["comments"]["pageInfo"]["hasPreviousPage"], false);
            }
            for e in p["comments"]["edges"].as_array().expect("edges") {
                seen.push(e["node"]["id"].as_str().expect("id").to_string());
            }
            if p["comments"]["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = p["comments"]["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_string);
        }
        assert_eq!(seen, ids, "[{}] oldest first", svc.backend);

        for (first, after) in [
            (json!(0), json!(null)),
            (json!(101), json!(null)),
            (json!(2), json!("%%%")),
        ] {
            let vars = json!({ "reps": reps, "first": first, "after": after });
            svc.error_code(None, POSTS, vars, "BAD_USER_INPUT").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_of_many_posts_take_a_bounded_number_of_statements() {
    for svc in services().await {
        let author = new_user();
        let mut reps = vec![json!({ "__typename": "Post", "id": "nul\u{0}" })];
        let mut first_post = String::new();
        for i in 0..100 {
            let post = if i < 3 {
                let p = known_post(&svc, &author).await;
                for j in 0..=i {
                    add(&svc, &new_user(), &p, &format!("c{j}")).await;
                }
                p
            } else {
                uuid::Uuid::now_v7().to_string()
            };
            if i == 0 {
                first_post = post.clone();
            }
            reps.push(json!({ "__typename": "Post", "id": post }));
        }
        let q = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Post { id commentCount comments(first: 2) { nodes { id body } } } } }";
        svc.quiesce().await;
        let before = svc.statements();
        let d = svc.data(None, q, json!({ "reps": reps })).await;
        let used = svc.statements() - before;
        let list = d["_entities"].as_array().expect("entities");
        assert_eq!(list.len(), 101);
        assert_eq!(
            list[0]["commentCount"], 0,
            "implausible id: empty, no SQL error"
        );
        let list = &list[1..];
        assert_eq!(list[0]["id"], first_post.as_str());
        assert_eq!(list[0]["commentCount"], 1);
        assert_eq!(list[2]["commentCount"], 3);
        assert_eq!(
            list[2]["comments"]["nodes"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(list[50]["commentCount"], 0);
        assert!(
            used <= bounded(2),
            "[{}] 100 posts took {used} statements",
            svc.backend
        );

        // 100 Comment entities: one statement.
        let rows = svc.data(None, q, json!({ "reps": reps[1..4] })).await;
        let comment_ids: Vec<Value> = rows["_entities"]
            .as_array()
            .expect("entities")
            .iter()
            .flat_map(|p| {
                p["comments"]["nodes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|n| json!({ "__typename": "Comment", "id": n["id"] }))
            .collect();
        let cq = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Comment { id body author { id } post { id } } } }";
        svc.quiesce().await;
        let before = svc.statements();
        let d = svc.data(None, cq, json!({ "reps": comment_ids })).await;
        let used = svc.statements() - before;
        assert!(d["_entities"][0]["body"].is_string());
        assert!(
            used <= bounded(1),
            "[{}] comments took {used} statements",
            svc.backend
        );
    }
}
// ---------------------------------------------------------------------------------------
// Harness (the same in every platform subgraph's tests/it.rs): a service over real HTTP on
// a fresh database, trust headers minted by a test gateway key, and JSON helpers.
// ---------------------------------------------------------------------------------------

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_kit::ServiceContext;
use portico_kit::events::{Bus, Event, InProcessBus};
use portico_kit::testing::{self, TestTrust};
use portico_trust::{Claims, HEADER_TRUST, HEADER_USER_ID, HEADER_USER_SCOPES, TrustSigner};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Statement};
use serde_json::{Value, json};

struct Svc {
    backend: &'static str,
    url: String,
    db: DatabaseConnection,
    trust: TestTrust,
    bus: Arc<InProcessBus>,
    http: reqwest::Client,
}

/// Start the service on every test database (SQLite, and PostgreSQL when reachable).
async fn services() -> Vec<Svc> {
    let mut out = Vec::new();
    for (backend, db) in testing::test_databases().await {
        sut::migrate(&db).await.expect("migrations apply");
        let trust = TestTrust::new();
        let bus = Arc::new(InProcessBus::new());
        let ctx = ServiceContext {
            name: sut::NAME,
            db: db.clone(),
            trust: trust.verifier.clone(),
            bus: bus.clone(),
        };
        let router = sut::app(ctx).await.expect("app starts");
        let addr = testing::spawn(router).await;
        out.push(Svc {
            backend,
            url: format!("http://{addr}/graphql"),
            db,
            trust,
            bus,
            http: reqwest::Client::new(),
        });
    }
    out
}

impl Svc {
    /// POST a GraphQL request with explicit headers; returns HTTP status and JSON body.
    async fn post(&self, headers: Vec<(String, String)>, query: &str, vars: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": vars }));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("json body");
        (status, body)
    }

    /// A request through the "gateway" as `user` (None = anonymous); asserts HTTP 200.
    async fn gql(&self, user: Option<&str>, query: &str, vars: Value) -> Value {
        let headers = testing::headers_for(&self.trust.signer, sut::NAME, user);
        let (status, body) = self.post(headers, query, vars).await;
        assert_eq!(status, 200, "[{}] {body}", self.backend);
        body
    }

    /// As [`gql`], asserting there are no errors; returns `data`.
    async fn data(&self, user: Option<&str>, query: &str, vars: Value) -> Value {
        let body = self.gql(user, query, vars).await;
        assert!(
            body.get("errors").is_none(),
            "[{}] unexpected errors: {body}",
            self.backend
        );
        body["data"].clone()
    }

    /// As [`gql`], asserting the first error has `extensions.code == code`.
    async fn error_code(&self, user: Option<&str>, query: &str, vars: Value, code: &str) {
        let body = self.gql(user, query, vars).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], code,
            "[{}] expected {code}: {body}",
            self.backend
        );
    }

    fn statements(&self) -> u64 {
        portico_kit::db::statement_counter(&self.db).load(Ordering::SeqCst)
    }

    async fn publish(&self, event: &Event) {
        self.bus.publish(event).await.expect("publish");
    }

    /// `SELECT COUNT(*) AS n …` on the service database.
    async fn count(&self, sql: &str) -> i64 {
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
    async fn wait_count(&self, sql: &str, want: i64) {
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
}

impl Svc {
    /// Wait until background event work has settled: every outbox row published and the
    /// service's own consumer (if any) idle, so statement counts measure only the request.
    async fn quiesce(&self) {
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

/// Largest statement count accepted for one batched request using `loaders` DataLoaders:
/// one statement per loader on a calm machine; up to three when a starved test machine
/// splits a batch past the DataLoader window. Still O(1), where N+1 would be 100+.
fn bounded(loaders: u64) -> u64 {
    3 * loaders
}

fn new_user() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every way of calling without a valid trust token is refused with 401 and no data.
async fn assert_trust_enforced(svc: &Svc, query: &str) {
    let user = new_user();
    let forged_signer = TrustSigner::generate();
    let expired = {
        let now = now_secs();
        svc.trust.signer.sign(&Claims {
            aud: sut::NAME.to_string(),
            iat: now - 120,
            exp: now - 60,
            kid: svc.trust.signer.kid().to_string(),
            idh: String::new(),
            sub: Some(user.clone()),
        })
    };
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no token", vec![(HEADER_USER_ID.to_string(), user.clone())]),
        (
            "forged",
            testing::headers_for(&forged_signer, sut::NAME, Some(&user)),
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
            testing::headers_for(&svc.trust.signer, "some-other-subgraph", Some(&user)),
        ),
        (
            "identity swapped",
            testing::headers_for(&svc.trust.signer, sut::NAME, Some(&user))
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
    let ok = testing::headers_for(&svc.trust.signer, sut::NAME, Some(&user));
    let (status, body) = svc.post(ok, query, json!({})).await;
    assert_eq!(status, 200, "[{}] valid token: {body}", svc.backend);
}

/// `supergraph/<name>.graphql` equals `sdl()`; `UPDATE_SDL=1` rewrites the file.
fn check_sdl_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../supergraph")
        .join(format!("{}.graphql", sut::NAME));
    let sdl = sut::sdl();
    if std::env::var("UPDATE_SDL").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &sdl).expect("write SDL file");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "{} differs from sdl(); run with UPDATE_SDL=1 to rewrite it",
        path.display()
    );
}
