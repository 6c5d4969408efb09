//! Benchmark (not a test): latency and throughput of plan-cache-hit requests through
//! the gateway over real HTTP, against mock subgraphs on loopback.
//!
//! 1. A hand-written plan: one root fetch plus one batched entity fetch of 20 entities.
//! 2. The real planner on the demo-shaped supergraph (`tests/fixtures/supergraph.graphql`):
//!    a profile with 10 posts, each with 5 comments and their authors, `likeCount` and
//!    `likedByMe` — 5 subgraph requests per client request.
//!
//! Run: `cargo bench -p portico-gateway --bench plan_cache_hit` (add `-- 5000` for
//! more iterations).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apollo_compiler::Schema;
use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::validation::Valid;
use axum::Json;
use portico_federation::plan::{
    FetchNode, OperationKind, PathSegment, PlanNode, QueryPlan, Selection,
};
use portico_gateway::{Gateway, GatewayConfig, PlanningError, QueryPlanner, SubgraphInfo};
use serde_json::{Value, json};

struct Fixed {
    schema: Valid<Schema>,
    subgraphs: Vec<SubgraphInfo>,
    plan: QueryPlan,
}

impl QueryPlanner for Fixed {
    fn api_schema(&self) -> &Valid<Schema> {
        &self.schema
    }
    fn subgraphs(&self) -> Vec<SubgraphInfo> {
        self.subgraphs.clone()
    }
    fn plan(
        &self,
        _: &Valid<ExecutableDocument>,
        _: Option<&str>,
        _: &BTreeSet<String>,
    ) -> Result<QueryPlan, PlanningError> {
        Ok(self.plan.clone())
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn field(name: &str) -> Selection {
    Selection::Field {
        name: name.into(),
        alias: None,
        selections: vec![],
    }
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(iterations));
    runtime.block_on(run_demo(iterations));
}

async fn mock(resolver: fn(&Value) -> Value) -> String {
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move |Json(body): Json<Value>| async move { Json(resolver(&body)) }),
    );
    format!("{}/graphql", serve(app).await)
}

fn reps(body: &Value) -> Vec<Value> {
    body["variables"]["representations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn run_demo(iterations: usize) {
    let users = mock(|body| {
        if body["query"]
            .as_str()
            .is_some_and(|q| q.contains("_entities"))
        {
            let e: Vec<Value> = reps(body)
                .iter()
                .map(|r| json!({"username": format!("user-{}", r["id"].as_str().unwrap_or(""))}))
                .collect();
            json!({"data": {"_entities": e}})
        } else {
            json!({"data": {"user": {"__typename": "User", "id": "1", "username": "ann"}}})
        }
    })
    .await;
    let posts = mock(|body| {
        let e: Vec<Value> = reps(body)
            .iter()
            .map(|_| {
                let nodes: Vec<Value> = (0..10)
                    .map(|i| json!({"__typename": "Post", "id": format!("p{i}"), "caption": "c"}))
                    .collect();
                json!({"posts": {"nodes": nodes}})
            })
            .collect();
        json!({"data": {"_entities": e}})
    })
    .await;
    let likes = mock(|body| {
        let e: Vec<Value> = reps(body)
            .iter()
            .map(|_| json!({"likeCount": 3, "likedByMe": true}))
            .collect();
        json!({"data": {"_entities": e}})
    })
    .await;
    let comments = mock(|body| {
        let e: Vec<Value> = reps(body)
            .iter()
            .map(|_| {
                let nodes: Vec<Value> = (0..5)
                    .map(|i| json!({"body": "b", "author": {"__typename": "User", "id": format!("u{i}")}}))
                    .collect();
                json!({"comments": {"nodes": nodes}})
            })
            .collect();
        json!({"data": {"_entities": e}})
    })
    .await;
    let mut config = GatewayConfig::default();
    // Measure the request path, not the budget: limits off (see benches/limiter.rs).
    config.rate_limit.enabled = false;
    config.cost.max_cost = f64::MAX;
    for (name, url) in [
        ("users", users),
        ("posts", posts),
        ("likes", likes),
        ("comments", comments),
    ] {
        config.subgraphs.insert(
            name.into(),
            portico_gateway::config::SubgraphConfig {
                url: Some(url),
                ..Default::default()
            },
        );
    }
    let gateway = Gateway::new(
        config,
        include_str!("../tests/fixtures/supergraph.graphql"),
        portico_trust::TrustSigner::generate(),
    )
    .expect("gateway");
    let url = format!("{}/graphql", serve(gateway.router()).await);
    let body = json!({"query": "query P($id: ID!) { user(id: $id) { username posts(first: 10) { nodes { caption comments(first: 5) { nodes { body author { username } } } likeCount likedByMe } } } }", "variables": {"id": "1"}}).to_string();
    measure(
        "demo profile (real planner, 5 subgraph requests each)",
        &url,
        &body,
        iterations,
    )
    .await;
    let (hits, misses) = gateway.plan_cache_stats();
    println!("plan cache: {hits} hits, {misses} misses");
}

async fn measure(name: &str, url: &str, body: &str, iterations: usize) {
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let first: Value = send().await.expect("first").json().await.expect("json");
    assert!(first.get("errors").is_none(), "{first}");
    for _ in 0..200 {
        let _ = send().await.expect("warm-up").bytes().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let _ = send().await.expect("request").bytes().await.expect("body");
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name}: sequential n={iterations} mean={mean:?} p50={:?} p90={:?} p99={:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
    let concurrency = 32;
    let per_task = (iterations * 2) / concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.to_string();
            let body = body.to_string();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request");
                    let _ = r.bytes().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "{name}: {:.0} requests/s with {concurrency} concurrent clients ({} requests in {elapsed:?})",
        (per_task * concurrency) as f64 / elapsed.as_secs_f64(),
        per_task * concurrency
    );
}

async fn run(iterations: usize) {
    let posts: Vec<Value> = (0..20)
        .map(|i| json!({"__typename": "Post", "id": format!("p{i}"), "title": format!("Post {i}")}))
        .collect();
    let posts_url = serve(axum::Router::new().route(
        "/graphql",
        axum::routing::post(move |_: Json<Value>| {
            let posts = posts.clone();
            async move { Json(json!({"data": {"posts": posts}})) }
        }),
    ))
    .await;
    let likes_url = serve(axum::Router::new().route(
        "/graphql",
        axum::routing::post(|Json(body): Json<Value>| async move {
            let n = body["variables"]["representations"]
                .as_array()
                .map_or(0, Vec::len);
            let entities: Vec<Value> = (0..n).map(|i| json!({"likeCount": i})).collect();
            Json(json!({"data": {"_entities": entities}}))
        }),
    ))
    .await;
    let schema = Schema::parse_and_validate(
        "type Query { posts: [Post!]! } type Post { id: ID! title: String! likeCount: Int! }",
        "api.graphql",
    )
    .expect("schema");
    let plan = QueryPlan {
        node: Some(PlanNode::Sequence {
            nodes: vec![
                PlanNode::Fetch(FetchNode {
                    service_name: "posts".into(),
                    requires: None,
                    variable_usages: vec![],
                    operation: "{posts{__typename id title}}".into(),
                    operation_kind: OperationKind::Query,
                    operation_name: None,
                    input_rewrites: vec![],
                    output_rewrites: vec![],
                    context: None,
                }),
                PlanNode::Flatten {
                    path: vec![PathSegment::Key("posts".into()), PathSegment::List],
                    node: Box::new(PlanNode::Fetch(FetchNode {
                        service_name: "likes".into(),
                        requires: Some(vec![Selection::InlineFragment {
                            type_condition: Some("Post".into()),
                            selections: vec![field("__typename"), field("id")],
                        }]),
                        variable_usages: vec![],
                        operation: "query($representations:[_Any!]!){_entities(representations:$representations){...on Post{likeCount}}}".into(),
                        operation_kind: OperationKind::Query,
                        operation_name: None,
                        input_rewrites: vec![],
                        output_rewrites: vec![],
                        context: None,
                    })),
                },
            ],
        }),
    };
    let planner = Fixed {
        schema,
        subgraphs: vec![
            SubgraphInfo {
                name: "posts".into(),
                url: format!("{posts_url}/graphql"),
            },
            SubgraphInfo {
                name: "likes".into(),
                url: format!("{likes_url}/graphql"),
            },
        ],
        plan,
    };
    let mut config = GatewayConfig::default();
    config.rate_limit.enabled = false;
    let gateway = Gateway::with_planner(
        config,
        Arc::new(planner),
        portico_trust::TrustSigner::generate(),
    )
    .expect("gateway");
    let url = format!("{}/graphql", serve(gateway.router()).await);
    let client = reqwest::Client::new();
    let body = json!({"query": "{ posts { title likeCount } }"}).to_string();
    let send = || {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    for _ in 0..200 {
        let r = send().await.expect("warm-up");
        assert!(r.status().is_success());
        let _ = r.bytes().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let r = send().await.expect("request");
        let _ = r.bytes().await.expect("body");
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "sequential plan-cache-hit requests: n={iterations} mean={mean:?} p50={:?} p90={:?} p99={:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );

    let concurrency = 32;
    let total = iterations * 2;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / concurrency {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "throughput with {concurrency} concurrent clients: {:.0} requests/s ({} requests in {elapsed:?}; each = 2 subgraph requests)",
        total as f64 / elapsed.as_secs_f64(),
        total / concurrency * concurrency
    );
    let (hits, misses) = gateway.plan_cache_stats();
    println!("plan cache: {hits} hits, {misses} misses");
}
