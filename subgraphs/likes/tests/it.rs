//! Integration tests of the likes subgraph: over real HTTP with gateway trust tokens, each
//! scenario on SQLite and on a fresh PostgreSQL database.
// The harness (`portico_kit::testing`) is shared by the platform subgraphs' suites.

use portico_likes as sut;

const LIKE: &str = "mutation($p: ID!) { likePost(postId: $p) { id likeCount likedByMe } }";
const UNLIKE: &str = "mutation($p: ID!) { unlikePost(postId: $p) { id likeCount likedByMe } }";
const COUNT: &str = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Post { id likeCount likedByMe } } }";

/// Announce a post as the posts service would, and wait until the projection has it.
async fn known_post(svc: &Svc) -> String {
    let post = uuid::Uuid::now_v7().to_string();
    let event = Event::new(
        portico_kit::events::POST_CREATED,
        json!({ "postId": post, "authorId": new_user() }),
    );
    svc.publish(&event).await;
    svc.wait_count(
        &format!("SELECT COUNT(*) AS n FROM known_posts WHERE post_id = '{post}'"),
        1,
    )
    .await;
    post
}

async fn like_count(svc: &Svc, user: Option<&str>, post: &str) -> (i64, bool) {
    let reps = json!([{ "__typename": "Post", "id": post }]);
    let data = svc.data(user, COUNT, json!({ "reps": reps })).await;
    let p = &data["_entities"][0];
    (
        p["likeCount"].as_i64().expect("likeCount"),
        p["likedByMe"].as_bool().expect("likedByMe"),
    )
}

fn outbox_count(kind: &str, post: &str) -> String {
    format!("SELECT COUNT(*) AS n FROM outbox WHERE kind = '{kind}' AND payload LIKE '%{post}%'")
}

#[test]
fn sdl_file_matches_the_schema() {
    check_sdl_file();
    let sdl = sut::sdl();
    assert!(
        sdl.contains("type User @key(fields: \"id\", resolvable: false)"),
        "{sdl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_trust_token_are_refused() {
    for svc in services().await {
        assert_trust_enforced(
            &svc,
            "{ _entities(representations: [{__typename: \"Post\", id: \"x\"}]) { ... on Post { likeCount } } }",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_likes_count_exactly_two_hundred() {
    for svc in services().await {
        let post = known_post(&svc).await;
        let users: Vec<String> = (0..200).map(|_| new_user()).collect();
        let likes = users.iter().map(|u| {
            let svc = &svc;
            let post = post.clone();
            async move { svc.data(Some(u), LIKE, json!({ "p": post })).await }
        });
        let results = futures::future::join_all(likes).await;
        assert_eq!(results.len(), 200);
        assert_eq!(
            like_count(&svc, None, &post).await,
            (200, false),
            "[{}]",
            svc.backend
        );
        assert_eq!(
            svc.count(&outbox_count("POST_LIKED", &post)).await,
            200,
            "[{}] one POST_LIKED per new like",
            svc.backend
        );

        // The same 50 users liking again, concurrently: nothing changes, no new events.
        let again = users[..50].iter().map(|u| {
            let svc = &svc;
            let post = post.clone();
            async move { svc.data(Some(u), LIKE, json!({ "p": post })).await }
        });
        futures::future::join_all(again).await;
        assert_eq!(like_count(&svc, Some(&users[0]), &post).await, (200, true));
        assert_eq!(svc.count(&outbox_count("POST_LIKED", &post)).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_and_unlike_are_idempotent() {
    for svc in services().await {
        let post = known_post(&svc).await;
        let (alice, bob) = (new_user(), new_user());

        svc.error_code(None, LIKE, json!({ "p": post }), "UNAUTHENTICATED")
            .await;
        let d = svc.data(Some(&alice), LIKE, json!({ "p": post })).await;
        assert_eq!(
            d["likePost"],
            json!({ "id": post, "likeCount": 1, "likedByMe": true })
        );
        let d = svc.data(Some(&alice), LIKE, json!({ "p": post })).await;
        assert_eq!(
            d["likePost"]["likeCount"], 1,
            "[{}] same user twice counts once",
            svc.backend
        );
        assert_eq!(like_count(&svc, Some(&bob), &post).await, (1, false));
        assert_eq!(
            like_count(&svc, None, &post).await,
            (1, false),
            "anonymous: likedByMe false"
        );

        let d = svc.data(Some(&alice), UNLIKE, json!({ "p": post })).await;
        assert_eq!(
            d["unlikePost"],
            json!({ "id": post, "likeCount": 0, "likedByMe": false })
        );
        let d = svc.data(Some(&alice), UNLIKE, json!({ "p": post })).await;
        assert_eq!(d["unlikePost"]["likeCount"], 0);
        let d = svc.data(Some(&bob), UNLIKE, json!({ "p": post })).await;
        assert_eq!(d["unlikePost"]["likeCount"], 0);

        assert_eq!(svc.count(&outbox_count("POST_LIKED", &post)).await, 1);
        assert_eq!(svc.count(&outbox_count("POST_UNLIKED", &post)).await, 1);

        // Unknown posts are NOT_FOUND for both mutations.
        for m in [LIKE, UNLIKE] {
            for unknown in ["no-such-post", "nul\u{0}"] {
                svc.error_code(Some(&alice), m, json!({ "p": unknown }), "NOT_FOUND")
                    .await;
            }
        }
        assert_eq!(like_count(&svc, Some(&alice), "nul\u{0}").await, (0, false));

        // A deleted post disappears from the projection with its likes.
        svc.data(Some(&bob), LIKE, json!({ "p": post })).await;
        let event = Event::new(
            portico_kit::events::POST_DELETED,
            json!({ "postId": post, "authorId": alice }),
        );
        svc.publish(&event).await;
        svc.wait_count(
            &format!("SELECT COUNT(*) AS n FROM known_posts WHERE post_id = '{post}'"),
            0,
        )
        .await;
        assert_eq!(like_count(&svc, None, &post).await, (0, false));
        svc.error_code(Some(&bob), LIKE, json!({ "p": post }), "NOT_FOUND")
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_are_paginated_newest_first() {
    for svc in services().await {
        let post = known_post(&svc).await;
        let mut users = Vec::new();
        for _ in 0..5 {
            let u = new_user();
            svc.data(Some(&u), LIKE, json!({ "p": post })).await;
            users.push(u);
        }
        users.reverse();
        let q = "query($reps: [_Any!]!, $first: Int, $after: String) { _entities(representations: $reps) { ... on Post { likes(first: $first, after: $after) { edges { cursor node { createdAt user { id } } } nodes { user { id } } pageInfo { hasNextPage endCursor } } } } }";
        let reps = json!([{ "__typename": "Post", "id": post }]);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let d = svc
                .data(None, q, json!({ "reps": reps, "first": 2, "after": after }))
                .await;
            let conn = &d["_entities"][0]["likes"];
            for e in conn["edges"].as_array().expect("edges") {
                seen.push(e["node"]["user"]["id"].as_str().expect("id").to_string());
            }
            // A like arriving while paging does not shift later pages.
            if after.is_none() {
                svc.data(Some(&new_user()), LIKE, json!({ "p": post }))
                    .await;
            }
            if conn["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        assert_eq!(seen, users, "[{}]", svc.backend);

        for (first, after) in [
            (json!(0), json!(null)),
            (json!(101), json!(null)),
            (json!(2), json!("garbage")),
        ] {
            let vars = json!({ "reps": reps, "first": first, "after": after });
            svc.error_code(None, q, vars, "BAD_USER_INPUT").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_for_many_posts_take_a_bounded_number_of_statements() {
    for svc in services().await {
        let post = known_post(&svc).await;
        let me = new_user();
        svc.data(Some(&me), LIKE, json!({ "p": post })).await;
        let mut reps: Vec<Value> = (0..99)
            .map(|_| json!({ "__typename": "Post", "id": uuid::Uuid::now_v7().to_string() }))
            .collect();
        reps.push(json!({ "__typename": "Post", "id": post }));
        let q = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Post { id likeCount likedByMe likes(first: 3) { nodes { user { id } } } } } }";
        svc.quiesce().await;
        let before = svc.statements();
        let d = svc.data(Some(&me), q, json!({ "reps": reps })).await;
        let used = svc.statements() - before;
        let list = d["_entities"].as_array().expect("entities");
        assert_eq!(list.len(), 100);
        assert_eq!(list[99]["likeCount"], 1);
        assert_eq!(list[99]["likedByMe"], true);
        assert_eq!(list[0]["likeCount"], 0);
        assert!(
            used <= bounded(3),
            "[{}] 100 posts took {used} statements",
            svc.backend
        );
    }
}
// ---------------------------------------------------------------------------------------
// Harness: the shared one in `portico_kit::testing`, bound to this subgraph.
// ---------------------------------------------------------------------------------------

use portico_kit::events::Event;
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
