//! Integration tests of the notifications subgraph: over real HTTP with gateway trust
//! tokens, each scenario on SQLite and on a fresh PostgreSQL database. Events are published
//! on the service's bus exactly as the other services' relays would.
// The harness (`portico_kit::testing`) is shared by the platform subgraphs' suites.

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
/// `notificationAdded` over a WebSocket (graphql-transport-ws), as the gateway opens it:
/// the upgrade needs a trust token (bound to its empty body, used once); the stream
/// carries the recipient's new notifications only, once committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_notifications_stream_to_their_recipient_over_a_trusted_websocket() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    for svc in services().await {
        let (alice, bob, carol) = (new_user(), new_user(), new_user());
        let request = |headers: &[(String, String)]| {
            let mut r = svc
                .url
                .replacen("http://", "ws://", 1)
                .into_client_request()
                .expect("request");
            r.headers_mut().insert(
                "sec-websocket-protocol",
                "graphql-transport-ws".parse().expect("header"),
            );
            for (k, v) in headers {
                r.headers_mut().insert(
                    axum::http::HeaderName::try_from(k.as_str()).expect("name"),
                    v.parse().expect("value"),
                );
            }
            r
        };
        // No token: refused before any upgrade.
        let refused = tokio_tungstenite::connect_async(request(&[])).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
            "{refused:?}"
        );
        let headers = testing::headers_for(&svc.trust.signer, sut::NAME, Some(&alice), b"");
        let (mut ws, _) = tokio_tungstenite::connect_async(request(&headers))
            .await
            .expect("trusted upgrade");
        // The same token again: a replay, refused.
        let replayed = tokio_tungstenite::connect_async(request(&headers)).await;
        assert!(
            matches!(&replayed, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
            "{replayed:?}"
        );
        let send = |v: Value| Message::text(v.to_string());
        ws.send(send(json!({"type": "connection_init"})))
            .await
            .expect("init");
        let ack = loop {
            let m = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
                .await
                .expect("a message within 20 s")
                .expect("open")
                .expect("message");
            if let Message::Text(t) = m {
                break serde_json::from_str::<Value>(&t).expect("json");
            }
        };
        assert_eq!(ack["type"], "connection_ack");
        ws.send(send(json!({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription { notificationAdded { id kind actor { id } post { id } } }"
        }})))
        .await
        .expect("subscribe");
        let (post, other) = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        deliver(
            &svc,
            &[
                Event::new(POST_CREATED, json!({ "postId": other, "authorId": carol })),
                Event::new(POST_CREATED, json!({ "postId": post, "authorId": alice })),
            ],
        )
        .await;
        // When the subscription becomes live is not observable: like (carol's post, then
        // alice's) until alice's first event arrives; carol's never reach her.
        let mut message = None;
        for _ in 0..40 {
            deliver(
                &svc,
                &[
                    Event::new(POST_UNLIKED, json!({ "postId": other, "userId": bob })),
                    Event::new(POST_LIKED, json!({ "postId": other, "userId": bob })),
                    Event::new(POST_UNLIKED, json!({ "postId": post, "userId": bob })),
                    Event::new(POST_LIKED, json!({ "postId": post, "userId": bob })),
                ],
            )
            .await;
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(std::time::Duration::from_millis(500), ws.next()).await
            {
                message = Some(serde_json::from_str::<Value>(&t).expect("json"));
                break;
            }
        }
        let message = message.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        let n = &message["payload"]["data"]["notificationAdded"];
        // Carol's notification was not alice's to see: the first event is hers.
        assert_eq!(n["kind"], "LIKE", "{message}");
        assert_eq!(n["actor"]["id"], bob.as_str(), "{message}");
        assert_eq!(n["post"]["id"], post.as_str(), "{message}");
    }
}

/// Replicas share live notifications through Redis: one published on replica A reaches
/// the subscribers of A and of B, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_notifications_fan_out_to_every_replica_through_redis_once() {
    use portico_notifications::live::{CHANNEL, Hub, LiveNotification};
    let url = "redis://127.0.0.1:6379";
    let Ok(client) = redis::Client::open(url) else {
        panic!("redis URL");
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Redis is required in CI (127.0.0.1:6379)"
        );
        eprintln!("\n!!!!! SKIPPED live_notifications_fan_out: no Redis !!!!!\n");
        return;
    };
    let numsub = async |c: &mut redis::aio::MultiplexedConnection| -> i64 {
        let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(CHANNEL)
            .query_async(c)
            .await
            .expect("numsub");
        match reply.get(1) {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        }
    };
    let before = numsub(&mut c).await;
    let (a, b) = (
        Hub::redis(url).expect("hub a"),
        Hub::redis(url).expect("hub b"),
    );
    let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
    for _ in 0..250 {
        if numsub(&mut c).await >= before + 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let recipient = new_user();
    let n = LiveNotification {
        id: uuid::Uuid::now_v7().to_string(),
        recipient_id: recipient.clone(),
        kind: "LIKE".into(),
        actor_id: new_user(),
        post_id: Some(uuid::Uuid::now_v7().to_string()),
        created_at: chrono::Utc::now(),
        read: false,
    };
    a.publish(n.clone()).await;
    let mine =
        async |rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<LiveNotification>>| {
            let mut got = Vec::new();
            // Everything that arrives within a second (other tests' notifications ignored).
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
            while let Ok(Ok(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                if m.recipient_id == recipient {
                    got.push((*m).clone());
                }
            }
            got
        };
    assert_eq!(mine(&mut on_a).await, vec![n.clone()], "replica A, once");
    assert_eq!(mine(&mut on_b).await, vec![n], "replica B, once");
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
