//! End-to-end tests of the gateway over real HTTP: mock subgraphs are small axum
//! servers that serve data-driven JSON and record every request, so batching is proved
//! by counting. Plans are hand-written (they are plain data), which tests the executor
//! independently of the planner.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apollo_compiler::Schema;
use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::validation::Valid;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use parking_lot::Mutex;
use portico_federation::plan::{
    FetchNode, OperationKind, PathSegment, PlanNode, QueryPlan, Selection,
};
use portico_gateway::config::GatewayConfig;
use portico_gateway::{Gateway, PlanningError, QueryPlanner, SubgraphInfo};
use portico_trust::{Identity, TrustSigner};
use serde_json::{Value, json};

// ---------------------------------------------------------------- mock subgraphs

type Resolver = Arc<dyn Fn(&Value) -> Value + Send + Sync>;
type MockState = (Resolver, Arc<Mutex<Vec<Recorded>>>, Duration, StatusCode);

#[derive(Clone, Debug)]
struct Recorded {
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct MockSubgraph {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl MockSubgraph {
    async fn start(resolver: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Self {
        Self::start_with(Arc::new(resolver), Duration::ZERO, StatusCode::OK).await
    }

    async fn start_with(resolver: Resolver, delay: Duration, status: StatusCode) -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let state = (resolver, requests.clone(), delay, status);
        async fn handle(
            State((resolver, requests, delay, status)): State<MockState>,
            headers: HeaderMap,
            Json(body): Json<Value>,
        ) -> axum::response::Response {
            requests.lock().push(Recorded {
                headers,
                body: body.clone(),
            });
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if status != StatusCode::OK {
                return (status, "boom").into_response();
            }
            Json(resolver(&body)).into_response()
        }
        let app = axum::Router::new()
            .route("/graphql", axum::routing::post(handle))
            .with_state(state);
        let addr = spawn(app).await;
        Self {
            url: format!("http://{addr}/graphql"),
            requests,
        }
    }

    fn count(&self) -> usize {
        self.requests.lock().len()
    }

    fn last(&self) -> Recorded {
        self.requests.lock().last().cloned().expect("a request")
    }
}

async fn spawn(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn representations(body: &Value) -> Vec<Value> {
    body["variables"]["representations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// ---------------------------------------------------------------- planner

const API_SCHEMA: &str = r#"
type Query {
  me: User
  users: [User!]!
  topProducts(first: Int = 5): [Product!]!
  search: [SearchResult!]!
  node(id: ID!): Node
}
type Mutation { addReview(body: String!): Review }
interface Node { id: ID! }
type User implements Node { id: ID! name: String! username: String reviews: [Review!]! }
type Product implements Node { id: ID! upc: String! name: String price: Int reviews: [Review!] }
type Review implements Node { id: ID! body: String! author: User product: Product }
union SearchResult = User | Product
type Subscription { userAdded: User! }
"#;

/// Plans by operation name, counting how often planning happens.
struct StaticPlanner {
    schema: Valid<Schema>,
    subgraphs: Vec<SubgraphInfo>,
    plans: HashMap<String, QueryPlan>,
    calls: AtomicUsize,
}

impl QueryPlanner for StaticPlanner {
    fn api_schema(&self) -> &Valid<Schema> {
        &self.schema
    }
    fn subgraphs(&self) -> Vec<SubgraphInfo> {
        self.subgraphs.clone()
    }
    fn plan(
        &self,
        _document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        _labels: &BTreeSet<String>,
    ) -> Result<QueryPlan, PlanningError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.plans
            .get(operation_name.unwrap_or(""))
            .cloned()
            .ok_or_else(|| format!("no plan for {operation_name:?}").into())
    }
}

fn fetch(service: &str, operation: &str) -> PlanNode {
    PlanNode::Fetch(FetchNode {
        service_name: service.into(),
        requires: None,
        variable_usages: vec![],
        operation: operation.into(),
        operation_kind: OperationKind::Query,
        operation_name: None,
        input_rewrites: vec![],
        output_rewrites: vec![],
        context: None,
    })
}

fn field(name: &str) -> Selection {
    Selection::Field {
        name: name.into(),
        alias: None,
        selections: vec![],
    }
}

fn entity_fetch(
    service: &str,
    type_name: &str,
    keys: &[&str],
    path: &[&str],
    op: &str,
) -> PlanNode {
    let mut selections = vec![field("__typename")];
    selections.extend(keys.iter().map(|k| field(k)));
    PlanNode::Flatten {
        path: path
            .iter()
            .map(|p| match *p {
                "@" => PathSegment::List,
                k => PathSegment::Key(k.into()),
            })
            .collect(),
        node: Box::new(PlanNode::Fetch(FetchNode {
            service_name: service.into(),
            requires: Some(vec![Selection::InlineFragment {
                type_condition: Some(type_name.into()),
                selections,
            }]),
            variable_usages: vec![],
            operation: op.into(),
            operation_kind: OperationKind::Query,
            operation_name: None,
            input_rewrites: vec![],
            output_rewrites: vec![],
            context: None,
        })),
    }
}

fn seq(nodes: Vec<PlanNode>) -> QueryPlan {
    QueryPlan {
        node: Some(PlanNode::Sequence { nodes }),
    }
}

// ---------------------------------------------------------------- gateway under test

struct TestGateway {
    url: String,
    gateway: Gateway,
    planner: Arc<StaticPlanner>,
    signer: TrustSigner,
    http: reqwest::Client,
}

/// The `/metrics` text of the gateway at `base` (`http://host:port`).
async fn metrics_at(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text")
}

impl TestGateway {
    async fn metrics(&self) -> String {
        metrics_at(&self.url).await
    }

    async fn start(
        config: GatewayConfig,
        subgraphs: &[(&str, &str)],
        plans: Vec<(&str, QueryPlan)>,
    ) -> Self {
        let planner = Arc::new(StaticPlanner {
            schema: Schema::parse_and_validate(API_SCHEMA, "api.graphql").expect("schema"),
            subgraphs: subgraphs
                .iter()
                .map(|(name, url)| SubgraphInfo {
                    name: name.to_string(),
                    url: url.to_string(),
                })
                .collect(),
            plans: plans.into_iter().map(|(n, p)| (n.to_string(), p)).collect(),
            calls: AtomicUsize::new(0),
        });
        let signer = TrustSigner::generate();
        let gateway =
            Gateway::with_planner(config, planner.clone(), signer.clone()).expect("gateway builds");
        let addr = spawn(gateway.router()).await;
        Self {
            url: format!("http://{addr}"),
            gateway,
            planner,
            signer,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, body: Value) -> (StatusCode, Value) {
        self.post_with(body, &[]).await
    }

    async fn post_with(&self, body: Value, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .body(body.to_string())
            .send()
            .await
            .expect("gateway answers");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        let json = resp.json().await.expect("json body");
        (status, json)
    }
}

fn dev() -> GatewayConfig {
    GatewayConfig {
        dev: true,
        ..GatewayConfig::default()
    }
}

fn user(i: usize) -> Value {
    json!({"__typename": "User", "id": format!("u{i}"), "name": format!("User {i}")})
}

// ---------------------------------------------------------------- execution

#[tokio::test]
async fn entities_are_fetched_in_one_request_per_subgraph_and_deduplicated() {
    let users =
        MockSubgraph::start(|_| json!({"data": {"users": (0..100).map(user).collect::<Vec<_>>()}}))
            .await;
    // Each user has two reviews, each about one of 5 products.
    let reviews = MockSubgraph::start(|body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|rep| {
                let id = rep["id"].as_str().unwrap_or("").trim_start_matches('u');
                let n: usize = id.parse().unwrap_or(0);
                json!({"reviews": [
                    {"id": format!("r{n}a"), "body": "good", "product": {"__typename": "Product", "upc": format!("p{}", n % 5)}},
                    {"id": format!("r{n}b"), "body": "bad", "product": {"__typename": "Product", "upc": format!("p{}", (n + 1) % 5)}},
                ]})
            })
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    let products = MockSubgraph::start(|body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|rep| json!({"name": format!("Product {}", rep["upc"].as_str().unwrap_or(""))}))
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    let plan = seq(vec![
        fetch("users", "{ users { __typename id name } }"),
        entity_fetch(
            "reviews",
            "User",
            &["id"],
            &["users", "@"],
            "query($representations:[_Any!]!){_entities(representations:$representations){...on User{reviews{body product{__typename upc}}}}}",
        ),
        entity_fetch(
            "products",
            "Product",
            &["upc"],
            &["users", "@", "reviews", "@", "product"],
            "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{name}}}",
        ),
    ]);
    let gw = TestGateway::start(
        dev(),
        &[
            ("users", &users.url),
            ("reviews", &reviews.url),
            ("products", &products.url),
        ],
        vec![("", plan)],
    )
    .await;
    let (status, body) = gw
        .post(json!({"query": "{ users { name reviews { body product { name } } } }"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let list = body["data"]["users"].as_array().expect("users");
    assert_eq!(list.len(), 100);
    assert_eq!(
        list[7],
        json!({"name": "User 7", "reviews": [
            {"body": "good", "product": {"name": "Product p2"}},
            {"body": "bad", "product": {"name": "Product p3"}},
        ]})
    );
    // One request per subgraph per step, however many entities.
    assert_eq!(
        (users.count(), reviews.count(), products.count()),
        (1, 1, 1)
    );
    assert_eq!(representations(&reviews.last().body).len(), 100);
    // 200 product references, 5 distinct: deduplicated before sending.
    let reps = representations(&products.last().body);
    assert_eq!(reps.len(), 5);
    assert_eq!(reps[0], json!({"__typename": "Product", "upc": "p0"}));
    assert_eq!(gw.gateway.subgraph_request_count("products"), 1);
}

fn products_subgraph(items: Value) -> impl Fn(&Value) -> Value + Send + Sync + 'static {
    move |_| json!({"data": {"topProducts": items.clone()}})
}

fn top_products_plan() -> QueryPlan {
    seq(vec![
        fetch("products", "{ topProducts { __typename upc name } }"),
        entity_fetch(
            "reviews",
            "Product",
            &["upc"],
            &["topProducts", "@"],
            "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{reviews{body}}}}",
        ),
    ])
}

fn product(upc: &str) -> Value {
    json!({"__typename": "Product", "upc": upc, "name": format!("name {upc}")})
}

#[tokio::test]
async fn null_in_non_null_field_bubbles_to_the_nearest_nullable_parent() {
    let products =
        MockSubgraph::start(products_subgraph(json!([product("1"), product("2")]))).await;
    let reviews = MockSubgraph::start(|body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|rep| match rep["upc"].as_str() {
                Some("2") => json!({"reviews": [{"body": "ok"}, {"body": null}]}),
                _ => json!({"reviews": [{"body": "fine"}]}),
            })
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    let gw = TestGateway::start(
        dev(),
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", top_products_plan())],
    )
    .await;
    let (status, body) = gw
        .post(json!({"query": "{ topProducts { name reviews { body } } }"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Review.body is String!, the list item Review! too: the nullable list becomes null.
    assert_eq!(
        body["data"],
        json!({"topProducts": [
            {"name": "name 1", "reviews": [{"body": "fine"}]},
            {"name": "name 2", "reviews": null},
        ]})
    );
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(
        errors[0]["path"],
        json!(["topProducts", 1, "reviews", 1, "body"])
    );
    assert_eq!(errors[0]["locations"], json!([{"line": 1, "column": 32}]));
    assert_eq!(
        errors[0]["extensions"]["code"],
        "NULL_VALUE_IN_NON_NULL_FIELD"
    );
}

#[tokio::test]
async fn non_null_root_field_null_makes_data_null() {
    let users = MockSubgraph::start(
        |_| json!({"data": {"users": [user(1), {"__typename": "User", "id": "u2", "name": null}]}}),
    )
    .await;
    let gw = TestGateway::start(
        dev(),
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ users { name } }")]))],
    )
    .await;
    let (_, body) = gw.post(json!({"query": "{ users { name } }"})).await;
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["path"], json!(["users", 1, "name"]));
}

#[tokio::test]
async fn a_subgraph_that_is_down_gives_partial_data_and_subrequest_http_error() {
    let products = MockSubgraph::start(products_subgraph(json!([product("1")]))).await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/graphql", l.local_addr().expect("addr"))
    };
    let gw = TestGateway::start(
        dev(),
        &[("products", &products.url), ("reviews", &closed)],
        vec![("", top_products_plan())],
    )
    .await;
    let (status, body) = gw
        .post(json!({"query": "{ topProducts { name reviews { body } } }"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"topProducts": [{"name": "name 1", "reviews": null}]})
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "SUBREQUEST_HTTP_ERROR"
    );
    assert_eq!(body["errors"][0]["extensions"]["serviceName"], "reviews");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_subgraph_answering_500_is_a_subrequest_http_error() {
    let products = MockSubgraph::start(products_subgraph(json!([product("1")]))).await;
    let reviews = MockSubgraph::start_with(
        Arc::new(|_: &Value| json!({})),
        Duration::ZERO,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    let gw = TestGateway::start(
        dev(),
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", top_products_plan())],
    )
    .await;
    let (_, body) = gw
        .post(json!({"query": "{ topProducts { name reviews { body } } }"}))
        .await;
    assert_eq!(body["data"]["topProducts"][0]["name"], "name 1");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "SUBREQUEST_HTTP_ERROR"
    );
}

#[tokio::test]
async fn a_slow_subgraph_times_out_with_subrequest_timeout() {
    let products = MockSubgraph::start(products_subgraph(json!([product("1")]))).await;
    let reviews = MockSubgraph::start_with(
        Arc::new(|_: &Value| json!({"data": {"_entities": [{"reviews": []}]}})),
        Duration::from_secs(3),
        StatusCode::OK,
    )
    .await;
    let mut config = dev();
    config.subgraphs.insert(
        "reviews".into(),
        portico_gateway::config::SubgraphConfig {
            timeout_ms: Some(200),
            ..Default::default()
        },
    );
    let gw = TestGateway::start(
        config,
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", top_products_plan())],
    )
    .await;
    let started = std::time::Instant::now();
    let (_, body) = gw
        .post(json!({"query": "{ topProducts { name reviews { body } } }"}))
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        body["data"]["topProducts"][0],
        json!({"name": "name 1", "reviews": null})
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "SUBREQUEST_TIMEOUT"
    );
    assert_eq!(body["errors"][0]["extensions"]["serviceName"], "reviews");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_gateway_timeout() {
    let products = MockSubgraph::start(products_subgraph(json!([product("1")]))).await;
    let reviews = MockSubgraph::start_with(
        Arc::new(|_: &Value| json!({"data": {"_entities": [{"reviews": []}]}})),
        Duration::from_secs(3),
        StatusCode::OK,
    )
    .await;
    let mut config = dev();
    config.request_timeout_ms = 200;
    let gw = TestGateway::start(
        config,
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", top_products_plan())],
    )
    .await;
    let (status, body) = gw
        .post(json!({"query": "{ topProducts { name reviews { body } } }"}))
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "GATEWAY_TIMEOUT");
}

#[tokio::test]
async fn entity_errors_are_remapped_to_every_client_path_that_produced_them() {
    let products = MockSubgraph::start(products_subgraph(json!([
        product("1"),
        product("2"),
        product("2")
    ])))
    .await;
    let reviews = MockSubgraph::start(|body| {
        assert_eq!(representations(body).len(), 2);
        json!({
            "data": {"_entities": [{"reviews": [{"body": "b1"}]}, {"reviews": null}]},
            "errors": [{"message": "reviews are private", "path": ["_entities", 1, "reviews"], "extensions": {"code": "FORBIDDEN"}}]
        })
    })
    .await;
    let gw = TestGateway::start(
        dev(),
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", top_products_plan())],
    )
    .await;
    let (_, body) = gw
        .post(json!({"query": "{ topProducts { reviews { body } } }"}))
        .await;
    assert_eq!(
        body["data"],
        json!({"topProducts": [{"reviews": [{"body": "b1"}]}, {"reviews": null}, {"reviews": null}]})
    );
    let errors = body["errors"].as_array().expect("errors");
    let paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(
        paths,
        vec![
            &json!(["topProducts", 1, "reviews"]),
            &json!(["topProducts", 2, "reviews"])
        ]
    );
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(errors[0]["extensions"]["serviceName"], "reviews");
    assert_eq!(errors[0]["message"], "reviews are private");
}

#[tokio::test]
async fn response_follows_the_client_operation_aliases_fragments_typename_skip_include() {
    let search = MockSubgraph::start(|_| {
        json!({"data": {"results": [
            {"__typename": "User", "id": "u1", "name": "Ann", "handle": "ann", "secret": "x"},
            {"__typename": "Product", "id": "p1", "upc": "1", "label": "Chair", "price": 10},
        ]}})
    })
    .await;
    let gw = TestGateway::start(
        dev(),
        &[("search", &search.url)],
        vec![(
            "Search",
            seq(vec![fetch("search", "{ search { __typename ... } }")]),
        )],
    )
    .await;
    let query = r#"
      query Search($withPrice: Boolean!, $skipName: Boolean = true) {
        results: search {
          kind: __typename
          ... on Node { id }
          ... on User { handle: username name @skip(if: $skipName) }
          ...P
        }
      }
      fragment P on Product { label: name price @include(if: $withPrice) upc @skip(if: true) }
    "#;
    let (status, body) = gw
        .post(json!({"query": query, "operationName": "Search", "variables": {"withPrice": true}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"data": {"results": [
            {"kind": "User", "id": "u1", "handle": "ann"},
            {"kind": "Product", "id": "p1", "label": "Chair", "price": 10},
        ]}})
    );
    // Field order is the requested order.
    let text = serde_json::to_string(&body).expect("json");
    assert!(text.find("\"kind\"") < text.find("\"id\""));
}

#[tokio::test]
async fn plans_are_cached_and_the_plan_extension_is_dev_only() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let plan = seq(vec![fetch("users", "{ me { name } }")]);
    let gw = TestGateway::start(dev(), &[("users", &users.url)], vec![("", plan.clone())]).await;
    for _ in 0..3 {
        let (_, body) = gw.post(json!({"query": "{ me { name } }"})).await;
        assert_eq!(body["data"], json!({"me": {"name": "User 1"}}));
    }
    assert_eq!(gw.planner.calls.load(Ordering::SeqCst), 1);
    assert_eq!(gw.gateway.plan_cache_stats(), (2, 1));
    let (_, body) = gw
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[("portico-include-plan", "true")],
        )
        .await;
    let text = body["extensions"]["queryPlan"].as_str().expect("plan text");
    assert!(text.starts_with("QueryPlan {"), "{text}");

    let prod = TestGateway::start(
        GatewayConfig::default(),
        &[("users", &users.url)],
        vec![("", plan)],
    )
    .await;
    let (_, body) = prod
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[("portico-include-plan", "true")],
        )
        .await;
    assert!(body.get("extensions").is_none(), "{body}");
}

#[tokio::test]
async fn the_explain_extension_carries_plan_and_cost_for_whom_the_config_allows() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let plan = seq(vec![fetch("users", "{ me { name } }")]);
    let explain = [("portico-explain", "true")];
    let query = json!({"query": "{ me { name } }"});

    // Dev mode: explained on request, with the plan, its text and the cost breakdown;
    // the data is unchanged and nothing else appears without the header.
    let gw = TestGateway::start(dev(), &[("users", &users.url)], vec![("", plan.clone())]).await;
    let (status, body) = gw.post_with(query.clone(), &explain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"me": {"name": "User 1"}}));
    let e = &body["extensions"]["explain"];
    assert_eq!(
        e["plan"],
        serde_json::to_value(&plan).expect("plan json"),
        "{e}"
    );
    assert_eq!(e["plan"]["node"]["nodes"][0]["serviceName"], "users");
    assert_eq!(e["planText"].as_str(), Some(plan.to_string().as_str()));
    // A planner without a supergraph has no cost model: every operation costs 1.
    assert_eq!(
        e["cost"],
        json!({"estimated": 1.0, "actual": null, "max": 5000.0, "breakdown": [], "breakdownTruncated": false}),
        "{e}"
    );
    let (_, body) = gw.post(query.clone()).await;
    assert!(body.get("extensions").is_none(), "{body}");
    let (_, body) = gw
        .post_with(query.clone(), &[("portico-explain", "false")])
        .await;
    assert!(body.get("extensions").is_none(), "{body}");

    // Production: off by default.
    let prod = TestGateway::start(
        GatewayConfig::default(),
        &[("users", &users.url)],
        vec![("", plan.clone())],
    )
    .await;
    let (_, body) = prod.post_with(query.clone(), &explain).await;
    assert!(body.get("extensions").is_none(), "{body}");

    // Production with `[explain] enabled` and a required scope: only a token carrying the
    // scope is explained; without it the request is served as if it had not asked.
    let config = GatewayConfig {
        jwt: pem_jwt_config(),
        explain: portico_gateway::config::ExplainConfig {
            enabled: Some(true),
            required_scope: Some("portico:explain".into()),
        },
        ..GatewayConfig::default()
    };
    let scoped = TestGateway::start(config, &[("users", &users.url)], vec![("", plan)]).await;
    let bearer = |scope: &str| {
        format!(
            "Bearer {}",
            token(
                JWT_PRIVATE,
                None,
                json!({"sub": "42", "scope": scope, "iss": "portico-auth", "aud": "portico", "exp": now() + 300}),
            )
        )
    };
    let (_, body) = scoped.post_with(query.clone(), &explain).await;
    assert!(body.get("extensions").is_none(), "anonymous: {body}");
    let without = bearer("read");
    let (status, body) = scoped
        .post_with(
            query.clone(),
            &[explain[0], ("authorization", without.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("extensions").is_none(), "no scope: {body}");
    let with = bearer("read portico:explain");
    let (_, body) = scoped
        .post_with(query, &[explain[0], ("authorization", with.as_str())])
        .await;
    assert_eq!(
        body["extensions"]["explain"]["plan"]["node"]["kind"], "Sequence",
        "{body}"
    );

    // The real planner and cost model: the estimate's per-field breakdown (`first: 10`
    // priced as 10 posts) beside the actual cost of the 2 posts returned.
    let subgraphs = demo_subgraphs(2, 1).await;
    let (_gateway, url) = real_gateway(&subgraphs).await;
    let body: Value = reqwest::Client::new()
        .post(&url)
        .header("portico-explain", "true")
        .json(&json!({"query": PROFILE_QUERY, "variables": {"id": "1"}}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "{body}");
    let e = &body["extensions"]["explain"];
    let cost = &e["cost"];
    let estimated = cost["estimated"].as_f64().expect("estimated");
    let actual = cost["actual"].as_f64().expect("actual");
    assert!(actual >= 1.0 && actual < estimated, "{cost}");
    let rows = cost["breakdown"].as_array().expect("breakdown");
    let posts = rows
        .iter()
        .find(|r| r["path"] == "user.posts")
        .expect("user.posts priced");
    assert_eq!(posts["coordinate"], "User.posts", "{cost}");
    assert!(
        rows.iter()
            .any(|r| r["path"] == "user.posts.nodes" && r["multiplier"] == json!(10.0)),
        "{cost}"
    );
    let plan_text = e["planText"].as_str().expect("plan text");
    for subgraph in ["users", "posts", "likes", "comments"] {
        assert!(
            plan_text.contains(&format!("Fetch(service: \"{subgraph}\")")),
            "{plan_text}"
        );
    }
}

#[tokio::test]
async fn introspection_is_served_in_dev_and_refused_in_production() {
    let gw = TestGateway::start(dev(), &[], vec![]).await;
    let (status, body) = gw
        .post(json!({"query": "{ __typename t: __type(name: \"User\") { name fields { name } } __schema { queryType { name } } }"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["__typename"], "Query");
    assert_eq!(body["data"]["t"]["name"], "User");
    assert_eq!(body["data"]["t"]["fields"][0]["name"], "id");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");

    let prod = TestGateway::start(GatewayConfig::default(), &[], vec![]).await;
    let (status, body) = prod
        .post(json!({"query": "{ __schema { queryType { name } } }"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "INTROSPECTION_DISABLED"
    );
}

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn http_requests_are_checked_before_anything_runs() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let mut config = dev();
    config.limits.max_body_bytes = 10_000;
    config.limits.max_depth = 3;
    let gw = TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    let client = &gw.http;
    let url = format!("{}/graphql", gw.url);

    // GET query works (with a CSRF header) and answers application/json by default.
    let r = client
        .get(format!("{url}?query=%7B%20me%20%7B%20name%20%7D%20%7D"))
        .header("portico-csrf", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    // GET without CSRF header: refused.
    let r = client
        .get(format!("{url}?query=%7B%20me%20%7B%20name%20%7D%20%7D"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["errors"][0]["extensions"]["code"], "CSRF_PREVENTION");
    // Simple content type POST: refused by CSRF.
    let r = client
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"query":"{ me { name } }"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    // Mutation over GET: 405.
    let r = client
        .get(format!(
            "{url}?query=mutation%20%7B%20addReview(body%3A%20%22x%22)%20%7B%20id%20%7D%20%7D"
        ))
        .header("portico-csrf", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 405);
    // Wrong content type with CSRF header: 415.
    let r = client
        .post(&url)
        .header("portico-csrf", "1")
        .header("content-type", "application/xml")
        .body("<q/>")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    // Malformed JSON: 400.
    let (status, body) = post_raw(&gw, "{\"query\": ").await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let (status, _) = post_raw(&gw, "[1, 2]").await;
    assert_eq!(status, 400);
    // Huge body: 413.
    let big = format!("{{\"query\": \"{}\"}}", "a".repeat(20_000));
    let (status, body) = post_raw(&gw, &big).await;
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
    // A persisted-query hash that is not a SHA-256: 400.
    let (status, body) = gw
        .post(json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    // Parse error: 400 with locations.
    let (status, body) = gw.post(json!({"query": "{ me { name }"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    assert!(
        body["errors"][0]["locations"][0]["line"].is_number(),
        "{body}"
    );
    assert!(body.get("data").is_none());
    // Validation error: 400 with locations.
    let (status, body) = gw.post(json!({"query": "{\n  me { nope }\n}"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(body["errors"][0]["locations"][0]["line"], 2, "{body}");
    // Depth limit.
    let (status, body) = gw
        .post(json!({"query": "{ me { reviews { product { reviews { body } } } } }"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "MAX_DEPTH_EXCEEDED"
    );
    // Bad variables.
    let (status, body) = gw.post(json!({"query": "query($f: Int) { topProducts(first: $f) { name } }", "variables": {"f": "many"}})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // None of these reached the subgraph except the one good GET.
    assert_eq!(users.count(), 1);
}

async fn post_raw(gw: &TestGateway, body: &str) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/graphql", gw.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_are_refused_fast_with_503_and_retry_after() {
    // Each request holds its place for 2 s (the subgraph is slow), while all six arrive.
    let users = MockSubgraph::start_with(
        Arc::new(|_| json!({"data": {"me": user(1)}})),
        Duration::from_secs(2),
        StatusCode::OK,
    )
    .await;
    let mut config = dev();
    config.overload.max_in_flight_requests = 2;
    config.overload.queue_timeout_ms = 0;
    config.overload.retry_after_secs = 3;
    let gw = Arc::new(
        TestGateway::start(
            config,
            &[("users", &users.url)],
            vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
        )
        .await,
    );
    let sent: Vec<_> = (0..6)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let response = gw
                    .http
                    .post(format!("{}/graphql", gw.url))
                    .header("content-type", "application/json")
                    .body(json!({"query": "{ me { name } }"}).to_string())
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: Value = response.json().await.expect("JSON");
                (status, retry_after, body, started.elapsed())
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for answer in sent {
        let (status, retry_after, body, took) = answer.await.expect("request task");
        match status {
            StatusCode::OK => {
                assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
                served += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(
                    body["errors"][0]["extensions"]["code"],
                    "GATEWAY_OVERLOADED"
                );
                assert_eq!(retry_after.as_deref(), Some("3"));
                eprintln!("refused after {took:?} (a place frees up after 2 s)");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((served, refused), (2, 4));
    // Places are given back: the next request is served, and health is never refused.
    let (status, body) = gw.post(json!({"query": "{ me { name } }"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portico_http_requests_shed_total 4\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn health_ready_metrics_and_the_offline_playground() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let gw = TestGateway::start(
        dev(),
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    gw.post(json!({"query": "{ me { name } }"})).await;
    // Refused before an operation is selected: operation type "unknown", 4xx.
    gw.post(json!({"query": "{ me { nope } }"})).await;
    let get = |path: &str| gw.http.get(format!("{}{path}", gw.url));
    assert_eq!(get("/health").send().await.expect("health").status(), 200);
    assert_eq!(get("/ready").send().await.expect("ready").status(), 200);
    let metrics = get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("portico_subgraph_requests_total{subgraph=\"users\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portico_http_requests_total{status=\"200\"} 1"),
        "{metrics}"
    );
    for line in [
        "# TYPE portico_http_request_duration_seconds histogram",
        "portico_http_request_duration_seconds_count{operation_type=\"query\",status=\"2xx\"} 1\n",
        "portico_http_request_duration_seconds_bucket{operation_type=\"query\",status=\"2xx\",le=\"+Inf\"} 1\n",
        "portico_http_request_duration_seconds_count{operation_type=\"unknown\",status=\"4xx\"} 1\n",
        // The scrape itself is not a GraphQL request: nothing in flight.
        "portico_http_requests_in_flight 0\n",
        // No client headers sent: counted under empty names.
        "portico_client_requests_total{client_name=\"\",client_version=\"\"} 2\n",
        "# TYPE portico_subgraph_request_duration_seconds histogram",
        "portico_subgraph_request_duration_seconds_count{subgraph=\"users\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        !metrics.contains("operation_type=\"mutation\""),
        "no series for what never happened: {metrics}"
    );

    let page = get("/graphql")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("/graphql/assets/graphiql.min.js"));
    assert!(!html.contains("https://"), "no CDN: {html}");
    let init = get("/graphql/assets/playground.js")
        .send()
        .await
        .expect("init")
        .text()
        .await
        .expect("js");
    assert!(init.contains("isHeadersEditorEnabled: true"));
    assert!(
        init.contains("portico-explain"),
        "the fetcher asks for explanations"
    );
    // The script's settings: explanations on in dev mode, no sign-in form unless set.
    assert!(
        html.contains(r#"id="portico-playground-config">"#) && html.contains(r#""explain":true"#),
        "{html}"
    );
    assert!(html.contains(r#""signIn":null"#), "{html}");
    let js = get("/graphql/assets/graphiql.min.js")
        .send()
        .await
        .expect("asset");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("max-age=31536000")
    );
    assert!(js.bytes().await.expect("bytes").len() > 100_000);
    assert_eq!(
        get("/graphql/assets/nope.js")
            .send()
            .await
            .expect("404")
            .status(),
        404
    );

    // Production: no playground page.
    let prod = TestGateway::start(GatewayConfig::default(), &[], vec![]).await;
    let r = prod
        .http
        .get(format!("{}/graphql", prod.url))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_ne!(r.status(), 200);
}

// ---------------------------------------------------------------- authentication

const JWT_PRIVATE: &[u8] = include_bytes!("fixtures/jwt_private.pem");
const JWT_OTHER_PRIVATE: &[u8] = include_bytes!("fixtures/jwt_other_private.pem");
const JWT_PUBLIC: &str = include_str!("fixtures/jwt_public.pem");
const JWKS: &str = include_str!("fixtures/jwks.json");

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn token(key: &[u8], kid: Option<&str>, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key).expect("test key"),
    )
    .expect("sign")
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn auth_gateway(jwt: portico_gateway::config::JwtConfig) -> (TestGateway, MockSubgraph) {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let mut config = dev();
    config.jwt = jwt;
    let gw = TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    (gw, users)
}

fn pem_jwt_config() -> portico_gateway::config::JwtConfig {
    // One file per call: tests run in parallel, and one test rewriting the file while
    // another reads it gave a truncated key (`InvalidKeyFormat`) once in CI.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("portico-gw-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join(format!(
        "public-{}.pem",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, JWT_PUBLIC).expect("write key");
    portico_gateway::config::JwtConfig {
        public_key: Some(path),
        issuer: Some("portico-auth".into()),
        audience: Some("portico".into()),
        leeway_secs: 5,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_valid_token_reaches_subgraphs_as_identity_headers_and_a_trust_token() {
    let (gw, users) = auth_gateway(pem_jwt_config()).await;
    let good = token(
        JWT_PRIVATE,
        None,
        json!({"sub": "42", "scope": "read write", "iss": "portico-auth", "aud": "portico", "exp": now() + 300}),
    );
    let (status, body) = gw
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[
                ("authorization", &format!("Bearer {good}")),
                ("portico-user-id", "admin"),
                ("portico-trust", "forged"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The body the subgraph received, as bytes (re-serialising the recorded JSON gives
    // the gateway's exact bytes: same serializer, key order kept).
    let sent = serde_json::to_vec(&users.last().body).expect("json");
    let seen = users.last().headers;
    let header = |name: &str| {
        seen.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("portico-user-id").as_deref(), Some("42"));
    assert_eq!(header("portico-user-scopes").as_deref(), Some("read write"));
    assert!(header("portico-request-id").is_some());
    let identity = gw
        .signer
        .verifier()
        .verify(
            header("portico-trust").as_deref(),
            "users",
            Some("42"),
            Some("read write"),
            &sent,
        )
        .expect("trust token verifies for this subgraph, identity and body");
    assert_eq!(
        identity,
        Identity::user("42", vec!["read".into(), "write".into()])
    );
    assert!(
        seen.get("authorization").is_none(),
        "client credentials are not forwarded"
    );

    // Bound to that body: worthless for another operation.
    assert_eq!(
        gw.signer.verifier().verify(
            header("portico-trust").as_deref(),
            "users",
            Some("42"),
            Some("read write"),
            br#"{"query":"mutation { deleteEverything }"}"#,
        ),
        Err(portico_trust::TrustError::BodyMismatch)
    );
    let first = header("portico-trust");

    // Anonymous: no identity headers, still a trust token; a new one per request.
    gw.post(json!({"query": "{ me { name } }"})).await;
    let sent = serde_json::to_vec(&users.last().body).expect("json");
    let seen = users.last().headers;
    assert!(seen.get("portico-user-id").is_none());
    let trust = seen.get("portico-trust").and_then(|v| v.to_str().ok());
    assert!(
        gw.signer
            .verifier()
            .verify(trust, "users", None, None, &sent)
            .is_ok()
    );
    assert_ne!(trust.map(str::to_string), first);
    gw.post(json!({"query": "{ me { name } }"})).await;
    let again = users.last().headers;
    assert_ne!(
        again.get("portico-trust").and_then(|v| v.to_str().ok()),
        trust,
        "the same request again gets a fresh token"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_and_no_subgraph_is_called() {
    let (gw, users) = auth_gateway(pem_jwt_config()).await;
    let claims =
        |exp: u64| json!({"sub": "42", "iss": "portico-auth", "aud": "portico", "exp": exp});
    let expired = token(JWT_PRIVATE, None, claims(now() - 60));
    let foreign = token(JWT_OTHER_PRIVATE, None, claims(now() + 300));
    let wrong_issuer = token(
        JWT_PRIVATE,
        None,
        json!({"sub": "42", "iss": "evil", "aud": "portico", "exp": now() + 300}),
    );
    let not_yet = token(
        JWT_PRIVATE,
        None,
        json!({"sub": "42", "iss": "portico-auth", "aud": "portico", "exp": now() + 300, "nbf": now() + 120}),
    );
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(now() + 300).to_string().as_bytes())
    );
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(now() + 300),
        &jsonwebtoken::EncodingKey::from_secret(JWT_PUBLIC.as_bytes()),
    )
    .expect("sign");
    let cases = [
        ("expired", format!("Bearer {expired}"), "EXPIRED"),
        (
            "foreign key",
            format!("Bearer {foreign}"),
            "INVALID_SIGNATURE",
        ),
        (
            "wrong issuer",
            format!("Bearer {wrong_issuer}"),
            "INVALID_ISSUER",
        ),
        (
            "not yet valid",
            format!("Bearer {not_yet}"),
            "NOT_YET_VALID",
        ),
        ("alg none", format!("Bearer {alg_none}"), "MALFORMED"),
        (
            "HS256 key confusion",
            format!("Bearer {hs256}"),
            "WRONG_ALGORITHM",
        ),
        ("garbage", "Bearer not.a.jwt".to_string(), "MALFORMED"),
        ("basic", "Basic dXNlcjpwYXNz".to_string(), "NOT_BEARER"),
    ];
    for (name, header, reason) in cases {
        let (status, body) = gw
            .post_with(
                json!({"query": "{ me { name } }"}),
                &[("authorization", &header)],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{name}"
        );
        assert_eq!(body["errors"][0]["extensions"]["reason"], reason, "{name}");
        assert!(body.get("data").is_none());
    }
    assert_eq!(users.count(), 0);
}

#[tokio::test]
async fn tokens_verify_against_a_jwks_url_fetched_once_and_unknown_kids_are_refused() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks_app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "application/json")], JWKS) }
        }),
    );
    let jwks_addr = spawn(jwks_app).await;
    let (gw, users) = auth_gateway(portico_gateway::config::JwtConfig {
        jwks_url: Some(format!("http://{jwks_addr}/.well-known/jwks.json")),
        jwks_min_refresh_secs: 3600,
        ..Default::default()
    })
    .await;
    let claims = json!({"sub": "7", "exp": now() + 300});
    for _ in 0..3 {
        let good = token(JWT_PRIVATE, Some("test-key-1"), claims.clone());
        let (status, body) = gw
            .post_with(
                json!({"query": "{ me { name } }"}),
                &[("authorization", &format!("Bearer {good}"))],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(users.count(), 3);
    for _ in 0..3 {
        let unknown = token(JWT_PRIVATE, Some("rotated-away"), claims.clone());
        let (status, body) = gw
            .post_with(
                json!({"query": "{ me { name } }"}),
                &[("authorization", &format!("Bearer {unknown}"))],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["errors"][0]["extensions"]["reason"], "UNKNOWN_KEY");
    }
    // One fetch: unknown kids do not hammer the key server within the minimum interval.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(users.count(), 3);
}

#[tokio::test]
async fn variables_are_forwarded_restricted_to_the_fetch_usages() {
    let products = MockSubgraph::start(|body| {
        let n = body["variables"]["first"].as_u64().unwrap_or(0) as usize;
        json!({"data": {"topProducts": (0..n).map(|i| product(&i.to_string())).collect::<Vec<_>>()}})
    })
    .await;
    let plan = QueryPlan {
        node: Some(PlanNode::Fetch(FetchNode {
            service_name: "products".into(),
            requires: None,
            variable_usages: vec!["first".into()],
            operation: "query($first:Int){topProducts(first:$first){name}}".into(),
            operation_kind: OperationKind::Query,
            operation_name: None,
            input_rewrites: vec![],
            output_rewrites: vec![],
            context: None,
        })),
    };
    let gw = TestGateway::start(dev(), &[("products", &products.url)], vec![("", plan)]).await;
    let (_, body) = gw
        .post(json!({"query": "query($first: Int, $flag: Boolean!) { topProducts(first: $first) { name } me @include(if: $flag) { name } }", "variables": {"first": 2, "flag": false}}))
        .await;
    assert_eq!(
        body["data"]["topProducts"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(products.last().body["variables"], json!({"first": 2}));
}

// ---------------------------------------------------------------- real supergraph + planner

const SUPERGRAPH: &str = include_str!("fixtures/supergraph.graphql");

fn has_entities(body: &Value) -> bool {
    body["query"]
        .as_str()
        .is_some_and(|q| q.contains("_entities"))
}

/// The four demo-shaped subgraphs, answering from generated data (supersets of what is
/// asked: the gateway must not leak extra fields).
async fn demo_subgraphs(posts: usize, comments: usize) -> Vec<(&'static str, MockSubgraph)> {
    let users = MockSubgraph::start(|body| {
        if has_entities(body) {
            let entities: Vec<Value> = representations(body)
                .iter()
                .map(|r| json!({"__typename": "User", "id": r["id"], "username": format!("user-{}", r["id"].as_str().unwrap_or(""))}))
                .collect();
            json!({"data": {"_entities": entities}})
        } else {
            json!({"data": {"user": {"__typename": "User", "id": "1", "username": "ann"}}})
        }
    })
    .await;
    let posts_sg = MockSubgraph::start(move |body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|_| {
                let nodes: Vec<Value> = (0..posts)
                    .map(|i| json!({"__typename": "Post", "id": format!("p{i}"), "caption": format!("caption {i}")}))
                    .collect();
                json!({"posts": {"nodes": nodes}})
            })
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    let likes = MockSubgraph::start(|body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .enumerate()
            .map(|(i, _)| json!({"likeCount": i, "likedByMe": i % 2 == 0}))
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    let comments_sg = MockSubgraph::start(move |body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|r| {
                let nodes: Vec<Value> = (0..comments)
                    .map(|i| json!({"body": format!("{} comment {i}", r["id"].as_str().unwrap_or("")), "author": {"__typename": "User", "id": format!("u{}", i % 3)}}))
                    .collect();
                json!({"comments": {"nodes": nodes}, "commentCount": comments})
            })
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    vec![
        ("users", users),
        ("posts", posts_sg),
        ("likes", likes),
        ("comments", comments_sg),
    ]
}

async fn real_gateway(subgraphs: &[(&'static str, MockSubgraph)]) -> (Gateway, String) {
    real_gateway_with(dev(), subgraphs).await
}

/// [`real_gateway`] with `config` (its subgraph URLs filled in).
async fn real_gateway_with(
    mut config: GatewayConfig,
    subgraphs: &[(&'static str, MockSubgraph)],
) -> (Gateway, String) {
    for (name, sg) in subgraphs {
        config.subgraphs.insert(
            name.to_string(),
            portico_gateway::config::SubgraphConfig {
                url: Some(sg.url.clone()),
                ..Default::default()
            },
        );
    }
    let gateway =
        Gateway::new(config, SUPERGRAPH, TrustSigner::generate()).expect("supergraph loads");
    let addr = spawn(gateway.router()).await;
    (gateway, format!("http://{addr}/graphql"))
}

/// The JSON parts of a `multipart/mixed` body (`@defer`'s, boundary `-`).
fn multipart_parts(body: &str) -> Vec<Value> {
    body.trim_end_matches("\r\n-----\r\n")
        .split("\r\n---\r\ncontent-type: application/json; charset=utf-8\r\n\r\n")
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_str(p).expect("a JSON part"))
        .collect()
}

/// POST a JSON body to a gateway URL; the JSON answer.
async fn post_json(url: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

const PROFILE_QUERY: &str = r#"query Profile($id: ID!) {
  user(id: $id) {
    username
    posts(first: 10) { nodes { caption comments(first: 5) { nodes { body author { username } } } likeCount likedByMe } }
  }
}"#;

#[tokio::test]
async fn the_real_planner_answers_a_profile_in_a_constant_number_of_subgraph_requests() {
    let mut counts = Vec::new();
    for (posts, comments) in [(2, 1), (20, 5)] {
        let subgraphs = demo_subgraphs(posts, comments).await;
        let (gateway, url) = real_gateway(&subgraphs).await;
        let resp: Value = post_json(
            &url,
            json!({"query": PROFILE_QUERY, "variables": {"id": "1"}}),
        )
        .await;
        assert!(resp.get("errors").is_none(), "{resp}");
        let user = &resp["data"]["user"];
        assert_eq!(user["username"], "ann");
        let nodes = user["posts"]["nodes"].as_array().expect("posts");
        assert_eq!(nodes.len(), posts);
        assert_eq!(
            nodes[1],
            json!({
                "caption": "caption 1",
                "comments": {"nodes": (0..comments).map(|i| json!({"body": format!("p1 comment {i}"), "author": {"username": format!("user-u{}", i % 3)}})).collect::<Vec<_>>()},
                "likeCount": 1,
                "likedByMe": false,
            })
        );
        counts.push(
            subgraphs
                .iter()
                .map(|(name, _)| gateway.subgraph_request_count(name))
                .collect::<Vec<_>>(),
        );
        // Authors are deduplicated: at most 3 distinct users whatever the comment count.
        let authors = subgraphs[0].1.last();
        assert!(representations(&authors.body).len() <= 3);
    }
    // users: root + authors; posts, likes, comments: one batched request each.
    assert_eq!(counts[0], vec![2, 1, 1, 1]);
    assert_eq!(
        counts[0], counts[1],
        "requests must not grow with posts or comments"
    );
}

#[tokio::test]
async fn the_real_planner_serves_introspection_and_typename_without_subgraphs() {
    let subgraphs = demo_subgraphs(1, 1).await;
    let (gateway, url) = real_gateway(&subgraphs).await;
    let resp: Value = post_json(
        &url,
        json!({"query": "{ __typename __type(name: \"Post\") { fields { name } } }"}),
    )
    .await;
    assert_eq!(resp["data"]["__typename"], "Query", "{resp}");
    let fields: Vec<&str> = resp["data"]["__type"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(fields.contains(&"likeCount") && !fields.iter().any(|f| f.starts_with("join__")));
    let total: u64 = subgraphs
        .iter()
        .map(|(n, _)| gateway.subgraph_request_count(n))
        .sum();
    assert_eq!(total, 0);
}

#[test]
fn a_malformed_supergraph_is_refused_at_start_up() {
    let err = Gateway::new(
        GatewayConfig::default(),
        "type Query {",
        TrustSigner::generate(),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("supergraph"), "{err}");
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_quickly_by_the_alias_limit() {
    let gw = TestGateway::start(dev(), &[], vec![]).await;
    let mut query = String::from("{ ...F0 }\n");
    for i in 0..30 {
        query.push_str(&format!(
            "fragment F{i} on Query {{ a: me {{ id }} ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    query.push_str("fragment F30 on Query { me { id } }\n");
    let started = std::time::Instant::now();
    let (status, body) = gw.post(json!({ "query": query })).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "MAX_ALIASES_EXCEEDED"
    );
}

#[tokio::test]
async fn a_failed_entity_fetch_nulls_up_to_the_nearest_nullable_parent_with_one_error() {
    let mut subgraphs = demo_subgraphs(3, 1).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/graphql", l.local_addr().expect("addr"))
    };
    subgraphs[2].1.url = closed; // likes is down; likeCount is Int!
    let (_, url) = real_gateway(&subgraphs).await;
    let resp: Value = post_json(
        &url,
        json!({"query": PROFILE_QUERY, "variables": {"id": "1"}}),
    )
    .await;
    // Post! in [Post!]! in PostConnection! in User.posts: the nullable `user` is nulled.
    assert_eq!(resp["data"], json!({"user": null}), "{resp}");
    let errors = resp["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{resp}");
    assert_eq!(errors[0]["extensions"]["code"], "SUBREQUEST_HTTP_ERROR");
    assert_eq!(errors[0]["extensions"]["serviceName"], "likes");
}

#[tokio::test]
async fn condition_nodes_branch_on_the_variable() {
    let products = MockSubgraph::start(products_subgraph(json!([product("1")]))).await;
    let reviews = MockSubgraph::start(|body| {
        let n = representations(body).len();
        json!({"data": {"_entities": vec![json!({"reviews": [{"body": "r"}]}); n]}})
    })
    .await;
    let plan = seq(vec![
        fetch("products", "{ topProducts { __typename upc name } }"),
        PlanNode::Condition {
            condition: "withReviews".into(),
            if_clause: Some(Box::new(entity_fetch(
                "reviews",
                "Product",
                &["upc"],
                &["topProducts", "@"],
                "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{reviews{body}}}}",
            ))),
            else_clause: None,
        },
    ]);
    let gw = TestGateway::start(
        dev(),
        &[("products", &products.url), ("reviews", &reviews.url)],
        vec![("", plan)],
    )
    .await;
    let query = "query($withReviews: Boolean!) { topProducts { name reviews @include(if: $withReviews) { body } } }";
    let (_, body) = gw
        .post(json!({"query": query, "variables": {"withReviews": false}}))
        .await;
    assert_eq!(body["data"], json!({"topProducts": [{"name": "name 1"}]}));
    assert_eq!(reviews.count(), 0);
    let (_, body) = gw
        .post(json!({"query": query, "variables": {"withReviews": true}}))
        .await;
    assert_eq!(
        body["data"],
        json!({"topProducts": [{"name": "name 1", "reviews": [{"body": "r"}]}]})
    );
    assert_eq!(reviews.count(), 1);
}

mod security;

#[path = "it/hardening.rs"]
mod hardening;
#[path = "it/rate.rs"]
mod rate;
#[path = "it/reload.rs"]
mod reload;
#[path = "it/resilience.rs"]
mod resilience;
#[path = "it/subscriptions.rs"]
mod subscriptions;

// ---------------------------------------------------------------- composed executable directives

/// An executable directive every subgraph defines is composed into the supergraph (see
/// `portico_federation::compose`); the gateway accepts it from clients and forwards it,
/// with its variables, on the field it annotates to the subgraph that resolves the field.
#[tokio::test]
async fn composed_executable_directives_travel_with_their_field() {
    let sdl = |body: &str| {
        format!(
            "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\"])\n\
             directive @lowercase(keep: Boolean = false) on FIELD\n{body}"
        )
    };
    let users = MockSubgraph::start(
        |_| json!({"data": {"me": {"__typename": "User", "id": "1", "name": "ann"}}}),
    )
    .await;
    let posts = MockSubgraph::start(|body| {
        let entities: Vec<Value> = representations(body)
            .iter()
            .map(|_| json!({"posts": [{"title": "hello"}]}))
            .collect();
        json!({"data": {"_entities": entities}})
    })
    .await;
    let composed = portico_federation::compose::compose(&[
        portico_federation::compose::SubgraphInput {
            name: "users".into(),
            url: users.url.clone(),
            sdl: sdl("type Query { me: User }\ntype User @key(fields: \"id\") { id: ID! name: String }"),
        },
        portico_federation::compose::SubgraphInput {
            name: "posts".into(),
            url: posts.url.clone(),
            sdl: sdl(
                "type User @key(fields: \"id\") { id: ID! posts: [Post] }\ntype Post { title: String }",
            ),
        },
    ])
    .expect("composes");
    assert!(
        composed
            .api_sdl
            .contains("directive @lowercase(keep: Boolean = false) on FIELD")
    );
    let gateway = Gateway::new(dev(), &composed.supergraph_sdl, TrustSigner::generate())
        .expect("supergraph loads");
    let url = format!("http://{}/graphql", spawn(gateway.router()).await);
    let query =
        "query ($keep: Boolean) { me { name @lowercase posts { title @lowercase(keep: $keep) } } }";
    let resp: Value = post_json(&url, json!({"query": query, "variables": {"keep": true}})).await;
    assert_eq!(
        resp,
        json!({"data": {"me": {"name": "ann", "posts": [{"title": "hello"}]}}})
    );
    let root = users.last().body;
    assert!(
        root["query"]
            .as_str()
            .is_some_and(|q| q.contains("name @lowercase")),
        "{root}"
    );
    let entities = posts.last().body;
    assert!(
        entities["query"]
            .as_str()
            .is_some_and(|q| q.contains("title @lowercase(keep:$keep)")),
        "{entities}"
    );
    assert_eq!(entities["variables"]["keep"], true, "{entities}");

    // Not a location every subgraph accepts: refused by validation, no subgraph called.
    let before = users.count() + posts.count();
    let resp: Value = post_json(&url, json!({"query": "{ me { ... @lowercase { name } } }"})).await;
    assert!(resp["errors"][0]["message"].as_str().is_some(), "{resp}");
    assert_eq!(users.count() + posts.count(), before);
}

// ---------------------------------------------------------------- batching

#[tokio::test]
async fn a_batch_is_answered_in_order_each_item_on_its_own_and_only_when_enabled() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let plans = || vec![("", seq(vec![fetch("users", "{ me { name } }")]))];

    // Off by default: refused as a whole, naming the setting; no subgraph called.
    let off = TestGateway::start(dev(), &[("users", &users.url)], plans()).await;
    let batch = json!([{"query": "{ me { name } }"}, {"query": "{ me { name } }"}]);
    let (status, body) = off.post(batch.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "BATCHING_NOT_ENABLED"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("[batching] enabled = true")),
        "{body}"
    );
    assert_eq!(users.requests.lock().len(), 0);

    let mut config = dev();
    config.batching.enabled = true;
    config.batching.max_size = 3;
    // Each item is limited on its own: the one with an alias alone is refused.
    config.limits.max_aliases = 0;
    let on = TestGateway::start(config, &[("users", &users.url)], plans()).await;
    let (status, body) = on
        .post(json!([
            {"query": "{ me { name } }"},
            {"query": "{ me { nope } }"},
            {"query": "{ __typename }"},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body.as_array().expect("an array of responses");
    assert_eq!(items.len(), 3, "{body}");
    assert_eq!(items[0]["data"]["me"]["name"], "User 1", "{body}");
    assert_eq!(
        items[1]["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
    assert!(items[1].get("data").is_none(), "{body}");
    assert_eq!(items[2]["data"]["__typename"], "Query", "{body}");
    assert_eq!(
        users.requests.lock().len(),
        1,
        "one item needed the subgraph"
    );

    let (status, body) = on
        .post(json!([
            {"query": "{ me { name } again: me { name } }"},
            {"query": "{ me { name } }"},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body[0]["errors"][0]["extensions"]["code"], "MAX_ALIASES_EXCEEDED",
        "{body}"
    );
    assert_eq!(body[1]["data"]["me"]["name"], "User 1", "{body}");

    // Too long, or empty: refused as a whole.
    let four = Value::Array(vec![json!({"query": "{ __typename }"}); 4]);
    for batch in [json!([]), four] {
        let (status, body) = on.post(batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "BATCH_LIMIT_EXCEEDED"
        );
    }
}

// ---------------------------------------------------------------- persisted queries

#[tokio::test]
async fn automatic_persisted_queries_register_on_retry_and_check_the_hash() {
    use sha2::Digest as _;
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let plans = || vec![("", seq(vec![fetch("users", "{ me { name } }")]))];
    let gw = TestGateway::start(dev(), &[("users", &users.url)], plans()).await;
    let query = "{ me { name } }";
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let apq = |hash: &str| json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});

    // Unknown hash: the code APQ clients retry on (HTTP 200, as Apollo's gateways).
    let (status, body) = gw.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(users.requests.lock().len(), 0);

    // A text that does not hash to the hash sent is refused, and not registered.
    let (status, body) = gw
        .post(json!({"query": "{ me { name __typename } }", "extensions": apq(&hash)}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_HASH_MISMATCH"
    );
    let (_, body) = gw.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );

    // The retry with the text registers it; from then on the hash alone is enough,
    // over POST and over GET.
    let (status, body) = gw
        .post(json!({"query": query, "extensions": apq(&hash)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["me"]["name"], "User 1");
    let (status, body) = gw.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    let extensions = apq(&hash).to_string();
    let get = gw
        .http
        .get(format!("{}/graphql", gw.url))
        .query(&[("extensions", extensions.as_str())])
        .header("portico-csrf", "1")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(get.status().as_u16(), 200);
    let body: Value = get.json().await.expect("json");
    assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    assert_eq!(users.requests.lock().len(), 3);

    // Off: hash-only requests get the fallback code, full ones are served.
    let mut config = dev();
    config.apq.enabled = false;
    let off = TestGateway::start(config, &[("users", &users.url)], plans()).await;
    let (status, body) = off.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_SUPPORTED"
    );
    let (status, body) = off
        .post(json!({"query": query, "extensions": apq(&hash)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn apq_registrations_are_shared_through_redis_and_a_redis_outage_is_only_a_miss() {
    use sha2::Digest as _;
    if !rate::redis_available(6379, "apq_registrations_are_shared_through_redis") {
        return;
    }
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let plans = || vec![("", seq(vec![fetch("users", "{ me { name } }")]))];
    let prefix = rate::unique_prefix("apq");
    let with_redis = |url: String| {
        let mut config = dev();
        config.apq.redis_url = Some(url);
        config.apq.redis_key_prefix = prefix.clone();
        config
    };
    let query = "{ me { name } }";
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let apq = |hash: &str| json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let redis_cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    // Registered through replica A, found by replica B from the hash alone.
    let a = TestGateway::start(
        with_redis("redis://127.0.0.1:6379".into()),
        &[("users", &users.url)],
        plans(),
    )
    .await;
    let b = TestGateway::start(
        with_redis("redis://127.0.0.1:6379".into()),
        &[("users", &users.url)],
        plans(),
    )
    .await;
    let (_, body) = b.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let (status, body) = a
        .post(json!({"query": query, "extensions": apq(&hash)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = format!("{prefix}{hash}");
    assert_eq!(redis_cli(&["GET", &key]), query);
    let ttl: i64 = redis_cli(&["TTL", &key]).parse().expect("ttl");
    assert!(ttl > 86_000 && ttl <= 86_400, "ttl {ttl}");
    for _ in 0..2 {
        let (status, body) = b.post(json!({"extensions": apq(&hash)})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    }
    // The second lookup was answered from B's memory.
    assert!(
        b.metrics()
            .await
            .contains("portico_apq_redis_hits_total 1\n"),
        "one Redis hit"
    );

    // A text in Redis that does not hash to its key is not served.
    let other = hex::encode(sha2::Sha256::digest(b"{ me { id } }"));
    redis_cli(&[
        "SET",
        &format!("{prefix}{other}"),
        "{ me { name } }",
        "EX",
        "60",
    ]);
    let (_, body) = b.post(json!({"extensions": apq(&other)})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{body}"
    );
    assert!(
        b.metrics()
            .await
            .contains("portico_apq_redis_mismatches_total 1\n")
    );

    // Redis unreachable: a registration stays in this process's memory and is served;
    // another replica's lookup is a miss (the client sends the text again), not an error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead = format!("redis://127.0.0.1:{closed}");
    let c = TestGateway::start(with_redis(dead.clone()), &[("users", &users.url)], plans()).await;
    let d = TestGateway::start(with_redis(dead), &[("users", &users.url)], plans()).await;
    let (status, body) = c
        .post(json!({"query": query, "extensions": apq(&hash)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = c.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["me"]["name"], "User 1", "{body}");
    let (status, body) = d.post(json!({"extensions": apq(&hash)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    assert!(
        c.metrics()
            .await
            .contains("portico_apq_redis_failures_total 1\n")
    );
    assert!(
        d.metrics()
            .await
            .contains("portico_apq_redis_failures_total 1\n")
    );
    redis_cli(&["DEL", &key, &format!("{prefix}{other}")]);
}

// ---------------------------------------------------------------- supergraph reload

#[tokio::test]
async fn the_supergraph_is_replaced_while_serving_and_a_bad_one_changes_nothing() {
    let other = include_str!("../../federation/tests/fixtures/simple_key_jump/supergraph.graphql");
    let products =
        MockSubgraph::start(|_| json!({"data": {"topProducts": [{"upc": "1", "name": "Table"}]}}))
            .await;
    let gateway = Gateway::new(dev(), SUPERGRAPH, TrustSigner::generate()).expect("loads");
    let addr = spawn(gateway.router()).await;
    let url = format!("http://{addr}/graphql");
    let ask = |query: &'static str| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(json!({ "query": query }).to_string())
                .send()
                .await
                .expect("gateway answers");
            r.json::<Value>().await.expect("json")
        }
    };
    let query = "{ topProducts { name } }";
    let body = ask(query).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "not in the first supergraph: {body}"
    );

    // A supergraph that does not load: refused, the old one keeps serving.
    let e = gateway
        .reload_supergraph("type Query { a: Int }")
        .expect_err("not a supergraph");
    assert!(e.to_string().contains("supergraph"), "{e}");
    assert_eq!(
        ask("{ __typename }").await["data"]["__typename"],
        "Query",
        "still serving"
    );

    // The new one (its subgraph URL from the config of the new supergraph's names).
    let sdl = other.replace("http://products", &products.url);
    gateway.reload_supergraph(&sdl).expect("reloads");
    let body = ask(query).await;
    assert_eq!(body["data"]["topProducts"][0]["name"], "Table", "{body}");
    assert_eq!(products.requests.lock().len(), 1);
    let metrics = metrics_at(&format!("http://{addr}")).await;
    for line in [
        "portico_reloads_total{result=\"ok\"} 1",
        "portico_reloads_total{result=\"failed\"} 1",
        // Counters carry over a reload.
        "portico_http_requests_total{status=\"200\"}",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

// ---------------------------------------------------------------- response headers

#[tokio::test]
async fn subgraph_response_headers_reach_the_client_only_as_the_respond_rules_say() {
    async fn handle() -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", "a=1; HttpOnly".parse().expect("value"));
        headers.append("set-cookie", "b=2; Secure".parse().expect("value"));
        headers.append("x-internal", "db-7".parse().expect("value"));
        (headers, axum::Json(json!({"data": {"me": user(1)}}))).into_response()
    }
    let addr = spawn(axum::Router::new().route("/graphql", axum::routing::post(handle))).await;
    let users = format!("http://{addr}/graphql");
    let plans = || vec![("", seq(vec![fetch("users", "{ me { name } }")]))];
    let send = |gw: &TestGateway| {
        gw.http
            .post(format!("{}/graphql", gw.url))
            .header("content-type", "application/json")
            .body(json!({"query": "{ me { name } }"}).to_string())
            .send()
    };

    // No rule: nothing of the subgraph's response headers.
    let gw = TestGateway::start(dev(), &[("users", &users)], plans()).await;
    let r = send(&gw).await.expect("answers");
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.headers().get("x-internal").is_none());

    let config = GatewayConfig::from_toml(
        r#"
        dev = true
        [headers.subgraphs.users]
        respond = ["set-cookie"]
        "#,
    )
    .expect("config");
    let gw = TestGateway::start(config, &[("users", &users)], plans()).await;
    let r = send(&gw).await.expect("answers");
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        cookies,
        ["a=1; HttpOnly", "b=2; Secure"],
        "every cookie, in order"
    );
    assert!(
        r.headers().get("x-internal").is_none(),
        "only the named headers"
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["data"]["me"]["name"], "User 1");

    // Headers the gateway owns cannot be passed on.
    for name in [
        "content-length",
        "connection",
        "access-control-allow-origin",
        "portico-trust",
    ] {
        let e = GatewayConfig::from_toml(&format!(
            "[headers.subgraphs.users]\nrespond = [\"{name}\"]\n"
        ))
        .expect_err("refused");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[tokio::test]
async fn trusted_documents_log_or_enforce_the_manifest_and_serve_ids() {
    use sha2::Digest as _;
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let plans = || vec![("", seq(vec![fetch("users", "{ me { name } }")]))];
    let listed = "{ me { name } }";
    let hash = hex::encode(sha2::Sha256::digest(listed.as_bytes()));
    let dir = std::env::temp_dir().join(format!("portico-trusted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let manifest = dir.join("manifest.json");
    std::fs::write(
        &manifest,
        json!({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
            {"id": hash, "name": "Me", "type": "query", "body": listed},
            {"id": "relay-style-id", "body": listed},
        ]})
        .to_string(),
    )
    .expect("write manifest");
    let config = |mode: &str| {
        GatewayConfig::from_toml(&format!(
            "dev = true\n[trusted_documents]\nmode = \"{mode}\"\nmanifest = \"{}\"\n",
            manifest.display()
        ))
        .expect("config")
    };
    let unlisted = "{ me { name __typename } }";

    // Enforce: listed text, ids (documentId and the APQ hash) served; the rest refused.
    let gw = TestGateway::start(config("enforce"), &[("users", &users.url)], plans()).await;
    for body in [
        json!({"query": listed}),
        json!({"documentId": "relay-style-id"}),
        json!({"documentId": hash}),
        json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}}),
    ] {
        let (status, response) = gw.post(body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {response}");
        assert_eq!(
            response["data"]["me"]["name"], "User 1",
            "{body}: {response}"
        );
    }
    for body in [json!({"query": unlisted}), json!({"documentId": "unknown"})] {
        let (status, response) = gw.post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {response}");
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST",
            "{body}"
        );
    }
    let served = users.requests.lock().len();
    assert_eq!(served, 4, "refused operations never reach a subgraph");

    // Reloaded: the newly listed operation is served.
    std::fs::write(&manifest, json!({ "new-id": unlisted }).to_string()).expect("rewrite");
    assert_eq!(gw.gateway.reload_trusted_documents().expect("reloads"), 1);
    let (status, response) = gw.post(json!({"documentId": "new-id"})).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let (status, _) = gw.post(json!({"query": listed})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no longer listed");
    // A manifest that does not load changes nothing.
    std::fs::write(&manifest, "not json").expect("rewrite");
    assert!(gw.gateway.reload_trusted_documents().is_err());
    let (status, _) = gw.post(json!({"documentId": "new-id"})).await;
    assert_eq!(status, StatusCode::OK);

    // Log: everything served, the unlisted counted.
    std::fs::write(&manifest, json!({ "a": listed }).to_string()).expect("rewrite");
    let gw = TestGateway::start(config("log"), &[("users", &users.url)], plans()).await;
    let (status, response) = gw.post(json!({"query": unlisted})).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portico_trusted_documents_unknown_total 1\n"),
        "{metrics}"
    );

    // Off: `documentId` is refused with a pointer to the setting.
    let gw = TestGateway::start(dev(), &[("users", &users.url)], plans()).await;
    let (status, response) = gw.post(json!({"documentId": "a"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    // A mode without a manifest is a config error.
    assert!(GatewayConfig::from_toml("[trusted_documents]\nmode = \"enforce\"\n").is_err());
}

#[tokio::test]
async fn served_operations_are_recorded_with_their_clients_for_the_usage_check() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let dir = std::env::temp_dir().join(format!("portico-usage-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("usage.json");
    let _ = std::fs::remove_file(&file);
    let mut config = dev();
    config.usage.file = Some(file.clone());
    let gw = TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    for (client, version) in [("ios", "1.2"), ("ios", "1.2"), ("web", "")] {
        gw.post_with(
            json!({"query": "{ me { name } }"}),
            &[
                ("graphql-client-name", client),
                ("graphql-client-version", version),
            ],
        )
        .await;
    }
    // Invalid documents are not operations anyone can use: not recorded.
    gw.post(json!({"query": "{ me { nope } }"})).await;
    gw.gateway.flush_usage().expect("flush");
    let recorded = portico_gateway::usage::read(&file);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].body, "{ me { name } }");
    assert_eq!(recorded[0].count, 3);
    assert_eq!(
        recorded[0].clients.iter().cloned().collect::<Vec<_>>(),
        ["ios@1.2", "web"]
    );
}

#[tokio::test]
async fn successful_get_queries_carry_cache_control_from_the_hints() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let mut config = dev();
    config.cache_control.types.insert("User".into(), 30);
    let gw = TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    let get = |query: &str| {
        gw.http
            .get(format!("{}/graphql", gw.url))
            .query(&[("query", query)])
            .header("portico-csrf", "1")
            .send()
    };
    let r = get("{ me { name } }").await.expect("answers");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=30, public")
    );
    // POST is not cached by HTTP caches: no header.
    let post = gw
        .http
        .post(format!("{}/graphql", gw.url))
        .header("content-type", "application/json")
        .body(json!({"query": "{ me { name } }"}).to_string())
        .send()
        .await
        .expect("answers");
    assert!(post.headers().get("cache-control").is_none());
    // A response with errors is never cacheable.
    let r = get("{ me { nope } }").await.expect("answers");
    assert!(r.headers().get("cache-control").is_none());

    // No hints: nothing is cacheable.
    let gw = TestGateway::start(
        dev(),
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    let r = gw
        .http
        .get(format!("{}/graphql", gw.url))
        .query(&[("query", "{ me { name } }")])
        .header("portico-csrf", "1")
        .send()
        .await
        .expect("answers");
    assert!(r.headers().get("cache-control").is_none());
}
