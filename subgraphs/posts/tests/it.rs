//! Integration tests of the posts subgraph: over real HTTP with gateway trust tokens, each
//! scenario on SQLite and on a fresh PostgreSQL database.
// The harness (`portico_kit::testing`) is shared by the platform subgraphs' suites.

use portico_posts as sut;
use sea_orm::{ActiveModelTrait, Set};

const CREATE: &str = "mutation($c: String!, $i: String) { createPost(caption: $c, imageUrl: $i) { id caption imageUrl createdAt author { id } } }";

async fn create_post(svc: &Svc, user: &str, caption: &str) -> String {
    let data = svc.data(Some(user), CREATE, json!({ "c": caption })).await;
    data["createPost"]["id"]
        .as_str()
        .expect("post id")
        .to_string()
}

#[test]
fn sdl_file_matches_the_schema() {
    check_sdl_file();
    let sdl = sut::sdl();
    assert!(sdl.contains("@requires(fields: \"followingIds\")"), "{sdl}");
    assert!(sdl.contains("followingIds: [ID!]! @external"), "{sdl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_trust_token_are_refused() {
    for svc in services().await {
        assert_trust_enforced(&svc, "{ post(id: \"x\") { id } }").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_and_delete_posts() {
    for svc in services().await {
        let mut sub = svc.bus.subscribe("test-observer").await.expect("subscribe");
        let alice = new_user();
        let bob = new_user();

        svc.error_code(None, CREATE, json!({ "c": "hi" }), "UNAUTHENTICATED")
            .await;
        let long = "é".repeat(2201);
        svc.error_code(Some(&alice), CREATE, json!({ "c": long }), "BAD_USER_INPUT")
            .await;
        svc.error_code(
            Some(&alice),
            CREATE,
            json!({ "c": "x", "i": "javascript:alert(1)" }),
            "BAD_USER_INPUT",
        )
        .await;

        svc.error_code(
            Some(&alice),
            CREATE,
            json!({ "c": "a\u{0}b" }),
            "BAD_USER_INPUT",
        )
        .await;

        let max = "é".repeat(2200);
        let data = svc
            .data(
                Some(&alice),
                CREATE,
                json!({ "c": max, "i": "https://img.example/1.jpg" }),
            )
            .await;
        let post = &data["createPost"];
        let id = post["id"].as_str().expect("id").to_string();
        assert_eq!(post["author"]["id"], alice.as_str());
        assert_eq!(post["imageUrl"], "https://img.example/1.jpg");

        let q = "query($id: ID!) { post(id: $id) { id caption author { id } } }";
        let data = svc.data(None, q, json!({ "id": id })).await;
        assert_eq!(
            data["post"]["caption"].as_str().map(|s| s.chars().count()),
            Some(2200)
        );
        for unknown in ["nope", "nul\u{0}", &"x".repeat(10_000)] {
            let data = svc.data(None, q, json!({ "id": unknown })).await;
            assert!(data["post"].is_null(), "[{}] {unknown:?}", svc.backend);
        }

        let del = "mutation($id: ID!) { deletePost(id: $id) }";
        svc.error_code(None, del, json!({ "id": id }), "UNAUTHENTICATED")
            .await;
        svc.error_code(Some(&bob), del, json!({ "id": id }), "FORBIDDEN")
            .await;
        for unknown in ["no-such-post", "nul\u{0}"] {
            svc.error_code(Some(&alice), del, json!({ "id": unknown }), "NOT_FOUND")
                .await;
        }
        let data = svc.data(Some(&alice), del, json!({ "id": id })).await;
        assert_eq!(data["deletePost"], true);
        svc.error_code(Some(&alice), del, json!({ "id": id }), "NOT_FOUND")
            .await;
        let data = svc.data(None, q, json!({ "id": id })).await;
        assert!(data["post"].is_null());

        // The outbox relay published both events, with the ids other services need.
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("event within 10s")
                .expect("delivery");
            assert_eq!(d.event.payload["postId"], id.as_str());
            assert_eq!(d.event.payload["authorId"], alice.as_str());
            kinds.push(d.event.kind.clone());
            d.ack().await.expect("ack");
        }
        assert_eq!(kinds, ["POST_CREATED", "POST_DELETED"], "[{}]", svc.backend);
    }
}

const FEED: &str = "query($reps: [_Any!]!, $first: Int, $after: String) {
  _entities(representations: $reps) { ... on User {
    feed(first: $first, after: $after) { edges { cursor node { id author { id } } } nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }
  } } }";

fn ids(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_pages_are_newest_first_and_stable_under_inserts() {
    for svc in services().await {
        let (a, b, c) = (new_user(), new_user(), new_user());
        let mut followed = Vec::new();
        for i in 0..7 {
            let author = if i % 2 == 0 { &a } else { &b };
            followed.push(create_post(&svc, author, &format!("post {i}")).await);
            create_post(&svc, &c, "not followed").await;
        }
        followed.reverse(); // newest first
        let reps = json!([{ "__typename": "User", "id": new_user(), "followingIds": [a, b] }]);

        let page = |after: Option<String>| {
            let vars = json!({ "reps": reps, "first": 3, "after": after });
            let svc = &svc;
            async move { svc.data(Some("viewer"), FEED, vars).await["_entities"][0]["feed"].clone() }
        };
        let p1 = page(None).await;
        assert_eq!(ids(&p1), followed[0..3], "[{}]", svc.backend);
        assert_eq!(p1["pageInfo"]["hasNextPage"], true);
        assert_eq!(p1["pageInfo"]["hasPreviousPage"], false);
        assert_eq!(
            ids(&p1),
            p1["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| n["id"].as_str().expect("id").to_string())
                .collect::<Vec<_>>()
        );

        // New posts by followed users arrive between pages: they must not shift the pages.
        create_post(&svc, &a, "newer 1").await;
        create_post(&svc, &b, "newer 2").await;

        let p2 = page(p1["pageInfo"]["endCursor"].as_str().map(str::to_string)).await;
        assert_eq!(ids(&p2), followed[3..6], "[{}]", svc.backend);
        assert_eq!(p2["pageInfo"]["hasPreviousPage"], true);
        let p3 = page(p2["pageInfo"]["endCursor"].as_str().map(str::to_string)).await;
        assert_eq!(ids(&p3), followed[6..7], "[{}]", svc.backend);
        assert_eq!(p3["pageInfo"]["hasNextPage"], false);

        // A fresh first page sees the new posts.
        let fresh = page(None).await;
        assert_eq!(fresh["edges"][0]["node"]["author"]["id"], b.as_str());

        // Nobody (plausible) followed: empty feed, no error.
        let vars =
            json!({ "reps": [{ "__typename": "User", "id": a, "followingIds": ["x\u{0}"] }] });
        let data = svc.data(None, FEED, vars).await;
        assert_eq!(data["_entities"][0]["feed"]["edges"], json!([]));

        // Bad paging input: errors with codes, never a panic.
        for (first, after, code) in [
            (json!(0), json!(null), "BAD_USER_INPUT"),
            (json!(101), json!(null), "BAD_USER_INPUT"),
            (json!(-5), json!(null), "BAD_USER_INPUT"),
            (json!(3), json!("not-a-cursor"), "BAD_USER_INPUT"),
            (json!(3), json!("bm9waXBl"), "BAD_USER_INPUT"),
            (
                json!(3),
                json!(portico_kit::pagination::encode_cursor(
                    portico_kit::now(),
                    "a\u{0}b"
                )),
                "BAD_USER_INPUT",
            ),
        ] {
            let vars = json!({ "reps": reps, "first": first, "after": after });
            svc.error_code(None, FEED, vars, code).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_posts_are_paginated_per_author() {
    for svc in services().await {
        let (a, b) = (new_user(), new_user());
        let mut mine = Vec::new();
        for i in 0..5 {
            mine.push(create_post(&svc, &a, &format!("a{i}")).await);
            create_post(&svc, &b, &format!("b{i}")).await;
        }
        mine.reverse();
        let q = "query($reps: [_Any!]!, $after: String) { _entities(representations: $reps) { ... on User { id posts(first: 2, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } } }";
        let reps = json!([{ "__typename": "User", "id": a }, { "__typename": "User", "id": b }, { "__typename": "User", "id": new_user() }]);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = svc
                .data(None, q, json!({ "reps": reps, "after": after }))
                .await;
            let conn = &data["_entities"][0]["posts"];
            seen.extend(ids(conn));
            if after.is_none() {
                assert_eq!(ids(&data["_entities"][1]["posts"]).len(), 2);
                assert_eq!(data["_entities"][2]["posts"]["edges"], json!([]));
            }
            if conn["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        assert_eq!(seen, mine, "[{}]", svc.backend);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_resolved_in_a_bounded_number_of_statements() {
    for svc in services().await {
        let authors: Vec<String> = (0..10).map(|_| new_user()).collect();
        let mut reps = Vec::new();
        for i in 0..100 {
            let id = uuid::Uuid::now_v7().to_string();
            sut::entity::post::ActiveModel {
                id: Set(id.clone()),
                author_id: Set(authors[i % 10].clone()),
                caption: Set(format!("bulk {i}")),
                image_url: Set(None),
                created_at: Set(portico_kit::now()),
            }
            .insert(&svc.db)
            .await
            .expect("insert post");
            reps.push(json!({ "__typename": "Post", "id": id }));
        }
        reps.push(json!({ "__typename": "Post", "id": "unknown-post" }));
        let q = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Post { id caption author { id } } } }";
        svc.quiesce().await;
        let before = svc.statements();
        let body = svc.gql(None, q, json!({ "reps": reps })).await;
        let used = svc.statements() - before;
        let list = body["data"]["_entities"].as_array().expect("entities");
        assert_eq!(list.len(), 101, "[{}] {body}", svc.backend);
        assert_eq!(list[0]["caption"], "bulk 0");
        assert!(
            list[100].is_null(),
            "[{}] unknown entity is null",
            svc.backend
        );
        assert!(
            used <= bounded(1),
            "[{}] 100 entities took {used} statements",
            svc.backend
        );

        // 10 authors' first pages: one windowed statement, not 10.
        let user_reps: Vec<Value> = authors
            .iter()
            .map(|a| json!({ "__typename": "User", "id": a }))
            .collect();
        let q = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { posts(first: 3) { nodes { id caption } } } } }";
        svc.quiesce().await;
        let before = svc.statements();
        let data = svc.data(None, q, json!({ "reps": user_reps })).await;
        let used = svc.statements() - before;
        for e in data["_entities"].as_array().expect("entities") {
            assert_eq!(e["posts"]["nodes"].as_array().map(Vec::len), Some(3));
        }
        assert!(
            used <= bounded(1),
            "[{}] 10 pages took {used} statements",
            svc.backend
        );
    }
}
// ---------------------------------------------------------------------------------------
// Harness: the shared one in `portico_kit::testing`, bound to this subgraph.
// ---------------------------------------------------------------------------------------

use std::time::Duration;

use portico_kit::events::Bus;
use portico_kit::testing::{self, TestService as Svc, assert_trust_enforced, bounded, new_user};
use serde_json::{Value, json};

/// Start the service on every test database (SQLite, and PostgreSQL when reachable).
async fn services() -> Vec<Svc> {
    testing::services(sut::NAME, |db| Box::pin(sut::migrate(db)), sut::app).await
}

/// `supergraph/<name>.graphql` equals `sdl()`; `UPDATE_SDL=1` rewrites the file.
fn check_sdl_file() {
    testing::check_sdl_file(env!("CARGO_MANIFEST_DIR"), sut::NAME, &sut::sdl());
}
