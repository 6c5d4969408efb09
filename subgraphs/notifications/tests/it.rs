//! Integration tests of the notifications subgraph: over real HTTP with gateway trust
//! tokens, each scenario on SQLite and on a fresh PostgreSQL database. Events are published
//! on the service's bus exactly as the other services' relays would.
// The harness at the end of this file is shared verbatim by the platform subgraphs' suites;
// not every suite uses every helper.
#![allow(dead_code, unused_imports)]

use portico_kit::events::{
    COMMENT_DELETED, POST_COMMENTED, POST_CREATED, POST_DELETED, POST_LIKED, POST_UNLIKED,
    USER_FOLLOWED, USER_UNFOLLOWED,
};
use portico_notifications as sut;

const LIST: &str = "query($reps: [_Any!]!, $first: Int, $after: String, $unread: Boolean) { _entities(representations: $reps) { ... on User { id unreadNotificationCount notifications(first: $first, after: $after, unreadOnly: $unread) { edges { cursor node { id kind read createdAt actor { id } post { id } } } nodes { id } pageInfo { hasNextPage hasPreviousPage endCursor } } } } }";
const MARK: &str = "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }";

fn reps(user: &str) -> Value {
    json!([{ "__typename": "User", "id": user }])
}

fn count_for(user: &str) -> String {
    format!("SELECT COUNT(*) AS n FROM notifications WHERE recipient_id = '{user}'")
}

/// The notifications of `user`, as `user`.
async fn list(svc: &Svc, user: &str) -> Value {
    let d = svc
        .data(
            Some(user),
            LIST,
            json!({ "reps": reps(user), "first": 100 }),
        )
        .await;
    d["_entities"][0].clone()
}

/// Publish `event` and wait until the consumer has handled it and everything before it:
/// a follow of a sentinel user is published after it, and its notification awaited.
async fn deliver(svc: &Svc, events: &[Event]) {
    for e in events {
        svc.publish(e).await;
    }
    let sentinel = new_user();
    svc.publish(&Event::new(
        USER_FOLLOWED,
        json!({ "followerId": new_user(), "followeeId": sentinel }),
    ))
    .await;
    svc.wait_count(&count_for(&sentinel), 1).await;
}

#[test]
fn sdl_file_matches_the_schema() {
    check_sdl_file();
    let sdl = sut::sdl();
    assert!(
        sdl.contains("type Notification @key(fields: \"id\")"),
        "{sdl}"
    );
    assert!(
        sdl.contains("type Post @key(fields: \"id\", resolvable: false)"),
        "{sdl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_trust_token_are_refused() {
    for svc in services().await {
        assert_trust_enforced(&svc, "mutation { markNotificationsRead(ids: []) }").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_notifications_once_and_undo_removes_them() {
    for svc in services().await {
        let (alice, bob, carol) = (new_user(), new_user(), new_user());
        let post = uuid::Uuid::now_v7().to_string();
        let comment = uuid::Uuid::now_v7().to_string();
        let liked = Event::new(POST_LIKED, json!({ "postId": post, "userId": bob }));
        deliver(
            &svc,
            &[
                Event::new(POST_CREATED, json!({ "postId": post, "authorId": alice })),
                liked.clone(),
                // The same event delivered again: skipped by event id.
                liked.clone(),
                // The same fact under a new event id: one notification (natural key).
                Event::new(POST_LIKED, json!({ "postId": post, "userId": bob })),
                // Liking your own post notifies nobody.
                Event::new(POST_LIKED, json!({ "postId": post, "userId": alice })),
                Event::new(
                    POST_COMMENTED,
                    json!({ "postId": post, "commentId": comment, "authorId": carol }),
                ),
                Event::new(
                    USER_FOLLOWED,
                    json!({ "followerId": carol, "followeeId": alice }),
                ),
                Event::new(
                    USER_FOLLOWED,
                    json!({ "followerId": alice, "followeeId": alice }),
                ),
                // Malformed and unknown events are skipped without blocking the stream.
                Event::new(POST_LIKED, json!({ "nope": 1 })),
                Event::new("SOMETHING_ELSE", json!({})),
                // Likes of unknown posts notify nobody.
                Event::new(POST_LIKED, json!({ "postId": "unknown", "userId": bob })),
            ],
        )
        .await;
        assert_eq!(svc.count(&count_for(&alice)).await, 3, "[{}]", svc.backend);

        let me = list(&svc, &alice).await;
        assert_eq!(me["unreadNotificationCount"], 3);
        let nodes: Vec<&Value> = me["notifications"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| &e["node"])
            .collect();
        let kinds: Vec<&str> = nodes
            .iter()
            .map(|n| n["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(
            kinds,
            ["FOLLOW", "COMMENT", "LIKE"],
            "[{}] newest first",
            svc.backend
        );
        assert_eq!(nodes[0]["actor"]["id"], carol.as_str());
        assert!(nodes[0]["post"].is_null());
        assert_eq!(nodes[1]["post"]["id"], post.as_str());
        assert_eq!(nodes[2]["actor"]["id"], bob.as_str());
        assert_eq!(nodes[2]["read"], false);

        // Undo events remove their notification.
        deliver(
            &svc,
            &[
                Event::new(POST_UNLIKED, json!({ "postId": post, "userId": bob })),
                Event::new(
                    USER_UNFOLLOWED,
                    json!({ "followerId": carol, "followeeId": alice }),
                ),
            ],
        )
        .await;
        let me = list(&svc, &alice).await;
        assert_eq!(me["unreadNotificationCount"], 1, "[{}]", svc.backend);
        assert_eq!(
            me["notifications"]["nodes"].as_array().map(Vec::len),
            Some(1)
        );
        deliver(
            &svc,
            &[Event::new(
                COMMENT_DELETED,
                json!({ "postId": post, "commentId": comment, "authorId": carol }),
            )],
        )
        .await;
        assert_eq!(svc.count(&count_for(&alice)).await, 0);

        // Liking again after an unlike notifies again; deleting the post removes it.
        deliver(
            &svc,
            &[Event::new(
                POST_LIKED,
                json!({ "postId": post, "userId": carol }),
            )],
        )
        .await;
        assert_eq!(svc.count(&count_for(&alice)).await, 1);
        deliver(
            &svc,
            &[Event::new(
                POST_DELETED,
                json!({ "postId": post, "authorId": alice }),
            )],
        )
        .await;
        assert_eq!(svc.count(&count_for(&alice)).await, 0, "[{}]", svc.backend);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_recipient_reads_and_marks_notifications() {
    for svc in services().await {
        let (alice, bob) = (new_user(), new_user());
        let followers: Vec<String> = (0..15).map(|_| new_user()).collect();
        let events: Vec<Event> = followers
            .iter()
            .map(|f| {
                Event::new(
                    USER_FOLLOWED,
                    json!({ "followerId": f, "followeeId": alice }),
                )
            })
            .collect();
        deliver(&svc, &events).await;

        let vars = json!({ "reps": reps(&alice), "first": 10 });
        svc.error_code(Some(&bob), LIST, vars.clone(), "FORBIDDEN")
            .await;
        svc.error_code(None, LIST, vars.clone(), "UNAUTHENTICATED")
            .await;
        let q = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { unreadNotificationCount } } }";
        svc.error_code(Some(&bob), q, json!({ "reps": reps(&alice) }), "FORBIDDEN")
            .await;

        // Pages of 10 then 5, newest first, nothing lost or repeated.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let d = svc
                .data(
                    Some(&alice),
                    LIST,
                    json!({ "reps": reps(&alice), "first": 10, "after": after }),
                )
                .await;
            let conn = &d["_entities"][0]["notifications"];
            for e in conn["edges"].as_array().expect("edges") {
                seen.push(
                    e["node"]["actor"]["id"]
                        .as_str()
                        .expect("actor")
                        .to_string(),
                );
            }
            if conn["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        let mut expected = followers.clone();
        expected.reverse();
        assert_eq!(seen, expected, "[{}]", svc.backend);

        for (first, after) in [
            (json!(0), json!(null)),
            (json!(101), json!(null)),
            (json!(5), json!("bad cursor")),
        ] {
            let vars = json!({ "reps": reps(&alice), "first": first, "after": after });
            svc.error_code(Some(&alice), LIST, vars, "BAD_USER_INPUT")
                .await;
        }

        // Mark three read: bob cannot mark alice's, unknown ids are ignored.
        let me = list(&svc, &alice).await;
        let ids: Vec<Value> = me["notifications"]["nodes"].as_array().expect("nodes")[..3]
            .iter()
            .map(|n| n["id"].clone())
            .collect();
        svc.error_code(None, MARK, json!({ "ids": ids }), "UNAUTHENTICATED")
            .await;
        let d = svc.data(Some(&bob), MARK, json!({ "ids": ids })).await;
        assert_eq!(d["markNotificationsRead"], 0);
        let mut with_unknown = ids.clone();
        with_unknown.push(json!("no-such-notification"));
        with_unknown.push(json!("nul\u{0}"));
        let d = svc
            .data(Some(&alice), MARK, json!({ "ids": with_unknown }))
            .await;
        assert_eq!(d["markNotificationsRead"], 3, "[{}]", svc.backend);
        let d = svc.data(Some(&alice), MARK, json!({ "ids": ids })).await;
        assert_eq!(d["markNotificationsRead"], 0, "already read");
        let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        svc.error_code(
            Some(&alice),
            MARK,
            json!({ "ids": too_many }),
            "BAD_USER_INPUT",
        )
        .await;

        let d = svc
            .data(
                Some(&alice),
                LIST,
                json!({ "reps": reps(&alice), "first": 100, "unread": true }),
            )
            .await;
        let me = &d["_entities"][0];
        assert_eq!(me["unreadNotificationCount"], 12);
        assert_eq!(
            me["notifications"]["nodes"].as_array().map(Vec::len),
            Some(12)
        );

        // Notification entities resolve for their recipient only, in one statement.
        let reps_n: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "__typename": "Notification", "id": id }))
            .collect();
        let q = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Notification { id read kind } } }";
        svc.quiesce().await;
        let before = svc.statements();
        let d = svc.data(Some(&alice), q, json!({ "reps": reps_n })).await;
        assert!(svc.statements() - before <= bounded(1));
        assert_eq!(d["_entities"][0]["read"], true);
        let d = svc.gql(Some(&bob), q, json!({ "reps": reps_n })).await;
        assert!(d["data"]["_entities"][0].is_null(), "{d}");
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
