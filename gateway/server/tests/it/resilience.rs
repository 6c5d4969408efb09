//! Planning and execution cannot take the gateway down: misses plan on the blocking
//! pool once per key however many requests ask (single flight, proved by counting), a
//! planner's failures and panics are HTTP 500 `QUERY_PLANNING_FAILED` showing only the
//! request id, client-side planning errors are 400 with their code, failures are
//! cached briefly, and the next request is served.

use portico_gateway::ErrorCode;

use super::*;

/// Plans every operation with one plan after a short sleep, counting calls by operation
/// name; `Boom` panics, `Broken` fails, `TooBig` is refused as too complex.
struct TrickyPlanner {
    schema: Valid<Schema>,
    subgraphs: Vec<SubgraphInfo>,
    plan: QueryPlan,
    calls: Mutex<HashMap<String, usize>>,
}

impl QueryPlanner for TrickyPlanner {
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
        let name = operation_name.unwrap_or("").to_string();
        *self.calls.lock().entry(name.clone()).or_default() += 1;
        // Long enough for concurrent requests to find the planning in progress; the
        // tests' assertions hold whatever the timing.
        std::thread::sleep(Duration::from_millis(20));
        match name.as_str() {
            "Boom" => panic!("planner bug: Boom has no owner"),
            "Broken" => Err("internal detail: Query.me resolves nowhere".into()),
            "TooBig" => Err(PlanningError::client(
                ErrorCode::QueryPlanTooComplex,
                "query planning exceeded its budget of 10 steps",
            )),
            _ => Ok(self.plan.clone()),
        }
    }
}

impl TrickyPlanner {
    fn calls(&self, name: &str) -> usize {
        self.calls.lock().get(name).copied().unwrap_or(0)
    }
}

struct Tricky {
    url: String,
    planner: Arc<TrickyPlanner>,
    users: MockSubgraph,
    http: reqwest::Client,
}

impl Tricky {
    async fn start(config: GatewayConfig) -> Self {
        let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
        let planner = Arc::new(TrickyPlanner {
            schema: Schema::parse_and_validate(API_SCHEMA, "api.graphql").expect("schema"),
            subgraphs: vec![SubgraphInfo {
                name: "users".into(),
                url: users.url.clone(),
            }],
            plan: seq(vec![fetch("users", "{ me { name } }")]),
            calls: Mutex::default(),
        });
        let gateway = Gateway::with_planner(config, planner.clone(), TrustSigner::generate())
            .expect("gateway builds");
        let addr = spawn(gateway.router()).await;
        Self {
            url: format!("http://{addr}"),
            planner,
            users,
            http: reqwest::Client::new(),
        }
    }

    /// POST `query <name> { me { name } }`.
    async fn ask(&self, name: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("content-type", "application/json")
            .body(
                json!({
                    "query": format!("query {name} {{ me {{ name }} }}"),
                    "operationName": name,
                })
                .to_string(),
            )
            .send()
            .await
            .expect("gateway answers");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        (status, resp.json().await.expect("json body"))
    }

    async fn metrics(&self) -> String {
        metrics_at(&self.url).await
    }
}

/// The one error of a 500 that must show only the request id, and that id.
fn opaque_500(status: StatusCode, body: &Value, code: &str, what: &str) -> String {
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], code, "{body}");
    let id = errors[0]["extensions"]["requestId"]
        .as_str()
        .expect("requestId")
        .to_string();
    assert_eq!(errors[0]["message"], format!("{what} (request id {id})"));
    assert!(body.get("data").is_none(), "{body}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_identical_cold_requests_plan_once() {
    // Each request also reaches the subgraph: deduplication would fold some of them.
    let mut config = GatewayConfig::default();
    config.deduplication.enabled = false;
    config.deduplication.requests = false;
    let gw = Tricky::start(config).await;
    let answers = futures::future::join_all((0..100).map(|_| gw.ask("Profile"))).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["data"], json!({"me": {"name": "User 1"}}));
    }
    assert_eq!(gw.planner.calls("Profile"), 1);
    assert_eq!(gw.users.count(), 100);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portico_query_planning_duration_seconds_count 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_planner_costs_its_requests_and_the_gateway_keeps_serving() {
    let gw = Tricky::start(GatewayConfig::default()).await;
    // Concurrent requests for the panicking operation share its one planning.
    let answers = futures::future::join_all((0..10).map(|_| gw.ask("Boom"))).await;
    let mut ids = BTreeSet::new();
    for (status, body) in &answers {
        ids.insert(opaque_500(
            *status,
            body,
            "QUERY_PLANNING_FAILED",
            "query planning failed",
        ));
        assert!(!body.to_string().contains("Boom has no owner"), "{body}");
    }
    assert_eq!(ids.len(), 10, "each request has its own id");
    assert_eq!(gw.planner.calls("Boom"), 1);

    let (status, body) = gw.ask("Profile").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"me": {"name": "User 1"}}));

    // The failure is cached: asking again costs a lookup, not a planning (or a panic).
    let (status, body) = gw.ask("Boom").await;
    opaque_500(
        status,
        &body,
        "QUERY_PLANNING_FAILED",
        "query planning failed",
    );
    assert_eq!(gw.planner.calls("Boom"), 1);

    let metrics = gw.metrics().await;
    for line in [
        "portico_panics_total{stage=\"plan\"} 1\n",
        "portico_panics_total{stage=\"execute\"} 0\n",
        "portico_query_planning_failures_total{kind=\"panic\"} 1\n",
        "portico_http_requests_total{status=\"500\"} 11\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn planner_failures_show_only_the_request_id_and_client_errors_their_code() {
    let gw = Tricky::start(GatewayConfig::default()).await;
    let (status, body) = gw.ask("Broken").await;
    opaque_500(
        status,
        &body,
        "QUERY_PLANNING_FAILED",
        "query planning failed",
    );
    assert!(!body.to_string().contains("internal detail"), "{body}");

    let (status, body) = gw.ask("TooBig").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "QUERY_PLAN_TOO_COMPLEX"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "query planning exceeded its budget of 10 steps"
    );

    let metrics = gw.metrics().await;
    assert!(metrics.contains("portico_query_planning_failures_total{kind=\"failed\"} 1\n"));
    assert!(metrics.contains("portico_query_planning_failures_total{kind=\"client\"} 1\n"));
    assert_eq!(gw.users.count(), 0, "nothing planned, nothing fetched");
}

#[tokio::test]
async fn in_dev_mode_a_planning_failure_carries_its_detail() {
    let gw = Tricky::start(dev()).await;
    let (status, body) = gw.ask("Boom").await;
    opaque_500(
        status,
        &body,
        "QUERY_PLANNING_FAILED",
        "query planning failed",
    );
    let detail = body["errors"][0]["extensions"]["detail"]
        .as_str()
        .expect("detail in dev");
    assert!(
        detail.contains("planner bug: Boom has no owner"),
        "{detail}"
    );
}

#[tokio::test]
async fn planning_failures_are_not_cached_when_their_ttl_is_zero() {
    let mut config = GatewayConfig::default();
    config.cache.plan_failure_ttl_secs = 0;
    let gw = Tricky::start(config).await;
    for _ in 0..3 {
        let (status, _) = gw.ask("Broken").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(gw.planner.calls("Broken"), 3);
}
