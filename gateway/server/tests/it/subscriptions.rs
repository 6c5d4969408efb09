//! Subscriptions against a mock subgraph speaking graphql-transport-ws (an axum WebSocket
//! that records the upgrade's headers and streams what the test pushes): the upgrade
//! carries a trust token for that subgraph and the identity; events reach the client
//! over SSE; a client holding `max_per_client` subscriptions is refused; a subscription
//! ends when its access token expires, and its place is free again.

use super::*;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};

/// A subgraph whose subscriptions stream what [`WsSubgraph::push`] sends.
struct WsSubgraph {
    url: String,
    events: tokio::sync::broadcast::Sender<Value>,
    upgrades: Arc<Mutex<Vec<HeaderMap>>>,
    subscribed: Arc<AtomicUsize>,
}

impl WsSubgraph {
    async fn start() -> Self {
        let (events, _) = tokio::sync::broadcast::channel::<Value>(1024);
        let upgrades: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let subscribed = Arc::new(AtomicUsize::new(0));
        type WsState = (
            tokio::sync::broadcast::Sender<Value>,
            Arc<Mutex<Vec<HeaderMap>>>,
            Arc<AtomicUsize>,
        );
        async fn upgrade(
            State((events, upgrades, subscribed)): State<WsState>,
            headers: HeaderMap,
            ws: WebSocketUpgrade,
        ) -> axum::response::Response {
            upgrades.lock().push(headers);
            ws.protocols(["graphql-transport-ws"])
                .on_upgrade(move |socket| serve(socket, events.subscribe(), subscribed))
        }
        async fn serve(
            mut socket: WebSocket,
            mut events: tokio::sync::broadcast::Receiver<Value>,
            subscribed: Arc<AtomicUsize>,
        ) {
            let mut id = None;
            loop {
                tokio::select! {
                    incoming = socket.recv() => {
                        let Some(Ok(Message::Text(text))) = incoming else { return };
                        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        match message["type"].as_str() {
                            Some("connection_init") => {
                                let ack = json!({"type": "connection_ack"}).to_string();
                                if socket.send(Message::Text(ack.into())).await.is_err() { return }
                            }
                            Some("subscribe") => {
                                id = message["id"].as_str().map(str::to_string);
                                subscribed.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => {}
                        }
                    }
                    event = events.recv() => {
                        let (Ok(data), Some(id)) = (event, &id) else { continue };
                        let next = json!({"id": id, "type": "next", "payload": {"data": data}});
                        if socket.send(Message::Text(next.to_string().into())).await.is_err() { return }
                    }
                }
            }
        }
        let app = axum::Router::new()
            .route("/graphql", axum::routing::get(upgrade))
            .with_state((events.clone(), upgrades.clone(), subscribed.clone()));
        let addr = spawn(app).await;
        Self {
            url: format!("http://{addr}/graphql"),
            events,
            upgrades,
            subscribed,
        }
    }

    fn push(&self, data: Value) {
        let _ = self.events.send(data);
    }

    /// Waits until `n` subscriptions were opened on it.
    async fn wait_subscribed(&self, n: usize) {
        for _ in 0..200 {
            if self.subscribed.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no subscription reached the subgraph");
    }
}

/// The SSE body of `response`, event by event: `(event, data)`.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !event.is_empty() {
                    return Some((event, data));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event within 20 s")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn subscription_plan() -> QueryPlan {
    QueryPlan {
        node: Some(PlanNode::Sequence {
            nodes: vec![PlanNode::Fetch(FetchNode {
                operation_kind: OperationKind::Subscription,
                ..match fetch("users", "subscription{userAdded{name}}") {
                    PlanNode::Fetch(f) => f,
                    _ => unreachable!(),
                }
            })],
        }),
    }
}

async fn subscribe(gw: &TestGateway, token: &str) -> reqwest::Response {
    subscribe_with(gw, Some(token), "text/event-stream").await
}

/// `subscription Added` with `accept`, as `token` (anonymous without).
async fn subscribe_with(gw: &TestGateway, token: Option<&str>, accept: &str) -> reqwest::Response {
    let mut request = gw
        .http
        .post(format!("{}/graphql", gw.url))
        .header("content-type", "application/json")
        .header("accept", accept);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .body(
            json!({"query": "subscription Added { userAdded { name } }", "operationName": "Added"})
                .to_string(),
        )
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_carry_trust_are_capped_per_client_and_end_when_the_token_expires() {
    let subgraph = WsSubgraph::start().await;
    let mut config = dev();
    config.jwt = pem_jwt_config();
    config.subscriptions.max_per_client = 1;
    let gw = TestGateway::start(
        config,
        &[("users", &subgraph.url)],
        vec![("Added", subscription_plan())],
    )
    .await;
    let token = |ttl: u64| {
        token(
            JWT_PRIVATE,
            None,
            json!({"sub": "42", "scope": "read", "iss": "portico-auth", "aud": "portico", "exp": now() + ttl}),
        )
    };

    // Expires in 3 s.
    let response = subscribe(&gw, &token(3)).await;
    assert_eq!(response.status().as_u16(), 200);
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    subgraph.wait_subscribed(1).await;
    // The upgrade carried a trust token for `users` and the identity.
    let upgrade = subgraph.upgrades.lock()[0].clone();
    assert_eq!(upgrade["portico-user-id"], "42");
    let trust = upgrade["portico-trust"].to_str().expect("token");
    gw.signer
        .verifier()
        .verify(Some(trust), "users", Some("42"), Some("read"), b"")
        .expect("a trust token for users, bound to the empty body");
    subgraph.push(json!({"userAdded": {"name": "Ann", "id": "7"}}));
    let (event, data) = events.next().await.expect("an event");
    assert_eq!(event, "next");
    assert_eq!(
        serde_json::from_str::<Value>(&data).expect("json"),
        json!({"data": {"userAdded": {"name": "Ann"}}})
    );

    // The same user again: refused while the first is open.
    let second = subscribe(&gw, &token(300)).await;
    assert_eq!(second.status().as_u16(), 429);
    let body: Value = second.json().await.expect("json");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "SUBSCRIPTION_LIMIT_EXCEEDED"
    );

    // The token expires: a last error, then `complete`.
    let (event, data) = events.next().await.expect("the expiry");
    assert_eq!(event, "next", "{data}");
    let data: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(data["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(
        data["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired"))
    );
    assert_eq!(
        events.next().await.map(|e| e.0).as_deref(),
        Some("complete")
    );

    // Its place is free again.
    let mut accepted = None;
    for _ in 0..100 {
        let again = subscribe(&gw, &token(300)).await;
        if again.status().as_u16() == 200 {
            accepted = Some(again);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        accepted.is_some(),
        "the expired subscription's place was given back"
    );
    assert!(
        gw.metrics()
            .await
            .contains("portico_subscriptions_open 1\n"),
        "{}",
        gw.metrics().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_subscriptions_stream_one_part_per_event_apollo_style() {
    let subgraph = WsSubgraph::start().await;
    let gw = TestGateway::start(
        dev(),
        &[("users", &subgraph.url)],
        vec![("Added", subscription_plan())],
    )
    .await;
    let mut response = subscribe_with(
        &gw,
        None,
        "multipart/mixed;subscriptionSpec=\"1.0\", application/json",
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\""
    );
    subgraph.wait_subscribed(1).await;
    subgraph.push(json!({"userAdded": {"name": "Ann"}}));
    subgraph.push(json!({"userAdded": {"name": "Bo"}}));
    let mut text = String::new();
    while text.matches("\"payload\"").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("parts within 20 s")
            .expect("chunk")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let parts: Vec<Value> = text
        .split("\r\n--graphql\r\ncontent-type: application/json\r\n\r\n")
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_str(p).expect("a JSON part"))
        .collect();
    assert_eq!(
        parts,
        vec![
            json!({"payload": {"data": {"userAdded": {"name": "Ann"}}}}),
            json!({"payload": {"data": {"userAdded": {"name": "Bo"}}}}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_charge_per_event_each_event_takes_the_cost_and_an_empty_budget_ends_it() {
    let subgraph = WsSubgraph::start().await;
    let mut config = dev();
    config.rate_limit.enabled = true;
    config.rate_limit.anonymous_budget = 3;
    config.rate_limit.window_secs = 3600;
    config.subscriptions.charge_per_event = true;
    let gw = TestGateway::start(
        config,
        &[("users", &subgraph.url)],
        vec![("Added", subscription_plan())],
    )
    .await;
    let response = subscribe_with(&gw, None, "text/event-stream").await;
    assert_eq!(response.status().as_u16(), 200);
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    subgraph.wait_subscribed(1).await;
    // 1 point at the start, 1 per event: the budget of 3 covers two events.
    for name in ["Ann", "Bo", "Cy"] {
        subgraph.push(json!({"userAdded": {"name": name}}));
    }
    let mut seen = Vec::new();
    loop {
        let (event, data) = events.next().await.expect("events");
        if event == "complete" {
            break;
        }
        seen.push(serde_json::from_str::<Value>(&data).expect("json"));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0]["data"]["userAdded"]["name"], "Ann");
    assert_eq!(seen[1]["data"]["userAdded"]["name"], "Bo");
    assert_eq!(seen[2]["errors"][0]["extensions"]["code"], "RATE_LIMITED");
}

/// `@defer` with the real planner: the initial part at once, the deferred fragments'
/// data with their paths and labels after (one item per list element), or everything in
/// one response for a client that does not accept multipart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_fragments_arrive_incrementally_with_their_paths_and_labels() {
    let subgraphs = demo_subgraphs(2, 1).await;
    let (_gateway, url) = real_gateway(&subgraphs).await;
    let query = r#"query Profile($id: ID!) {
      user(id: $id) {
        username
        ... @defer(label: "posts") { posts(first: 10) { nodes { caption } } }
        posts(first: 10) { nodes { id ... on Post @defer(label: "likes") { likeCount } } }
      }
    }"#;
    let ask = |accept: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(&url)
                .header("accept", accept)
                .json(&json!({"query": query, "variables": {"id": "1"}}))
                .send()
                .await
                .expect("send")
        }
    };
    let sent = |name: &str| -> Vec<String> {
        let sg = &subgraphs
            .iter()
            .find(|(n, _)| *n == name)
            .expect("subgraph")
            .1;
        sg.requests
            .lock()
            .iter()
            .map(|r| r.body["query"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let before = |name: &str| sent(name).len();
    let (users_before, posts_before, likes_before) =
        (before("users"), before("posts"), before("likes"));
    let response = ask("multipart/mixed;deferSpec=20220824, application/json").await;
    let content_type = response.headers()["content-type"].clone();
    let body = response.text().await.expect("body");
    assert_eq!(
        content_type, "multipart/mixed;boundary=\"-\";deferSpec=20220824",
        "{body}"
    );
    assert!(body.ends_with("\r\n-----\r\n"), "{body:?}");
    let parts = multipart_parts(&body);
    // The initial payload, one part per deferred fragment (in the order their fetches
    // finish), and the last `hasNext: false`.
    assert_eq!(parts.len(), 4, "{body}");
    // One plan: the primary part's fetches (users, then the post ids from posts), then
    // each deferred fragment's own fetches, which start from the primary's keys and
    // fetch nothing it already has: the captions from posts, the like counts from likes.
    assert_eq!(sent("users").len() - users_before, 1);
    let posts = sent("posts")[posts_before..].to_vec();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(
        !posts[0].contains("caption") && posts[0].contains("id"),
        "{posts:?}"
    );
    assert!(
        posts[1].contains("posts(first:10){nodes{caption}}"),
        "the deferred fetch asks for the deferred fields only: {posts:?}"
    );
    let likes = sent("likes")[likes_before..].to_vec();
    assert_eq!(likes.len(), 1, "{likes:?}");
    assert!(likes[0].contains("likeCount"), "{likes:?}");
    assert_eq!(
        parts[0],
        json!({"data": {"user": {"username": "ann", "posts": {"nodes": [{"id": "p0"}, {"id": "p1"}]}}}, "hasNext": true}),
        "{body}"
    );
    assert_eq!(parts[3], json!({"hasNext": false}), "{body}");
    let mut items = Vec::new();
    for part in &parts[1..3] {
        assert_eq!(part["hasNext"], true, "{body}");
        let these = part["incremental"].as_array().expect("incremental");
        // Each part carries one fragment's items.
        assert!(
            these.iter().all(|i| i["label"] == these[0]["label"]),
            "{body}"
        );
        items.extend(these.iter().cloned());
    }
    items.sort_by_key(|i| i["path"].to_string());
    assert_eq!(
        items,
        vec![
            json!({"data": {"likeCount": 0}, "path": ["user", "posts", "nodes", 0], "label": "likes"}),
            json!({"data": {"likeCount": 1}, "path": ["user", "posts", "nodes", 1], "label": "likes"}),
            json!({"data": {"posts": {"nodes": [{"caption": "caption 0"}, {"caption": "caption 1"}]}}, "path": ["user"], "label": "posts"}),
        ],
        "{body}"
    );

    // Without multipart: the whole result at once, no placeholder left.
    let whole: Value = ask("application/json").await.json().await.expect("json");
    assert_eq!(
        whole["data"],
        json!({"user": {"username": "ann", "posts": {"nodes": [
            {"caption": "caption 0", "id": "p0", "likeCount": 0},
            {"caption": "caption 1", "id": "p1", "likeCount": 1}
        ]}}}),
        "{whole}"
    );

    // Sent by its APQ hash (registered by a first request): split the same way.
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let apq = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    for body in [
        json!({"query": query, "variables": {"id": "1"}, "extensions": apq}),
        json!({"variables": {"id": "1"}, "extensions": apq}),
    ] {
        let text = reqwest::Client::new()
            .post(&url)
            .header("accept", "multipart/mixed;deferSpec=20220824")
            .json(&body)
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body");
        assert!(text.contains(r#""hasNext":true"#), "{text}");
        assert!(text.contains(r#""label":"likes""#), "{text}");
    }

    // Deeply nested fragments with @defer meet the operation limits before any split:
    // a clear refusal, and the gateway keeps serving.
    let deep = format!(
        "query Deep {{ user(id: \"1\") {{ {} username ... @defer {{ username }} }}{} }} }}",
        "... on User { ".repeat(3000),
        " }".repeat(2999)
    );
    let refused = reqwest::Client::new()
        .post(&url)
        .header("accept", "multipart/mixed;deferSpec=20220824")
        .json(&json!({"query": deep}))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 400);
    let body: Value = refused.json().await.expect("a JSON refusal");
    assert!(
        body["errors"][0]["extensions"]["code"].is_string(),
        "{body}"
    );

    // A selection set left empty by the split is an empty object at first. The deferred
    // `username` comes from its own entity fetch to users (which this mock answers with
    // `user-<id>`, where its root field says "ann").
    let users_before = before("users");
    let only = r#"query Only($id: ID!) { user(id: $id) { ... @defer { username } } }"#;
    let body = reqwest::Client::new()
        .post(&url)
        .header("accept", "multipart/mixed;deferSpec=20220824")
        .json(&json!({"query": only, "variables": {"id": "1"}}))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains(r#"{"data":{"user":{}},"hasNext":true}"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"{"hasNext":true,"incremental":[{"data":{"username":"user-1"},"path":["user"]}]}"#
        ),
        "{body}"
    );
    assert!(body.contains(r#"{"hasNext":false}"#), "{body}");
    let users = sent("users")[users_before..].to_vec();
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(!users[0].contains("username"), "{users:?}");
    assert!(
        users[1].contains("_entities") && users[1].contains("username"),
        "{users:?}"
    );

    // In a batch item (as over a WebSocket) there is no incremental delivery: the
    // operation is planned with its `@defer`s, the parts run one after the other, and
    // the whole result comes at once (here too, `username` from the entity fetch).
    let mut config = dev();
    config.batching.enabled = true;
    let (_batching, batch_url) = real_gateway_with(config, &subgraphs).await;
    let answers = post_json(
        &batch_url,
        json!([{"query": only, "variables": {"id": "1"}}, {"query": "{ user(id: \"1\") { username } }"}]),
    )
    .await;
    assert_eq!(
        answers,
        json!([{"data": {"user": {"username": "user-1"}}}, {"data": {"user": {"username": "ann"}}}])
    );
}

/// The initial payload leaves before the deferred fragments' fetches have answered: here
/// the likes subgraph holds its answer until the test has read the first part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_payload_is_sent_before_the_deferred_fetches_answer() {
    let mut subgraphs = demo_subgraphs(2, 1).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let requests: Arc<parking_lot::Mutex<Vec<Recorded>>> = Arc::default();
    let app = {
        let (gate, requests) = (gate.clone(), requests.clone());
        axum::Router::new().route(
            "/graphql",
            axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let (gate, requests) = (gate.clone(), requests.clone());
                async move {
                    requests.lock().push(Recorded {
                        headers,
                        body: body.clone(),
                    });
                    let _held = gate.acquire().await;
                    let entities: Vec<Value> = representations(&body)
                        .iter()
                        .enumerate()
                        .map(|(i, _)| json!({"likeCount": i}))
                        .collect();
                    Json(json!({"data": {"_entities": entities}}))
                }
            }),
        )
    };
    let likes = MockSubgraph {
        url: format!("http://{}/graphql", spawn(app).await),
        requests,
    };
    for entry in subgraphs.iter_mut().filter(|(n, _)| *n == "likes") {
        entry.1 = likes.clone();
    }
    // One request at a time: the deferred parts still running keep that place.
    let mut config = dev();
    config.overload.max_in_flight_requests = 1;
    let (_gateway, url) = real_gateway_with(config, &subgraphs).await;
    let plain = json!({"query": r#"{ user(id: "1") { username } }"#});
    let query = r#"{ user(id: "1") { username posts(first: 2) { nodes { id ... @defer { likeCount } } } } }"#;
    let mut response = reqwest::Client::new()
        .post(&url)
        .header("accept", "multipart/mixed;deferSpec=20220824")
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("send");
    let mut body = String::new();
    while !body.contains(r#""hasNext":true}"#) {
        let chunk = response
            .chunk()
            .await
            .expect("read")
            .expect("the first part");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.contains(r#""username":"ann""#), "{body}");
    assert!(!body.contains("likeCount"), "{body}");
    // The deferred fetch goes out (and is held); meanwhile the request still holds its
    // admission place. Released, its fields follow, and the place is free again.
    while likes.count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(likes.count(), 1);
    let refused = post_json(&url, plain.clone()).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "GATEWAY_OVERLOADED",
        "{refused}"
    );
    gate.add_permits(1);
    while let Some(chunk) = response.chunk().await.expect("read") {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let mut served = post_json(&url, plain.clone()).await;
    for _ in 0..200 {
        if served["data"]["user"]["username"] == "ann" {
            break;
        }
        // The body's end and the place's release race this request by a moment.
        tokio::time::sleep(Duration::from_millis(5)).await;
        served = post_json(&url, plain.clone()).await;
    }
    assert_eq!(served["data"]["user"]["username"], "ann", "{served}");
    assert!(
        body.contains(r#"{"data":{"likeCount":1},"path":["user","posts","nodes",1]}"#),
        "{body}"
    );
    assert!(body.ends_with("\r\n-----\r\n"), "{body:?}");
}

/// A client that stops reading loses its subscription once the few buffered events and
/// the socket buffers are full: the gateway does not keep events for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_dropped_as_a_slow_consumer() {
    let subgraph = WsSubgraph::start().await;
    let mut config = dev();
    config.subscriptions.slow_consumer_timeout_ms = 300;
    let gw = TestGateway::start(
        config,
        &[("users", &subgraph.url)],
        vec![("Added", subscription_plan())],
    )
    .await;
    // Subscribed, then never read.
    let _unread = subscribe_with(&gw, None, "text/event-stream").await;
    subgraph.wait_subscribed(1).await;
    let big = "x".repeat(64 * 1024);
    let mut dropped = false;
    for _ in 0..400 {
        subgraph.push(json!({"userAdded": {"name": big}}));
        tokio::time::sleep(Duration::from_millis(5)).await;
        if gw
            .metrics()
            .await
            .contains("portico_subscriptions_slow_consumers_total 1\n")
        {
            dropped = true;
            break;
        }
    }
    for _ in 0..100 {
        if dropped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        dropped = gw
            .metrics()
            .await
            .contains("portico_subscriptions_slow_consumers_total 1\n");
    }
    assert!(dropped, "{}", gw.metrics().await);
    let mut freed = false;
    for _ in 0..100 {
        if gw
            .metrics()
            .await
            .contains("portico_subscriptions_open 0\n")
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "its place is given back");
}
