//! Integration tests of the comments subgraph: over real HTTP with gateway trust tokens,
//! each scenario on SQLite and on a fresh PostgreSQL database.
// The harness (`portico_kit::testing`) is shared by the platform subgraphs' suites.

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
