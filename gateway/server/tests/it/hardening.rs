//! Hardening against misbehaving subgraphs, over real sockets (issue 12): a subgraph
//! cannot make the gateway buffer more than its response size limit. Some fake subgraphs
//! here are written at the socket level, to send what a well-behaved HTTP server never
//! would (a `Content-Length` it does not honour, an endless chunked body).

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Long enough that no test can pass by waiting for it: a subgraph or request timeout
/// never explains an outcome here.
const NEVER_MS: u64 = 600_000;
/// How long a test waits for an answer before failing instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A production-mode config whose timeouts never fire during a test.
fn patient() -> GatewayConfig {
    GatewayConfig {
        subgraph_timeout_ms: NEVER_MS,
        request_timeout_ms: NEVER_MS,
        // These tests send identical queries at once to fill caps and queues;
        // deduplication would fold them into one request (tested on its own below).
        deduplication: portico_gateway::config::DeduplicationConfig {
            enabled: false,
            requests: false,
        },
        ..GatewayConfig::default()
    }
}

/// Reads one HTTP/1.1 request (head, then a `Content-Length` body) from `stream`.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut wanted = None;
    loop {
        if wanted.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            wanted = Some(end + 4 + length);
        }
        if wanted.is_some_and(|w| buf.len() >= w) {
            return Some(());
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

type Respond = Arc<dyn Fn(TcpStream) -> BoxFuture<'static, ()> + Send + Sync>;

/// A subgraph at the socket level: every connection's first request is answered by
/// `respond`, which owns the socket from then on. Its URL.
async fn raw_subgraph(respond: Respond) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_some() {
                    respond(stream).await;
                }
            });
        }
    });
    format!("http://{addr}/graphql")
}

/// One chunk of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

const CHUNKED_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";

/// An `_entities` answer for one representation whose review body is `size` bytes.
fn big_reviews(size: usize) -> Value {
    json!({"data": {"_entities": [{"reviews": [{"body": "x".repeat(size)}]}]}})
}

/// products → (reviews ∥ inventory): the reviews fetch may fail while inventory answers.
fn reviews_and_prices_plan() -> QueryPlan {
    seq(vec![
        fetch("products", "{ topProducts { __typename upc name } }"),
        PlanNode::Parallel {
            nodes: vec![
                entity_fetch(
                    "reviews",
                    "Product",
                    &["upc"],
                    &["topProducts", "@"],
                    "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{reviews{body}}}}",
                ),
                entity_fetch(
                    "inventory",
                    "Product",
                    &["upc"],
                    &["topProducts", "@"],
                    "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{price}}}",
                ),
            ],
        },
    ])
}

const REVIEWS_AND_PRICES: &str = "{ topProducts { name price reviews { body } } }";

/// A gateway over products, inventory (both well-behaved) and `reviews_url`.
async fn gateway_with_reviews_at(config: GatewayConfig, reviews_url: &str) -> TestGateway {
    let products = MockSubgraph::start(products_subgraph(json!([product("1")]))).await;
    let inventory = MockSubgraph::start(|body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|_| json!({"price": 7}))
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    TestGateway::start(
        config,
        &[
            ("products", &products.url),
            ("inventory", &inventory.url),
            ("reviews", reviews_url),
        ],
        vec![("", reviews_and_prices_plan())],
    )
    .await
}

/// Asks for reviews and prices; the answer, which must come before `HANG_GUARD`.
async fn ask_reviews_and_prices(gw: &TestGateway) -> (StatusCode, Value) {
    tokio::time::timeout(HANG_GUARD, gw.post(json!({"query": REVIEWS_AND_PRICES})))
        .await
        .expect("the gateway answers without waiting for a timeout")
}

/// `body` as text, cut to a readable length for assertion messages.
fn short(body: &Value) -> String {
    let mut text = body.to_string();
    if text.len() > 600 {
        let mut end = 600;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// The response of a plan whose reviews fetch was refused as too large: everything else
/// answered, one error naming the subgraph and the limit.
fn assert_reviews_too_large(case: &str, status: StatusCode, body: &Value, limit: usize) {
    let body_text = short(body);
    assert_eq!(status, StatusCode::OK, "{case}: {body_text}");
    assert_eq!(
        body["data"],
        json!({"topProducts": [{"name": "name 1", "price": 7, "reviews": null}]}),
        "{case}: {body_text}"
    );
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{case}: {body_text}");
    assert_eq!(
        errors[0]["extensions"]["code"], "SUBREQUEST_RESPONSE_TOO_LARGE",
        "{case}: {body_text}"
    );
    assert_eq!(
        errors[0]["extensions"]["serviceName"], "reviews",
        "{case}: {body_text}"
    );
    assert_eq!(
        errors[0]["message"],
        format!("response of subgraph 'reviews' exceeds the limit of {limit} bytes"),
        "{case}: {body_text}"
    );
}

#[tokio::test]
async fn a_subgraph_redirect_is_never_followed() {
    // Where the redirect points: it must never see the trust token or the identity.
    let elsewhere =
        MockSubgraph::start(|_| json!({"data": {"_entities": [{"reviews": []}]}})).await;
    let location = elsewhere.url.clone();
    let redirecting = raw_subgraph(Arc::new(move |mut stream: TcpStream| {
        let location = location.clone();
        Box::pin(async move {
            let head = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.flush().await;
        })
    }))
    .await;
    let gw = gateway_with_reviews_at(dev(), &redirecting).await;
    let (status, body) = ask_reviews_and_prices(&gw).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"topProducts": [{"name": "name 1", "price": 7, "reviews": null}]}),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "SUBREQUEST_HTTP_ERROR",
        "{body}"
    );
    assert_eq!(elsewhere.count(), 0, "the redirect was not followed");
}

#[tokio::test]
async fn an_oversized_subgraph_response_fails_only_its_fetch() {
    const LIMIT: usize = 64 * 1024;
    let mut config = patient();
    config.subgraph_max_response_bytes = LIMIT;

    // A complete body with a truthful Content-Length, twice the limit.
    let honest = MockSubgraph::start(|_| big_reviews(2 * LIMIT)).await;
    // A Content-Length of 1 GiB, then a few bytes and silence: refused on the header
    // alone (waiting for the body would wait for the timeout).
    let withheld = raw_subgraph(Arc::new(|mut stream: TcpStream| {
        Box::pin(async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n{\"data\":";
            let _ = stream.write_all(head.as_bytes()).await;
            std::future::pending::<()>().await;
            drop(stream);
        })
    }))
    .await;
    // No Content-Length: a chunked, complete and valid GraphQL response over the limit.
    let chunked = raw_subgraph(Arc::new(|mut stream: TcpStream| {
        Box::pin(async move {
            let text = big_reviews(2 * LIMIT).to_string();
            let mut out = CHUNKED_HEAD.to_vec();
            for part in text.as_bytes().chunks(4096) {
                out.extend(chunk(part));
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = stream.write_all(&out).await;
            let _ = stream.flush().await;
        })
    }))
    .await;

    for (case, url) in [
        ("content-length", honest.url.as_str()),
        ("content-length, body withheld", withheld.as_str()),
        ("chunked", chunked.as_str()),
    ] {
        let gw = gateway_with_reviews_at(config.clone(), url).await;
        let (status, body) = ask_reviews_and_prices(&gw).await;
        assert_reviews_too_large(case, status, &body, LIMIT);
    }

    // The same bodies pass under a per-subgraph limit that fits them.
    let mut roomy = config.clone();
    roomy.subgraphs.insert(
        "reviews".into(),
        portico_gateway::config::SubgraphConfig {
            max_response_bytes: Some(4 * LIMIT),
            ..Default::default()
        },
    );
    for (case, url) in [("content-length", &honest.url), ("chunked", &chunked)] {
        let gw = gateway_with_reviews_at(roomy.clone(), url).await;
        let (status, body) = ask_reviews_and_prices(&gw).await;
        assert_eq!(status, StatusCode::OK, "{case}: {}", short(&body));
        assert!(body.get("errors").is_none(), "{case}: {}", short(&body));
        assert_eq!(
            body["data"]["topProducts"][0]["reviews"][0]["body"]
                .as_str()
                .map(str::len),
            Some(2 * LIMIT),
            "{case}"
        );
    }
}

#[tokio::test]
async fn an_endless_subgraph_body_is_cut_off_at_the_limit_and_its_connection_closed() {
    const LIMIT: usize = 256 * 1024;
    /// The fake stops writing (and keeps the connection open) after this much: a gateway
    /// that read on would wait here for its timeout.
    const PAUSE_AFTER: usize = 256 * 1024 * 1024;
    let written = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(tokio::sync::Notify::new());
    let url = {
        let (written, closed) = (written.clone(), closed.clone());
        raw_subgraph(Arc::new(move |mut stream: TcpStream| {
            let (written, closed) = (written.clone(), closed.clone());
            Box::pin(async move {
                let mut out = CHUNKED_HEAD.to_vec();
                out.extend(chunk(b"{\"data\":"));
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                // JSON whitespace forever: always a valid prefix, never a complete value.
                let spaces = chunk(&[b' '; 16 * 1024]);
                while written.load(Ordering::SeqCst) < PAUSE_AFTER {
                    if stream.write_all(&spaces).await.is_err() {
                        // Remembered by `Notify` when nobody waits yet.
                        closed.notify_one();
                        return;
                    }
                    written.fetch_add(spaces.len(), Ordering::SeqCst);
                }
                std::future::pending::<()>().await;
            })
        }))
        .await
    };
    let mut config = patient();
    config.subgraph_max_response_bytes = LIMIT;
    let gw = gateway_with_reviews_at(config, &url).await;
    let (status, body) = ask_reviews_and_prices(&gw).await;
    assert_reviews_too_large("endless", status, &body, LIMIT);

    // The gateway dropped the connection instead of reading on: the fake's next write
    // fails long before it would pause.
    tokio::time::timeout(HANG_GUARD, closed.notified())
        .await
        .expect("the gateway closes the subgraph connection");
    assert!(written.load(Ordering::SeqCst) < PAUSE_AFTER);
}

// ---------------------------------------------------------------- subgraph errors

/// Extensions a subgraph should never show a client, and a claim to be another service.
fn leaky_extensions() -> Value {
    json!({
        "code": "INTERNAL",
        "reason": "DB_DOWN",
        "stacktrace": ["at reviews::db::load (db.rs:12)"],
        "sql": "SELECT * FROM reviews WHERE product = $1",
        "host": "reviews-db-1.internal:5432",
        "serviceName": "payments"
    })
}

/// Products answers with data and a root error; reviews with one entity error.
async fn leaky_gateway(config: GatewayConfig) -> TestGateway {
    let products = MockSubgraph::start(|_| {
        json!({
            "data": {"topProducts": [product("1")]},
            "errors": [{"message": "connection to 10.0.0.7 refused", "path": ["topProducts", 0, "price"],
                        "locations": [{"line": 1, "column": 3}], "extensions": leaky_extensions()}]
        })
    })
    .await;
    let reviews = MockSubgraph::start(|_| {
        json!({
            "data": {"_entities": [{"reviews": null}]},
            "errors": [{"message": "pq: relation \"reviews\" does not exist", "path": ["_entities", 0, "reviews"],
                        "extensions": leaky_extensions()}]
        })
    })
    .await;
    TestGateway::start(
        config,
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", top_products_plan())],
    )
    .await
}

#[tokio::test]
async fn subgraph_error_extensions_are_allowlisted_outside_dev_mode() {
    let with = |allow: &[&str], redact_message: bool, dev: bool| GatewayConfig {
        dev,
        subgraph_errors: portico_gateway::config::SubgraphErrorsConfig {
            allow_extensions: allow.iter().map(|s| s.to_string()).collect(),
            redact_message,
            expose_service_name: false,
        },
        ..GatewayConfig::default()
    };
    let named = GatewayConfig {
        subgraph_errors: portico_gateway::config::SubgraphErrorsConfig {
            expose_service_name: true,
            ..Default::default()
        },
        ..GatewayConfig::default()
    };
    // Every key the subgraph sent but its claim to be another service.
    let unnamed = || {
        let mut e = leaky_extensions();
        e.as_object_mut().map(|o| o.remove("serviceName"));
        e
    };
    let everything = |service: &str| {
        let mut e = leaky_extensions();
        e["serviceName"] = json!(service);
        e
    };
    let cases = [
        (
            "production defaults",
            GatewayConfig::default(),
            Some([
                "connection to 10.0.0.7 refused",
                "pq: relation \"reviews\" does not exist",
            ]),
            [json!({"code": "INTERNAL"}), json!({"code": "INTERNAL"})],
        ),
        (
            "subgraph names exposed",
            named,
            None,
            [
                json!({"code": "INTERNAL", "serviceName": "products"}),
                json!({"code": "INTERNAL", "serviceName": "reviews"}),
            ],
        ),
        (
            "allowlist, messages redacted",
            with(&["code", "reason"], true, false),
            Some(["subgraph error (redacted)", "subgraph error (redacted)"]),
            [
                json!({"code": "INTERNAL", "reason": "DB_DOWN"}),
                json!({"code": "INTERNAL", "reason": "DB_DOWN"}),
            ],
        ),
        (
            "nothing allowed",
            with(&[], false, false),
            None,
            [Value::Null, Value::Null],
        ),
        (
            "every key",
            with(&["*"], false, false),
            None,
            [unnamed(), unnamed()],
        ),
        (
            "a subgraph's own allowlist",
            {
                let mut config = GatewayConfig::default();
                config.subgraphs.insert(
                    "reviews".into(),
                    portico_gateway::config::SubgraphConfig {
                        allow_error_extensions: Some(vec!["code".into(), "reason".into()]),
                        ..Default::default()
                    },
                );
                config
            },
            None,
            [
                json!({"code": "INTERNAL"}),
                json!({"code": "INTERNAL", "reason": "DB_DOWN"}),
            ],
        ),
        (
            "dev mode passes everything whatever the rules",
            with(&[], true, true),
            Some([
                "connection to 10.0.0.7 refused",
                "pq: relation \"reviews\" does not exist",
            ]),
            [everything("products"), everything("reviews")],
        ),
    ];
    for (case, config, messages, extensions) in cases {
        let gw = leaky_gateway(config).await;
        let (status, body) = gw
            .post(json!({"query": "{ topProducts { name price reviews { body } } }"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        assert_eq!(
            body["data"],
            json!({"topProducts": [{"name": "name 1", "price": null, "reviews": null}]}),
            "{case}: {body}"
        );
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 2, "{case}: {body}");
        // The root error first (its fetch ran first), then the remapped entity error.
        assert_eq!(
            errors[0]["path"],
            json!(["topProducts", 0, "price"]),
            "{case}"
        );
        assert_eq!(
            errors[1]["path"],
            json!(["topProducts", 0, "reviews"]),
            "{case}"
        );
        for (i, error) in errors.iter().enumerate() {
            assert_eq!(error["extensions"], extensions[i], "{case}: {body}");
            assert!(error.get("locations").is_none(), "{case}: {body}");
            if let Some(messages) = messages {
                assert_eq!(error["message"], messages[i], "{case}: {body}");
            }
        }
    }
}

// ---------------------------------------------------------------- concurrency per subgraph

/// A subgraph that holds every request until the test opens its gate, counting the
/// requests in flight (a handler dropped because its client went away counts down too).
#[derive(Clone)]
struct GatedSubgraph {
    url: String,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

type GateState = (
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::sync::watch::Receiver<bool>,
);

impl GatedSubgraph {
    async fn start() -> Self {
        let (gate, open) = tokio::sync::watch::channel(false);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        async fn handle(
            State((in_flight, max_in_flight, received, mut open)): State<GateState>,
        ) -> Json<Value> {
            struct InFlight(Arc<AtomicUsize>);
            impl Drop for InFlight {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            received.fetch_add(1, Ordering::SeqCst);
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _counted = InFlight(in_flight);
            max_in_flight.fetch_max(now, Ordering::SeqCst);
            let _ = open.wait_for(|open| *open).await;
            Json(json!({"data": {"me": user(1)}}))
        }
        let app = axum::Router::new()
            .route("/graphql", axum::routing::post(handle))
            .with_state((
                in_flight.clone(),
                max_in_flight.clone(),
                received.clone(),
                open,
            ));
        let addr = spawn(app).await;
        Self {
            url: format!("http://{addr}/graphql"),
            in_flight,
            max_in_flight,
            received,
            gate: Arc::new(gate),
        }
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn gated_gateway(config: GatewayConfig, users: &GatedSubgraph) -> TestGateway {
    TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await
}

async fn ask_me(gw: &TestGateway) -> (StatusCode, Value) {
    gw.post(json!({"query": "{ me { name } }"})).await
}

/// Sends `clients` identical `{ me { name } }` queries at once; once `held` requests are
/// in flight at the gated subgraph, waits `settle` for any others to arrive, then opens
/// the gate. Every client must get `User 1`.
async fn ask_all_then_open(gw: &TestGateway, users: &GatedSubgraph, clients: usize, held: usize) {
    let me = (json!({"query": "{ me { name } }"}), Vec::new());
    for body in send_all_then_open(gw, users, &vec![me; clients], held).await {
        assert_eq!(body, json!({"data": {"me": {"name": "User 1"}}}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_to_a_subgraph_never_exceed_its_cap() {
    const CAP: usize = 4;
    const CLIENTS: usize = 40;
    let users = GatedSubgraph::start().await;
    let mut config = patient();
    config.subgraphs.insert(
        "users".into(),
        portico_gateway::config::SubgraphConfig {
            max_concurrent_requests: Some(CAP),
            ..Default::default()
        },
    );
    let gw = gated_gateway(config, &users).await;
    // Let the cap fill, then give any request beyond it time to arrive (it would raise
    // the maximum) before opening the gate.
    ask_all_then_open(&gw, &users, CLIENTS, CAP).await;
    assert_eq!(users.max_in_flight(), CAP);
    assert_eq!(users.received.load(Ordering::SeqCst), CLIENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_queries_share_one_subgraph_request() {
    const CLIENTS: usize = 40;
    let users = GatedSubgraph::start().await;
    let config = GatewayConfig {
        subgraph_timeout_ms: NEVER_MS,
        request_timeout_ms: NEVER_MS,
        // Whole client queries would share first (tested on their own below).
        deduplication: portico_gateway::config::DeduplicationConfig {
            enabled: true,
            requests: false,
        },
        ..GatewayConfig::default()
    };
    let gw = gated_gateway(config, &users).await;
    // The first request is held at the subgraph; the others, sent at the same time, join
    // it before the gate opens.
    ask_all_then_open(&gw, &users, CLIENTS, 1).await;
    assert_eq!(
        users.received.load(Ordering::SeqCst),
        1,
        "one request for all"
    );
    let metrics = gw.metrics().await;
    let joined = format!(
        "portico_subgraph_deduplicated_total{{subgraph=\"users\"}} {}\n",
        CLIENTS - 1
    );
    assert!(metrics.contains(&joined), "{metrics}");
}

/// A gateway over the gated `users` subgraph that verifies tokens, propagates `x-tenant`
/// to subgraphs, and shares only whole client queries (subgraph-level sharing off, so
/// every execution is one subgraph request).
async fn sharing_gateway(users: &GatedSubgraph, mutation: bool) -> TestGateway {
    sharing_gateway_responding(users, mutation, None).await
}

/// [`sharing_gateway`], with a `respond` rule (`set-cookie`) on `responding` and a second
/// subgraph, `auth`, that no plan here fetches from.
async fn sharing_gateway_responding(
    users: &GatedSubgraph,
    mutation: bool,
    responding: Option<&str>,
) -> TestGateway {
    let mut config = dev();
    config.subgraph_timeout_ms = NEVER_MS;
    config.request_timeout_ms = NEVER_MS;
    config.deduplication = portico_gateway::config::DeduplicationConfig {
        enabled: false,
        requests: true,
    };
    config.jwt = pem_jwt_config();
    let respond = responding
        .map(|name| format!("[subgraphs.{name}]\nrespond = [\"set-cookie\"]\n"))
        .unwrap_or_default();
    config.headers = toml::from_str(&format!(
        "[subgraphs.\"*\"]\npropagate = [{{ named = \"x-tenant\" }}]\n{respond}"
    ))
    .expect("headers config");
    let plan = if mutation {
        let mut plan = seq(vec![fetch("users", "mutation { me { name } }")]);
        if let Some(PlanNode::Sequence { nodes }) = plan.node.as_mut()
            && let Some(PlanNode::Fetch(f)) = nodes.first_mut()
        {
            f.operation_kind = OperationKind::Mutation;
        }
        ("M", plan)
    } else {
        ("", seq(vec![fetch("users", "{ me { name } }")]))
    };
    TestGateway::start(
        config,
        &[
            ("users", &users.url),
            ("auth", "http://127.0.0.1:9/graphql"),
        ],
        vec![plan],
    )
    .await
}

/// Sends every `(body, headers)` at once; once `held` requests are at the gated
/// subgraph, waits for any others to arrive, then opens the gate. Every answer is 200.
async fn send_all_then_open(
    gw: &TestGateway,
    users: &GatedSubgraph,
    requests: &[(Value, Vec<(&str, String)>)],
    held: usize,
) -> Vec<Value> {
    let release = async {
        tokio::time::timeout(HANG_GUARD, async {
            while users.in_flight.load(Ordering::SeqCst) < held {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the subgraph receives requests");
        tokio::time::sleep(Duration::from_millis(300)).await;
        users.open();
    };
    let send_all = futures::future::join_all(requests.iter().map(|(body, headers)| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        async move { gw.post_with(body.clone(), &headers).await }
    }));
    let (answers, ()) = tokio::time::timeout(HANG_GUARD, async { tokio::join!(send_all, release) })
        .await
        .expect("every client is answered");
    answers
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        })
        .collect()
}

fn bearer(sub: &str) -> String {
    let claims = json!({"sub": sub, "iss": "portico-auth", "aud": "portico", "exp": now() + 300});
    format!("Bearer {}", token(JWT_PRIVATE, None, claims))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_client_queries_in_flight_share_one_execution_and_nothing_else_does() {
    const EACH: usize = 8;
    let users = GatedSubgraph::start().await;
    let gw = sharing_gateway(&users, false).await;
    let me = json!({"query": "{ me { name } }"});
    // Five kinds of client: anonymous; alice; bob; anonymous with tenant a, with tenant
    // b; and, differing only in a header no rule propagates, more anonymous ones.
    let (alice, bob) = (bearer("alice"), bearer("bob"));
    let mut requests = Vec::new();
    for _ in 0..EACH {
        requests.push((me.clone(), vec![]));
        requests.push((me.clone(), vec![("authorization", alice.clone())]));
        requests.push((me.clone(), vec![("authorization", bob.clone())]));
        requests.push((me.clone(), vec![("x-tenant", "a".to_string())]));
        requests.push((me.clone(), vec![("x-tenant", "b".to_string())]));
        requests.push((me.clone(), vec![("user-agent", "other".to_string())]));
        // Variables: the same document with other values would differ.
        requests.push((
            json!({
                "query": "query($x: Boolean!) { me @include(if: $x) { name } }",
                "variables": {"x": true},
            }),
            vec![],
        ));
    }
    let answers = send_all_then_open(&gw, &users, &requests, 6).await;
    for body in &answers {
        assert_eq!(body, &json!({"data": {"me": {"name": "User 1"}}}));
    }
    assert_eq!(
        users.received.load(Ordering::SeqCst),
        6,
        "one execution per distinct (operation, variables, identity, propagated headers)"
    );
    let metrics = gw.metrics().await;
    let shared = format!(
        "portico_requests_deduplicated_total {}\n",
        requests.len() - 6
    );
    assert!(metrics.contains(&shared), "{metrics}");

    // Once answered, the same query executes again.
    users.open();
    let (status, _) = gw.post(me.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users.received.load(Ordering::SeqCst), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_fetching_from_a_subgraph_with_respond_rules_is_never_shared() {
    const CLIENTS: usize = 6;
    let me = json!({"query": "{ me { name } }"});
    let requests: Vec<_> = (0..CLIENTS).map(|_| (me.clone(), vec![])).collect();
    // `users` passes `set-cookie` on: each client's response is its own.
    let users = GatedSubgraph::start().await;
    let gw = sharing_gateway_responding(&users, false, Some("users")).await;
    send_all_then_open(&gw, &users, &requests, CLIENTS).await;
    assert_eq!(users.received.load(Ordering::SeqCst), CLIENTS);
    // A rule on a subgraph the plan does not fetch from changes nothing: one execution.
    let users = GatedSubgraph::start().await;
    let gw = sharing_gateway_responding(&users, false, Some("auth")).await;
    send_all_then_open(&gw, &users, &requests, 1).await;
    assert_eq!(users.received.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_client_mutations_are_never_shared() {
    const CLIENTS: usize = 6;
    let users = GatedSubgraph::start().await;
    let gw = sharing_gateway(&users, true).await;
    let body = json!({
        "query": "mutation M { addReview(body: \"x\") { id } }",
        "operationName": "M",
    });
    let requests: Vec<_> = (0..CLIENTS).map(|_| (body.clone(), vec![])).collect();
    send_all_then_open(&gw, &users, &requests, CLIENTS).await;
    assert_eq!(users.received.load(Ordering::SeqCst), CLIENTS);
    assert!(
        gw.metrics()
            .await
            .contains("portico_requests_deduplicated_total 0\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_for_a_subgraph_slot_time_out_cleanly() {
    const CAP: usize = 2;
    const CLIENTS: usize = 12;
    let users = GatedSubgraph::start().await;
    let mut config = patient();
    config.subgraph_max_concurrent_requests = CAP;
    config.subgraph_timeout_ms = 500;
    // How many requests reach the silent subgraph (and count as its failures) depends on
    // scheduling; an open circuit would then answer the last request (seen in CI under
    // load). The breaker has tests of its own.
    config.circuit_breaker.enabled = false;
    let gw = gated_gateway(config, &users).await;

    // The subgraph never answers: every request times out, waiting for a slot or for
    // the subgraph, and the subgraph never sees more than CAP at once. That is read
    // while the first CAP requests are held, before any deadline: once they time out,
    // their handlers count down only when the subgraph's server notices the closed
    // connections, which can come after the next requests take the freed slots (seen
    // once on a loaded machine).
    let clients = futures::future::join_all((0..CLIENTS).map(|_| ask_me(&gw)));
    let held_at_once = async {
        while users.received.load(Ordering::SeqCst) < CAP {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        users.max_in_flight()
    };
    let (answers, held_at_once) = tokio::time::timeout(HANG_GUARD, async {
        futures::future::join(clients, held_at_once).await
    })
    .await
    .expect("every client is answered");
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["data"], json!({"me": null}), "{body}");
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{body}");
        assert_eq!(
            errors[0]["extensions"]["code"], "SUBREQUEST_TIMEOUT",
            "{body}"
        );
        assert_eq!(errors[0]["extensions"]["serviceName"], "users", "{body}");
    }
    assert_eq!(held_at_once, CAP);

    // Every slot came back: with the subgraph answering again, so does the gateway.
    users.open();
    let (status, body) = tokio::time::timeout(HANG_GUARD, ask_me(&gw))
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": {"me": {"name": "User 1"}}}));
    let metrics = gw.metrics().await;
    for line in [
        "portico_subgraph_requests_in_flight{subgraph=\"users\"} 0\n",
        "portico_subgraph_requests_waiting{subgraph=\"users\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

// ---------------------------------------------------------------- retries, circuit breaker

type ScriptState = (Arc<Mutex<Vec<u16>>>, Arc<AtomicUsize>);

/// A subgraph answering from a script: the n-th request gets `script[n]` (an HTTP status;
/// 200 answers `me`), the last entry repeats. Counts requests.
#[derive(Clone)]
struct Scripted {
    url: String,
    script: Arc<Mutex<Vec<u16>>>,
    count: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(script: Vec<u16>) -> Self {
        let script = Arc::new(Mutex::new(script));
        let count = Arc::new(AtomicUsize::new(0));
        let state = (script.clone(), count.clone());
        async fn handle(
            axum::extract::State((script, count)): axum::extract::State<ScriptState>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let n = count.fetch_add(1, Ordering::SeqCst);
            let status = {
                let script = script.lock();
                script.get(n).or(script.last()).copied().unwrap_or(200)
            };
            if status == 200 {
                axum::Json(json!({"data": {"me": user(1)}})).into_response()
            } else {
                (StatusCode::from_u16(status).expect("status"), "unavailable").into_response()
            }
        }
        let router = axum::Router::new()
            .route("/graphql", axum::routing::post(handle))
            .with_state(state);
        let addr = spawn(router).await;
        Self {
            url: format!("http://{addr}/graphql"),
            script,
            count,
        }
    }

    fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn scripted_gateway(config: GatewayConfig, users: &Scripted, operation: &str) -> TestGateway {
    // The plan says which fetches are mutations (as the planner's do).
    let mut node = fetch("users", operation);
    if let PlanNode::Fetch(f) = &mut node
        && operation.starts_with("mutation")
    {
        f.operation_kind = OperationKind::Mutation;
    }
    TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![node]))],
    )
    .await
}

#[tokio::test]
async fn queries_are_retried_when_the_subgraph_could_not_have_acted_mutations_never() {
    // 503, 503, then an answer: the query gets its data after two retries.
    let users = Scripted::start(vec![503, 503, 200]).await;
    let gw = scripted_gateway(patient(), &users, "{ me { name } }").await;
    let (status, body) = gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    assert_eq!(users.requests(), 3);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portico_subgraph_retries_total{subgraph=\"users\"} 2"),
        "{metrics}"
    );

    // Three failures with max_retries = 2: given up after the third request.
    let users = Scripted::start(vec![502]).await;
    let gw = scripted_gateway(patient(), &users, "{ me { name } }").await;
    let (_, body) = gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "SUBREQUEST_HTTP_ERROR",
        "{body}"
    );
    assert_eq!(users.requests(), 3);

    // A mutation is sent once, whatever the answer.
    let users = Scripted::start(vec![503, 200]).await;
    let gw = scripted_gateway(patient(), &users, "mutation { me { name } }").await;
    gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(users.requests(), 1, "a mutation is never retried");

    // A 500 may have been acted on: not retried.
    let users = Scripted::start(vec![500, 200]).await;
    let gw = scripted_gateway(patient(), &users, "{ me { name } }").await;
    gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(users.requests(), 1, "a 500 is not retried");

    // Off: never retried.
    let mut config = patient();
    config.retries.enabled = false;
    let users = Scripted::start(vec![503, 200]).await;
    let gw = scripted_gateway(config, &users, "{ me { name } }").await;
    gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(users.requests(), 1);
}

#[tokio::test]
async fn the_retry_budget_caps_retries_when_a_subgraph_fails_for_everyone() {
    let users = Scripted::start(vec![503]).await;
    // The breaker would stop the calls: this test is about the budget alone.
    let mut config = patient();
    config.circuit_breaker.enabled = false;
    let gw = scripted_gateway(config, &users, "{ me { name } }").await;
    for _ in 0..40 {
        gw.post(json!({"query": "{ me { name } }"})).await;
    }
    // 40 requests; the budget starts at 10 tokens and earns 0.2 per request: at most
    // 10 + 40 × 0.2 = 18 retries, not 80.
    let retries = users.requests().saturating_sub(40);
    assert!(retries <= 18, "{retries} retries");
    assert!(
        retries >= 10,
        "{retries} retries: the saved-up budget is used"
    );
}

#[tokio::test]
async fn an_open_circuit_stops_calling_a_failing_subgraph_then_a_probe_closes_it() {
    let mut config = patient();
    config.retries.enabled = false;
    config.circuit_breaker.failure_threshold = 3;
    config.circuit_breaker.cooldown_ms = 300;
    let users = Scripted::start(vec![500]).await;
    let gw = scripted_gateway(config, &users, "{ me { name } }").await;
    for _ in 0..3 {
        gw.post(json!({"query": "{ me { name } }"})).await;
    }
    assert_eq!(users.requests(), 3);
    // Open: answered at once, saying so, without calling the subgraph.
    let (status, body) = gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("circuit is open"), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["serviceName"], "users",
        "{body}"
    );
    assert_eq!(users.requests(), 3, "not called while open");
    let metric = |gw: &TestGateway| {
        let gw_url = gw.url.clone();
        let http = gw.http.clone();
        async move {
            http.get(format!("{gw_url}/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text")
        }
    };
    assert!(
        metric(&gw)
            .await
            .contains("portico_subgraph_circuit_open{subgraph=\"users\"} 1")
    );
    // After the cool-down the subgraph has recovered: one probe, and the circuit closes.
    *users.script.lock() = vec![200];
    users.count.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    let (_, body) = gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    assert_eq!(users.requests(), 2);
    assert!(
        metric(&gw)
            .await
            .contains("portico_subgraph_circuit_open{subgraph=\"users\"} 0")
    );

    // A failed probe opens it again.
    *users.script.lock() = vec![500];
    for _ in 0..3 {
        gw.post(json!({"query": "{ me { name } }"})).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = users.requests();
    gw.post(json!({"query": "{ me { name } }"})).await; // the probe, failing
    gw.post(json!({"query": "{ me { name } }"})).await; // open again: not sent
    assert_eq!(users.requests(), before + 1);
}
