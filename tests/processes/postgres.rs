//! PostgreSQL restarted under a subgraph: the posts service runs on a private PostgreSQL
//! server that the test crashes (`pg_ctl stop -m immediate`) and starts again, with the
//! other services, the gateway and a private Redis (the event bus) as processes of their
//! own. Errors while it is away, full recovery without restarting anything, and no write
//! lost, invented or doubled; the outbox's events still reach the likes service.

use std::time::{Duration, Instant};

use portico_kit::testing::{PrivateRedis, free_port, skip_unless_ci};
use serde_json::{Value, json};

use super::{Options, Platform, PrivatePostgres, fresh_dir, post_as};

async fn create_post(url: &str, token: &str, caption: &str) -> (u16, Value) {
    post_as(
        url,
        Some(token),
        "mutation($c: String!) { createPost(caption: $c) { id caption } }",
        json!({ "c": caption }),
    )
    .await
}

/// Likes `post` as `token` until the likes service knows the post (from the posts
/// service's event), at most `within`: the like count it answers, and how long it took.
async fn like_once_known(
    url: &str,
    token: &str,
    post: &str,
    within: Duration,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (_, body) = post_as(
            url,
            Some(token),
            "mutation($p: ID!) { likePost(postId: $p) { id likeCount } }",
            json!({ "p": post }),
        )
        .await;
        if body["data"]["likePost"]["id"] == json!(post) {
            return (
                body["data"]["likePost"]["likeCount"].clone(),
                started.elapsed(),
            );
        }
        assert!(
            started.elapsed() < within,
            "likes never learnt of {post}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_survives_its_postgresql_restarting_and_no_write_is_lost_or_doubled() {
    let pg_dir = fresh_dir("pg");
    let Some(pg) = PrivatePostgres::start(&pg_dir, free_port()).await else {
        skip_unless_ci(
            "PostgreSQL restart test",
            "PostgreSQL server (initdb, pg_ctl)",
        );
        return;
    };
    assert!(pg.create_database("posts").await, "createdb posts");
    let Some(redis) = PrivateRedis::start_or_skip(free_port(), "PostgreSQL restart test") else {
        return;
    };
    assert!(redis.wait_ready().await);
    let p = Platform::start_with(Options {
        // The posts subgraph's own errors, not the gateway's timeout, answer while the
        // database is away.
        config: "subgraph_timeout_ms = 60000\n",
        redis: Some(redis.url()),
        databases: vec![("posts", pg.url("posts"))],
        ..Options::default()
    })
    .await;
    let url = p.url();
    let within = Duration::from_secs(60);

    let (status, body) = post_as(
        &url,
        None,
        "mutation { register(username: \"alice\", email: \"alice@example.com\", password: \"Correct-horse-9\") { accessToken } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["register"]["accessToken"]
        .as_str()
        .expect("an access token")
        .to_string();
    let (status, body) = create_post(&url, &token, "before").await;
    assert_eq!(status, 200, "{body}");
    let before = body["data"]["createPost"]["id"]
        .as_str()
        .expect("a post id")
        .to_string();
    let (count, _) = like_once_known(&url, &token, &before, within).await;
    assert_eq!(count, json!(1));

    // PostgreSQL crashes.
    assert!(pg.crash().await, "pg_ctl stop -m immediate");
    let started = Instant::now();
    let read = format!("{{ post(id: \"{before}\") {{ caption }} }}");
    let (status, body) = post_as(&url, None, &read, json!({})).await;
    let read_failed_after = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["post"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["post"]), "{body}");
    let read_error = body["errors"][0].clone();
    // A write while it is away fails, and is not half-done.
    let (_, body) = create_post(&url, &token, "during").await;
    assert_eq!(body["data"]["createPost"], Value::Null, "{body}");
    assert!(
        body["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    eprintln!(
        "PostgreSQL away: a read failed after {read_failed_after:?} ({read_error}), the write too ({})",
        body["errors"][0]
    );

    // PostgreSQL back (crash recovery from its WAL); nothing else restarted.
    assert!(pg.up().await, "pg_ctl start");
    let back = Instant::now();
    loop {
        let (_, body) = post_as(&url, None, &read, json!({})).await;
        if body["data"]["post"]["caption"] == "before" {
            break;
        }
        assert!(back.elapsed() < within, "posts never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "PostgreSQL back: posts answering again after {:?}",
        back.elapsed()
    );
    let (status, body) = create_post(&url, &token, "after").await;
    assert_eq!(status, 200, "{body}");
    let after = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a post id: {body}"))
        .to_string();
    // The outbox relay of posts, reconnected, brings the new post to likes.
    let (count, took) = like_once_known(&url, &token, &after, within).await;
    assert_eq!(count, json!(1));
    eprintln!("PostgreSQL back: likes learnt of the new post after {took:?}");

    // Exactly the two committed posts: none lost, "during" never written, none doubled.
    let (_, body) = post_as(
        &url,
        None,
        "{ userByUsername(username: \"alice\") { posts(first: 10) { nodes { caption likeCount } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        body["data"]["userByUsername"]["posts"]["nodes"],
        json!([
            {"caption": "after", "likeCount": 1},
            {"caption": "before", "likeCount": 1}
        ]),
        "{body}"
    );
    drop(p);
    drop(pg);
    let _ = std::fs::remove_dir_all(&pg_dir);
}
