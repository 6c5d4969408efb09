//! Redis taken away and brought back under the production shape: the gateway's rate
//! limiter and the subgraphs' event bus (Redis Streams, fed by each service's outbox) and
//! trust-token replay store all use one private `redis-server`, which the test kills and
//! starts again, empty, on the same port.

use std::time::{Duration, Instant};

use portico_kit::testing::{PrivateRedis, free_port};
use serde_json::{Value, json};

use super::{Options, Platform, post, post_as};

/// Registers `username` through the gateway: its access token and user id.
async fn register(url: &str, username: &str) -> (String, String) {
    let (status, body) = post_as(
        url,
        None,
        "mutation($u: String!, $e: String!) { register(username: $u, email: $e, password: \"Correct-horse-9\") { accessToken userId } }",
        json!({ "u": username, "e": format!("{username}@example.com") }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let payload = &body["data"]["register"];
    let token = payload["accessToken"].as_str();
    let id = payload["userId"].as_str();
    match (token, id) {
        (Some(t), Some(i)) => (t.to_string(), i.to_string()),
        _ => panic!("register {username}: {body}"),
    }
}

/// Waits (at most `within`) until `check` holds for the answer to `query`.
async fn until(
    url: &str,
    token: Option<&str>,
    query: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (_, body) = post_as(url, token, query, json!({})).await;
        if check(&body) {
            return (body, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "not within {within:?}: {query} -> {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn profile(username: &str) -> String {
    format!("{{ userByUsername(username: \"{username}\") {{ id username }} }}")
}

const NOTIFICATIONS: &str =
    "{ me { notifications(first: 20) { nodes { kind actor { username } } } } }";

fn notifications(body: &Value) -> Vec<(String, String)> {
    body["data"]["me"]["notifications"]["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    (
                        n["kind"].as_str().unwrap_or("").to_string(),
                        n["actor"]["username"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_and_back_loses_no_event_duplicates_none_and_the_gateway_keeps_serving() {
    let port = free_port();
    let Some(redis) = PrivateRedis::start(port) else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("redis-server is required in CI");
        }
        eprintln!(
            "\n!!!!!!!!!!!!!!!!\nSKIPPED Redis outage test: no redis-server\n!!!!!!!!!!!!!!!!\n"
        );
        return;
    };
    assert!(redis.wait_ready().await, "the private redis-server starts");
    let p = Platform::start_with(Options {
        redis: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let url = p.url();
    let within = Duration::from_secs(60);

    // Before: two members, whose profiles the users service creates from auth's events.
    let (alice_token, alice_id) = register(&url, "alice").await;
    let (dave_token, _) = register(&url, "dave").await;
    for name in ["alice", "dave"] {
        until(&url, None, &profile(name), within, |b| {
            b["data"]["userByUsername"]["username"] == name
        })
        .await;
    }

    // Redis goes away.
    drop(redis);
    // The gateway keeps answering: its rate limiter fails open (the default).
    let (status, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    // Writes still commit, each with its event in the service's outbox: a new member
    // (auth), and dave follows alice (users; notifications builds hers from the event).
    // (auth keeps sessions in Redis; while it is away, bob's goes to auth's database,
    // and refreshing it works.)
    let (_, bob_id) = register(&url, "bob").await;
    assert!(!bob_id.is_empty());
    let (status, body) = post_as(
        &url,
        None,
        "mutation { login(usernameOrEmail: \"bob\", password: \"Correct-horse-9\") { refreshToken } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bob_refresh = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("bob logs in while Redis is away: {body}"))
        .to_string();
    let (_, body) = post_as(
        &url,
        None,
        "mutation($t: String!) { refresh(refreshToken: $t) { refreshToken } }",
        json!({ "t": bob_refresh }),
    )
    .await;
    assert!(
        body["data"]["refresh"]["refreshToken"].is_string(),
        "bob's session (in the database) refreshes while Redis is away: {body}"
    );
    let (status, body) = post_as(
        &url,
        Some(&dave_token),
        "mutation($id: ID!) { follow(userId: $id) { id } }",
        json!({ "id": alice_id }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["follow"]["id"], json!(alice_id), "{body}");
    // With the bus away, the events wait: no profile for bob, no notification for alice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = post(&url, &profile("bob")).await;
    assert_eq!(body["data"]["userByUsername"], Value::Null, "{body}");
    let (_, body) = post_as(&url, Some(&alice_token), NOTIFICATIONS, json!({})).await;
    assert_eq!(notifications(&body), vec![], "{body}");

    // Redis comes back on the same port, empty (no persistence).
    let redis = PrivateRedis::start(port).expect("restart redis-server");
    assert!(redis.wait_ready().await);
    let back = Instant::now();
    // No event lost: bob's profile appears, and alice's notification.
    let (_, took) = until(&url, None, &profile("bob"), within, |b| {
        b["data"]["userByUsername"]["username"] == "bob"
    })
    .await;
    eprintln!("Redis back: bob's profile after {took:?}");
    let (body, took) = until(&url, Some(&alice_token), NOTIFICATIONS, within, |b| {
        !notifications(b).is_empty()
    })
    .await;
    eprintln!("Redis back: alice's notification after {took:?}");
    assert_eq!(
        notifications(&body),
        vec![("FOLLOW".to_string(), "dave".to_string())]
    );
    // None duplicated: a while later, still exactly one (a redelivered event is skipped
    // by its id).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, body) = post_as(&url, Some(&alice_token), NOTIFICATIONS, json!({})).await;
    assert_eq!(
        notifications(&body),
        vec![("FOLLOW".to_string(), "dave".to_string())],
        "{body}"
    );
    eprintln!("recovered {:?} after Redis came back", back.elapsed());

    // The gateway counted the requests it served without the limiter.
    let metrics = super::metrics(&url).await;
    let failed_open = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("portico_rate_limit_decisions_total{decision=\"failed_open\"} ")
        })
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(failed_open >= 1, "{metrics}");
}
