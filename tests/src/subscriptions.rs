//! Subscriptions through the gateway, over real sockets, on the whole platform: alice
//! subscribes to `notificationAdded` (over a WebSocket speaking graphql-transport-ws, and
//! over Server-Sent Events), bob likes her post, and the event reaches her with the
//! fields other subgraphs own (`actor` from users, `post` from posts and likes) resolved
//! by the gateway. Also: a bad token closes the WebSocket with 4403, a subscription over
//! plain HTTP is 406, an anonymous subscriber gets the subgraph's refusal.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use portico::seed::Client;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::platform::{login, start};

const SUBSCRIPTION: &str = "subscription Live { notificationAdded { kind actor { username } post { id caption likeCount } } }";

/// One of alice's posts.
async fn alice_post(client: &Client, alice_id: &str) -> (String, String) {
    let data = client
        .run(
            None,
            "query($id: ID!) { user(id: $id) { posts(first: 1) { nodes { id caption } } } }",
            json!({ "id": alice_id }),
        )
        .await
        .expect("alice's posts");
    let post = &data["user"]["posts"]["nodes"][0];
    (
        post["id"].as_str().expect("id").to_string(),
        post["caption"].as_str().expect("caption").to_string(),
    )
}

/// Bob likes the post again and again (unlike, like: each like is a new notification)
/// until `received` says an event arrived, so the test does not depend on when the
/// upstream subscription became live.
fn keep_liking(client: Client, bob: String, post: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..40 {
            let _ = client
                .run(
                    Some(&bob),
                    "mutation($p: ID!) { unlikePost(postId: $p) { id } }",
                    json!({ "p": post }),
                )
                .await;
            let _ = client
                .run(
                    Some(&bob),
                    "mutation($p: ID!) { likePost(postId: $p) { id } }",
                    json!({ "p": post }),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

fn ws_url(gateway_url: &str) -> String {
    gateway_url.replacen("http://", "ws://", 1)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gateway_url: &str) -> Ws {
    let mut request = ws_url(gateway_url).into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    ws
}

/// The next JSON text message (pings answered by the library), or the close frame's
/// code.
async fn next_message(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s");
        match message {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("JSON")),
            Some(Ok(Message::Close(frame))) => return Err(frame.map_or(1005, |f| f.code.into())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error: {e}"),
            None => return Err(1006),
        }
    }
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

fn assert_event(event: &Value, caption: &str) {
    let n = &event["data"]["notificationAdded"];
    assert_eq!(n["kind"], "LIKE", "{event}");
    assert_eq!(n["actor"]["username"], "bob", "resolved by users: {event}");
    assert_eq!(n["post"]["caption"], caption, "resolved by posts: {event}");
    assert!(
        n["post"]["likeCount"].as_i64().is_some_and(|c| c >= 1),
        "resolved by likes: {event}"
    );
    assert!(event.get("errors").is_none(), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_like_reaches_the_authors_websocket_subscription_with_entities_resolved() {
    let p = start().await;
    let client = Client::new(&p.gateway_url);
    let (alice, alice_id) = login(&client, "alice").await;
    let (bob, _) = login(&client, "bob").await;
    let (post, caption) = alice_post(&client, &alice_id).await;

    // A bad token never gets an acknowledgement.
    let mut ws = connect(&p.gateway_url).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}),
    )
    .await;
    assert_eq!(next_message(&mut ws).await, Err(4403));

    let mut ws = connect(&p.gateway_url).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {alice}")}}),
    )
    .await;
    assert_eq!(
        next_message(&mut ws).await,
        Ok(json!({"type": "connection_ack"}))
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_message(&mut ws).await, Ok(json!({"type": "pong"})));
    send(
        &mut ws,
        json!({"id": "live", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}),
    )
    .await;
    // A query on the same connection: one `next`, then `complete`.
    send(
        &mut ws,
        json!({"id": "q", "type": "subscribe", "payload": {"query": "{ me { username } }"}}),
    )
    .await;
    let liker = keep_liking(client.clone(), bob.clone(), post.clone());
    // Both in any order: the query's answer and completion, and the first event.
    let (mut answered, mut completed, mut event) = (false, false, None);
    while !(answered && completed && event.is_some()) {
        let message = next_message(&mut ws).await.expect("open");
        match (message["id"].as_str(), message["type"].as_str()) {
            (Some("q"), Some("next")) => {
                assert_eq!(message["payload"]["data"]["me"]["username"], "alice");
                answered = true;
            }
            (Some("q"), Some("complete")) => completed = true,
            (Some("live"), Some("next")) => {
                event.get_or_insert(message["payload"].clone());
            }
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
    liker.abort();
    assert_event(&event.expect("an event"), &caption);
    // A new supergraph ends open subscriptions with the reason, then `complete`; the
    // connection stays open for new ones.
    p.gateway
        .reload_supergraph(portico::platform::DEMO_SUPERGRAPH)
        .expect("reload");
    let ended = loop {
        let m = next_message(&mut ws).await.expect("open");
        if m["type"] == "next"
            && m["payload"]["errors"][0]["extensions"]["code"] == "SUBSCRIPTION_ENDED"
        {
            break m;
        }
    };
    assert!(
        ended["payload"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("supergraph changed")),
        "{ended}"
    );
    assert_eq!(
        next_message(&mut ws).await,
        Ok(json!({"id": "live", "type": "complete"}))
    );
    send(
        &mut ws,
        json!({"id": "live", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}),
    )
    .await;
    // Reusing a live id closes the connection (the protocol's 4409).
    send(
        &mut ws,
        json!({"id": "live", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}),
    )
    .await;
    let closed = loop {
        match next_message(&mut ws).await {
            Err(code) => break code,
            // More events of the live subscription may still arrive first.
            Ok(m) => assert_eq!(m["id"], "live", "{m}"),
        }
    };
    assert_eq!(closed, 4409);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_like_reaches_the_authors_sse_subscription_and_plain_http_is_refused() {
    let p = start().await;
    let client = Client::new(&p.gateway_url);
    let (alice, alice_id) = login(&client, "alice").await;
    let (bob, _) = login(&client, "bob").await;
    let (post, caption) = alice_post(&client, &alice_id).await;
    let http = reqwest::Client::new();

    // Without a streaming transport: 406.
    let refused = http
        .post(&p.gateway_url)
        .header("content-type", "application/json")
        .bearer_auth(&alice)
        .json(&json!({ "query": SUBSCRIPTION }))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 406);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "SUBSCRIPTION_TRANSPORT_REQUIRED"
    );

    // GraphQL over SSE (distinct connections).
    let mut stream = http
        .post(&p.gateway_url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .bearer_auth(&alice)
        .json(&json!({ "query": SUBSCRIPTION }))
        .send()
        .await
        .expect("send");
    assert_eq!(stream.status().as_u16(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream"))
    );
    let liker = keep_liking(client.clone(), bob.clone(), post.clone());
    let mut buffer = String::new();
    let event = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
            .await
            .expect("an event within 20 s")
            .expect("chunk")
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        // Events end with a blank line; keep-alive comments start with ':'.
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block
                .lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                && block
                    .lines()
                    .any(|l| l.trim() == "event: next" || l.trim() == "event:next")
            {
                break serde_json::from_str::<Value>(data).expect("event JSON");
            }
        }
    };
    liker.abort();
    assert_event(&event, &caption);

    // Anonymous: the notifications subgraph refuses, the client reads why.
    let mut anonymous = http
        .post(&p.gateway_url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .json(&json!({ "query": SUBSCRIPTION }))
        .send()
        .await
        .expect("send");
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_secs(20), anonymous.chunk()).await
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("event: complete") || text.contains("event:complete") {
            break;
        }
    }
    assert!(text.contains("\"errors\""), "{text}");
    assert!(text.contains("complete"), "the stream ends: {text}");
    p.shutdown();
}

/// WebSockets skip CORS, so the gateway checks `Origin` itself: another site's page may
/// not open one (403); the gateway's own origin (the playground) may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_another_origin_is_refused() {
    let p = start().await;
    let request = |origin: &str| {
        let mut request = ws_url(&p.gateway_url)
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("origin"));
        request
    };
    let refused = tokio_tungstenite::connect_async(request("https://evil.example")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    let own = p.gateway_url.trim_end_matches("/graphql").to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&own))
        .await
        .expect("the gateway's own origin");
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(
        next_message(&mut ws).await,
        Ok(json!({"type": "connection_ack"}))
    );
    p.shutdown();
}
