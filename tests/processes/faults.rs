//! Faults survived, over real processes: the gateway keeps answering while a subgraph
//! process is killed, stopped or restarted, and shuts down cleanly on SIGTERM.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Options, Platform, post, rss_kib};

/// Root fields of four subgraphs (auth, users, posts, comments), none needing data.
const ROOTS: &str = "{ authServiceVersion nobody: userByUsername(username: \"nobody\") { username } post(id: \"1\") { id } comment(id: \"1\") { id } }";

/// The errors of `body`, as (path, code) pairs.
fn errors(body: &Value) -> Vec<(Value, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["path"].clone(),
                        e["extensions"]["code"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The answer when every subgraph is up: auth's version, and three nulls.
fn assert_whole(body: &Value) {
    assert!(body.get("errors").is_none(), "{body}");
    assert!(body["data"]["authServiceVersion"].is_string(), "{body}");
    for field in ["nobody", "post", "comment"] {
        assert_eq!(body["data"][field], Value::Null, "{body}");
    }
}

/// Asks `ROOTS` until the answer is whole again (a restarted subgraph, an open circuit
/// breaker's cool-down), at most `within`; returns how long it took.
async fn until_whole(url: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = post(url, ROOTS).await;
        if status == 200 && body.get("errors").is_none() {
            assert_whole(&body);
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not whole again within {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stopped_or_restarted_subgraph_process_costs_only_its_own_fields() {
    let mut p = Platform::start("subgraph_timeout_ms = 1500\n").await;
    let url = p.url();
    let (status, body) = post(&url, ROOTS).await;
    assert_eq!(status, 200, "{body}");
    assert_whole(&body);

    // posts killed: connections refused. Its field is null with an error at its path;
    // the other three subgraphs' fields are served.
    p.subgraph("posts").kill().await;
    let (status, body) = post(&url, ROOTS).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["authServiceVersion"].is_string(), "{body}");
    assert_eq!(
        errors(&body),
        vec![(json!(["post"]), "SUBREQUEST_HTTP_ERROR".to_string())],
        "{body}"
    );
    // Queries that do not touch posts are unaffected.
    let (status, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");

    // posts restarted on the same address: whole again, without restarting the gateway.
    p.subgraph("posts").restart().await;
    let took = until_whole(&url, Duration::from_secs(60)).await;
    eprintln!("posts restarted: whole again after {took:?}");

    // comments stopped (SIGSTOP): the kernel still accepts its connections, nothing
    // answers. The request waits for the subgraph timeout (1.5 s), not longer, and
    // answers what the others gave.
    p.subgraph("comments").signal("STOP").await;
    let hung = {
        let url = url.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = post(&url, ROOTS).await;
            (answer, started.elapsed())
        })
    };
    // Meanwhile a request that does not need comments is answered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    let ((status, body), waited) = hung.await.expect("the hung request");
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["authServiceVersion"].is_string(), "{body}");
    assert_eq!(
        errors(&body),
        vec![(json!(["comment"]), "SUBREQUEST_TIMEOUT".to_string())],
        "{body}"
    );
    eprintln!("comments stopped: answered after {waited:?} (subgraph timeout 1.5 s)");

    // comments continued: whole again.
    p.subgraph("comments").signal("CONT").await;
    let took = until_whole(&url, Duration::from_secs(60)).await;
    eprintln!("comments continued: whole again after {took:?}");
}

/// `/ready` of the gateway at `url` (`…/graphql`): its HTTP status, or `None` when
/// nothing answers.
async fn ready(url: &str) -> Option<u16> {
    reqwest::get(url.replace("/graphql", "/ready"))
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_unready_then_finishes_requests_in_flight_and_exits_zero() {
    let mut p = Platform::start("[shutdown]\ndrain_delay_ms = 1500\ngrace_ms = 30000\n").await;
    let url = p.url();
    assert_eq!(ready(&url).await, Some(200));

    // A request in flight: users is stopped, so it waits.
    p.subgraph("users").signal("STOP").await;
    let in_flight = {
        let url = url.clone();
        tokio::spawn(async move {
            post(
                &url,
                "{ nobody: userByUsername(username: \"nobody\") { username } }",
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished());

    p.gateway.signal("TERM").await;
    // Not ready at once, while still serving (the drain delay) ...
    let mut readiness = ready(&url).await;
    for _ in 0..20 {
        if readiness == Some(503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        readiness = ready(&url).await;
    }
    assert_eq!(readiness, Some(503), "/ready turns 503 first");
    let (status, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(status, 200, "served during the drain delay: {body}");

    // ... and the request in flight finishes with its data once users answers.
    p.subgraph("users").signal("CONT").await;
    let (status, body) = in_flight.await.expect("the request in flight");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"data": {"nobody": null}}));

    let exit = tokio::time::timeout(Duration::from_secs(30), p.gateway.child.wait())
        .await
        .expect("the gateway exits after draining")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert_eq!(ready(&url).await, None, "nothing listens any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_what_is_still_running_at_the_grace_deadline_and_exits_zero() {
    let mut p = Platform::start("[shutdown]\ndrain_delay_ms = 0\ngrace_ms = 500\n").await;
    let url = p.url();
    p.subgraph("users").signal("STOP").await;
    let in_flight = {
        let url = url.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(&url)
                .json(&json!({"query": "{ nobody: userByUsername(username: \"nobody\") { username } }"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.gateway.signal("TERM").await;
    let exit = tokio::time::timeout(Duration::from_secs(20), p.gateway.child.wait())
        .await
        .expect("the gateway exits at the deadline, not when users answers")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    let cut = in_flight.await.expect("the request task");
    assert!(
        cut.is_err(),
        "the client sees its connection closed: {cut:?}"
    );
    p.subgraph("users").signal("CONT").await;
}

/// How the stand-in for the posts subgraph misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Misbehaviour {
    /// HTTP 500 with a text body.
    Status500,
    /// HTTP 200, a body that is not JSON.
    NotJson,
    /// HTTP 200, a JSON-looking body that never ends.
    Endless,
}

/// Serves `app` (a subgraph stand-in) in this process; its `/graphql` URL.
async fn serve_stand_in(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stand-in");
    let stand_in = format!("http://{}/graphql", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    stand_in
}

async fn misbehave(
    axum::extract::State(mode): axum::extract::State<
        std::sync::Arc<parking_lot::Mutex<Misbehaviour>>,
    >,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match *mode.lock() {
        Misbehaviour::Status500 => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "upstream exploded",
        )
            .into_response(),
        Misbehaviour::NotJson => "<html>definitely not GraphQL</html>".into_response(),
        Misbehaviour::Endless => {
            let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
            let head = futures::stream::once(async {
                Ok::<_, std::convert::Infallible>(axum::body::Bytes::from_static(
                    b"{\"data\":{\"post\":\"",
                ))
            });
            let tail = futures::stream::repeat_with(move || Ok(chunk.clone()));
            axum::body::Body::from_stream(futures::StreamExt::chain(head, tail)).into_response()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_answering_500_garbage_or_an_endless_body_costs_its_fields_and_bounded_memory() {
    // The stand-in for posts, in this process; the gateway and the other subgraphs are
    // processes of their own.
    let mode = std::sync::Arc::new(parking_lot::Mutex::new(Misbehaviour::Status500));
    let app = axum::Router::new()
        .route("/graphql", axum::routing::post(misbehave))
        .with_state(mode.clone());
    let stand_in = serve_stand_in(app).await;
    let p = Platform::start_with(Options {
        config: "subgraph_timeout_ms = 10000\nsubgraph_max_response_bytes = 1048576\n[retries]\nenabled = false\n[circuit_breaker]\nenabled = false\n",
        elsewhere: vec![("posts", stand_in)],
        ..Options::default()
    })
    .await;
    let url = p.url();
    let query = "{ authServiceVersion post(id: \"1\") { id } }";

    for (misbehaviour, code) in [
        (Misbehaviour::Status500, "SUBREQUEST_HTTP_ERROR"),
        (Misbehaviour::NotJson, "SUBREQUEST_HTTP_ERROR"),
        (Misbehaviour::Endless, "SUBREQUEST_RESPONSE_TOO_LARGE"),
    ] {
        *mode.lock() = misbehaviour;
        let (status, body) = post(&url, query).await;
        assert_eq!(status, 200, "{misbehaviour:?}: {body}");
        assert!(
            body["data"]["authServiceVersion"].is_string(),
            "{misbehaviour:?}: {body}"
        );
        assert_eq!(
            body["data"]["post"],
            Value::Null,
            "{misbehaviour:?}: {body}"
        );
        assert_eq!(
            errors(&body),
            vec![(json!(["post"]), code.to_string())],
            "{misbehaviour:?}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(!message.contains("127.0.0.1"), "no subgraph URL: {message}");
    }

    // Memory: 64 endless bodies, 16 at a time, each read up to the 1 MiB cap and dropped.
    *mode.lock() = Misbehaviour::Endless;
    let pid = p.gateway.pid();
    let before = rss_kib(pid);
    for _ in 0..4 {
        let round: Vec<_> = (0..16)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { post(&url, query).await })
            })
            .collect();
        for answer in round {
            let (status, body) = answer.await.expect("a request");
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                errors(&body),
                vec![(json!(["post"]), "SUBREQUEST_RESPONSE_TOO_LARGE".to_string())]
            );
        }
    }
    let after = rss_kib(pid);
    eprintln!(
        "gateway RSS around 64 endless subgraph bodies (cap 1 MiB): {} -> {} MiB",
        before / 1024,
        after / 1024
    );
    // Unbounded reading would have taken gigabytes in the 10 s timeout; with the cap the
    // gateway holds at most 16 × 1 MiB of body at a time.
    assert!(
        after < before + 128 * 1024,
        "memory bounded by the cap: {before} -> {after} KiB"
    );

    // The gateway is still answering, and the other subgraphs' fields were never lost.
    let (status, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listen_moves_ready_and_metrics_off_the_public_port() {
    let admin = portico_kit::testing::free_port();
    let p = Platform::start(&format!("admin_listen = \"127.0.0.1:{admin}\"\n")).await;
    let public = p.url().replace("/graphql", "");
    let admin = format!("http://127.0.0.1:{admin}");
    let status = |url: String| async move {
        reqwest::get(url)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    // Public: GraphQL and liveness only.
    let (code, body) = post(&p.url(), "{ authServiceVersion }").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(format!("{public}/health")).await, 200);
    assert_eq!(status(format!("{public}/metrics")).await, 404);
    assert_eq!(status(format!("{public}/ready")).await, 404);
    // Admin: readiness, metrics (counting the public request) and liveness.
    assert_eq!(status(format!("{admin}/ready")).await, 200);
    assert_eq!(status(format!("{admin}/health")).await, 200);
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("admin metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("portico_http_requests_total{status=\"200\"} 1"),
        "{metrics}"
    );
    assert_eq!(status(format!("{admin}/graphql")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_on_a_dead_subgraph_process_and_closes_once_it_is_back() {
    let mut p = Platform::start(
        "[retries]\nenabled = false\n[circuit_breaker]\nenabled = true\nfailure_threshold = 3\ncooldown_ms = 1500\n",
    )
    .await;
    let url = p.url();
    let query = "{ authServiceVersion post(id: \"1\") { id } }";
    p.subgraph("posts").kill().await;
    // Three failures reach the dead subgraph (connection refused) ...
    for _ in 0..3 {
        let (_, body) = post(&url, query).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains("HTTP fetch failed from 'posts'"), "{body}");
    }
    // ... then the gateway stops calling it, and says so.
    let (status, body) = post(&url, query).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["authServiceVersion"].is_string(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("circuit is open"), "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["post"]), "{body}");
    let metrics = super::metrics(&url).await;
    assert!(
        metrics.contains("portico_subgraph_circuit_open{subgraph=\"posts\"} 1"),
        "{metrics}"
    );
    // Back: after the cool-down a probe goes through and the circuit closes.
    p.subgraph("posts").restart().await;
    let took = until_whole(&url, Duration::from_secs(30)).await;
    eprintln!("posts back: circuit closed, whole again after {took:?} (cool-down 1.5 s)");
    let metrics = super::metrics(&url).await;
    assert!(
        metrics.contains("portico_subgraph_circuit_open{subgraph=\"posts\"} 0"),
        "{metrics}"
    );
}

/// A stand-in for posts that fails every other request (HTTP 503, which a query may be
/// retried on, on the 1st, 3rd, …)
/// and otherwise answers `{"data": {"post": null}}`; it counts the requests.
async fn every_other_fails(
    axum::extract::State(count): axum::extract::State<
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    >,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if n % 2 == 1 {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "flaky").into_response();
    }
    axum::Json(json!({"data": {"post": null}})).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_query_is_retried_and_a_failed_mutation_never_is() {
    use std::sync::atomic::Ordering::SeqCst;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/graphql", axum::routing::post(every_other_fails))
        .with_state(count.clone());
    let stand_in = serve_stand_in(app).await;
    // Retries as configured by default (2 at most, jittered backoff), with a budget
    // that allows one retry per request; no breaker in the way.
    let p = Platform::start_with(Options {
        config: "[retries]\nbudget_ratio = 1.0\n[circuit_breaker]\nenabled = false\n",
        elsewhere: vec![("posts", stand_in)],
        ..Options::default()
    })
    .await;
    let url = p.url();

    // A query: the first attempt gets 503, the retry answers; the client sees no error.
    for round in 1..=3 {
        let before = count.load(SeqCst);
        let (status, body) = post(&url, "{ post(id: \"1\") { id } }").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "round {round}: {body}");
        assert_eq!(body["data"]["post"], Value::Null, "{body}");
        assert_eq!(count.load(SeqCst) - before, 2, "one failure and one retry");
    }

    // A mutation: sent once, its failure reported, never retried.
    let (_, body) = super::post_as(
        &url,
        None,
        "mutation { register(username: \"rita\", email: \"rita@example.com\", password: \"Correct-horse-9\") { accessToken } }",
        json!({}),
    )
    .await;
    let token = body["data"]["register"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("registered: {body}"))
        .to_string();
    assert_eq!(count.load(SeqCst) % 2, 0, "the next request to posts fails");
    let before = count.load(SeqCst);
    let (status, body) = super::post_as(
        &url,
        Some(&token),
        "mutation { createPost(caption: \"once\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        errors(&body),
        vec![(json!(["createPost"]), "SUBREQUEST_HTTP_ERROR".to_string())],
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count.load(SeqCst) - before, 1, "a mutation is sent once");
    let metrics = super::metrics(&url).await;
    assert!(
        metrics.contains("portico_subgraph_retries_total{subgraph=\"posts\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_subscriptions_with_a_reason_and_the_gateway_exits() {
    let mut p = Platform::start("[shutdown]\ndrain_delay_ms = 0\ngrace_ms = 20000\n").await;
    let url = p.url();
    let (status, body) = super::post_as(
        &url,
        None,
        "mutation { register(username: \"alice\", email: \"alice@example.com\", password: \"Correct-horse-9\") { accessToken } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["register"]["accessToken"]
        .as_str()
        .expect("token")
        .to_string();
    let mut stream = reqwest::Client::new()
        .post(&url)
        .header("accept", "text/event-stream")
        .bearer_auth(&token)
        .json(&json!({"query": "subscription { notificationAdded { kind } }"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(stream.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.gateway.signal("TERM").await;
    let mut text = String::new();
    while !text.contains("event: complete") {
        let chunk = tokio::time::timeout(Duration::from_secs(15), stream.chunk())
            .await
            .expect("the subscription ends before the grace deadline")
            .expect("chunk");
        let Some(chunk) = chunk else { break };
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("SUBSCRIPTION_ENDED"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(text.contains("event: complete"), "{text}");
    let exit = tokio::time::timeout(Duration::from_secs(30), p.gateway.child.wait())
        .await
        .expect("the gateway exits")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}
