//! Redis taken away and brought back under the production shape: the gateway's rate
//! limiter and the subgraphs' event bus (Redis Streams, fed by each service's outbox) and
//! trust-token replay store all use one private `redis-server`, which the test kills and
//! starts again, empty, on the same port.

use std::time::{Duration, Instant};

use portico_kit::testing::{PrivateRedis, free_port, skip_unless_ci};
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
    let Some(redis) = PrivateRedis::start_or_skip(port, "Redis outage test") else {
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

/// Two notifications processes (one database, one Redis): the bus hands each event to
/// one of them, and the notification it creates reaches the subscribers of both, once
/// each, through the Redis fan-out. Subscribed to each replica directly over its
/// WebSocket, with trust tokens minted by the gateway's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_notifications_reach_subscribers_on_every_notifications_process() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let redis_port = free_port();
    let Some(redis) = PrivateRedis::start_or_skip(redis_port, "two-replica fan-out test") else {
        return;
    };
    assert!(redis.wait_ready().await, "the private redis-server starts");
    let pg_dir = super::fresh_dir("fanout-pg");
    let Some(pg) = super::PrivatePostgres::start(&pg_dir, free_port()).await else {
        skip_unless_ci("two-replica fan-out test", "PostgreSQL (initdb, pg_ctl)");
        return;
    };
    assert!(pg.create_database("notifications").await, "createdb");
    let database = pg.url("notifications");
    let p = Platform::start_with(Options {
        redis: Some(redis.url()),
        databases: vec![("notifications", database.clone())],
        ..Options::default()
    })
    .await;
    let keys = p.dir.join("keys");
    let second = super::Service::start(
        &[
            "subgraph".into(),
            "notifications".into(),
            "--listen".into(),
            "{listen}".into(),
            "--database-url".into(),
            database.into(),
            "--trust-public-key".into(),
            keys.join("gateway.pub.pem").into_os_string(),
            "--redis-url".into(),
            redis.url().into(),
        ],
        "127.0.0.1:0",
    )
    .await;
    let url = p.url();
    let (alice, alice_id) = register(&url, "alice").await;
    let (bob, _) = register(&url, "bob").await;
    let (_, body) = post_as(
        &url,
        Some(&alice),
        "mutation { createPost(caption: \"two replicas\") { id } }",
        json!({}),
    )
    .await;
    let post = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("alice posts: {body}"))
        .to_string();
    let signer = portico_trust::TrustSigner::from_pkcs8_pem(
        &std::fs::read_to_string(keys.join("gateway.pem")).expect("gateway key"),
    )
    .expect("gateway key");
    let identity =
        portico_trust::Identity::user(alice_id.clone(), vec!["read".into(), "write".into()]);
    let subscribe = |service_url: String| {
        let token = signer.mint("notifications", &identity, b"", Duration::from_secs(30));
        let identity = identity.clone();
        async move {
            let mut request = service_url
                .replacen("http://", "ws://", 1)
                .into_client_request()
                .expect("request");
            let headers = request.headers_mut();
            headers.insert(
                "sec-websocket-protocol",
                "graphql-transport-ws".parse().expect("h"),
            );
            headers.insert("portico-trust", token.parse().expect("h"));
            headers.insert(
                "portico-user-id",
                alice_id_header(&identity).parse().expect("h"),
            );
            headers.insert(
                "portico-user-scopes",
                identity.scopes_header().parse().expect("h"),
            );
            let (mut ws, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("a trusted upgrade");
            ws.send(Message::text(
                json!({"type": "connection_init"}).to_string(),
            ))
            .await
            .expect("init");
            ws.send(Message::text(
                json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { notificationAdded { id kind } }"}}).to_string(),
            ))
            .await
            .expect("subscribe");
            ws
        }
    };
    let mut on_first = subscribe(p.subgraphs["notifications"].url()).await;
    let mut on_second = subscribe(second.url()).await;
    // The next `next` payload's notification id on `ws`, within `wait`.
    async fn next_id(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        wait: Duration,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).ok()?;
                if v["type"] == "next" {
                    return v["payload"]["data"]["notificationAdded"]["id"]
                        .as_str()
                        .map(str::to_string);
                }
            }
        }
        None
    }
    // Like until a notification reaches both (whichever replica's consumer created it);
    // none arrives twice on one.
    let (mut seen_first, mut seen_second) = (Vec::new(), Vec::new());
    let mut common = None;
    for _ in 0..40 {
        for mutation in ["unlikePost", "likePost"] {
            let _ = post_as(
                &url,
                Some(&bob),
                &format!("mutation($p: ID!) {{ {mutation}(postId: $p) {{ id }} }}"),
                json!({ "p": post }),
            )
            .await;
        }
        seen_first.extend(next_id(&mut on_first, Duration::from_millis(1500)).await);
        seen_second.extend(next_id(&mut on_second, Duration::from_millis(1500)).await);
        common = seen_first
            .iter()
            .find(|id| seen_second.contains(id))
            .cloned();
        if common.is_some() {
            break;
        }
    }
    assert!(
        common.is_some(),
        "no notification reached the subscribers of both processes: {seen_first:?} / {seen_second:?}"
    );
    for seen in [&seen_first, &seen_second] {
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "delivered once each: {seen:?}");
    }
    drop(second);
    drop(p);
}

fn alice_id_header(identity: &portico_trust::Identity) -> String {
    identity.user_id.clone().unwrap_or_default()
}
