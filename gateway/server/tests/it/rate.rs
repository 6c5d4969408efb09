//! Cost limits and rate limiting end to end: refusals happen before any subgraph is
//! called (counted on the mocks), budgets per anonymous address / user / scope tier,
//! `RateLimit-*` headers, reloading, and the Redis backend shared by two gateways,
//! killed and restarted under load.

use std::process::{Child, Command, Stdio};

use portico_federation::cost::FieldCost;
use portico_gateway::config::{RateLimitBackend, RateLimitTier, SubgraphConfig};

use super::*;

async fn gateway_with(
    mut config: GatewayConfig,
    subgraphs: &[(&'static str, MockSubgraph)],
) -> (Gateway, String) {
    for (name, sg) in subgraphs {
        config.subgraphs.insert(
            name.to_string(),
            SubgraphConfig {
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

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    }
}

async fn send(url: &str, query: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request
        .body(json!({"query": query, "variables": {"id": "1"}}).to_string())
        .send()
        .await
        .expect("gateway answers");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.expect("json"),
    }
}

fn subgraph_requests(subgraphs: &[(&'static str, MockSubgraph)]) -> usize {
    subgraphs
        .iter()
        .map(|(_, sg)| sg.requests.lock().len())
        .sum()
}

fn limited(budget: u64) -> GatewayConfig {
    let mut config = dev();
    config.rate_limit.trusted_proxy_header = Some("x-forwarded-for".into());
    config.rate_limit.anonymous_budget = budget;
    // A day-long window: nothing refills while the test runs, so counts are exact.
    config.rate_limit.window_secs = 86_400;
    config
}

const TYPENAME: &str = "{ __typename }";

#[tokio::test]
async fn an_operation_above_max_cost_is_refused_before_any_subgraph_is_called() {
    let subgraphs = demo_subgraphs(2, 1).await;
    let mut config = dev();
    config.cost.max_cost = 10.0;
    config.cost.model.fields.insert(
        "User.posts".into(),
        FieldCost {
            slicing_arguments: vec!["first".into()],
            sized_fields: vec!["nodes".into()],
            require_one_slicing_argument: Some(true),
            ..FieldCost::default()
        },
    );
    let (gateway, url) = gateway_with(config, &subgraphs).await;

    let r = send(&url, PROFILE_QUERY, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "COST_ESTIMATED_TOO_EXPENSIVE");
    let cost = &r.body["errors"][0]["extensions"]["cost"];
    assert!(
        cost["estimated"].as_f64().expect("estimate") > 10.0,
        "{cost}"
    );
    assert_eq!(cost["max"], json!(10.0));
    // The message names the setting an operator would raise.
    let message = r.body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`[cost] max_cost`"), "{message}");
    assert!(r.body.get("data").is_none());
    // The refusal says nothing about the budget: it took nothing from it.
    assert!(r.headers.get("ratelimit-remaining").is_none());

    let r = send(
        &url,
        "query($id: ID!) { user(id: $id) { posts(first: null) { nodes { caption } } } }",
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "GRAPHQL_VALIDATION_FAILED", "{}", r.body);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("User.posts"),
        "{}",
        r.body
    );

    assert_eq!(subgraph_requests(&subgraphs), 0);
    let metrics = metrics_at(url.trim_end_matches("/graphql")).await;
    assert!(
        metrics.contains("portico_cost_refused_total 1"),
        "{metrics}"
    );
    drop(gateway);
}

#[tokio::test]
async fn the_estimate_is_charged_and_reported_with_the_actual_cost() {
    let subgraphs = demo_subgraphs(2, 1).await;
    let mut config = limited(1_000_000);
    config.cost.expose_in_extensions = true;
    let (_gateway, url) = gateway_with(config, &subgraphs).await;
    let r = send(&url, PROFILE_QUERY, &[("x-forwarded-for", "10.0.0.1")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let estimated = r.body["extensions"]["cost"]["estimated"]
        .as_f64()
        .expect("estimated");
    let actual = r.body["extensions"]["cost"]["actual"]
        .as_f64()
        .expect("actual");
    assert!(actual > 0.0 && actual < estimated, "{}", r.body);
    assert_eq!(r.header("ratelimit-limit"), Some(1_000_000));
    assert_eq!(
        r.header("ratelimit-remaining"),
        Some(1_000_000 - estimated.ceil() as u64)
    );
    assert!(r.header("ratelimit-reset").is_some());

    // A budget of exactly two profiles admits two, then refuses with 429.
    let mut config = limited(2 * estimated.ceil() as u64);
    config.cost.expose_in_extensions = true;
    let (_gateway, url) = gateway_with(config, &subgraphs).await;
    let client = [("x-forwarded-for", "10.0.0.2")];
    for _ in 0..2 {
        assert_eq!(send(&url, PROFILE_QUERY, &client).await.status, 200);
    }
    let before = subgraph_requests(&subgraphs);
    let r = send(&url, PROFILE_QUERY, &client).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.code(), "RATE_LIMITED");
    assert_eq!(r.header("ratelimit-remaining"), Some(0));
    assert!(r.header("retry-after").is_some_and(|s| s >= 1));
    assert_eq!(subgraph_requests(&subgraphs), before, "no subgraph call");
    // A cheaper operation still fits? No: nothing is left at all.
    let r = send(&url, TYPENAME, &client).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn budgets_are_per_client_anonymous_authenticated_and_by_scope_tier() {
    let mut config = limited(3);
    config.jwt = pem_jwt_config();
    config.rate_limit.authenticated_budget = 5;
    config.rate_limit.tiers = vec![RateLimitTier {
        scope: "premium".into(),
        budget: 8,
    }];
    let (gateway, url) = gateway_with(config, &[]).await;
    let bearer = |sub: &str, scope: &str| {
        let t = token(
            JWT_PRIVATE,
            None,
            json!({"sub": sub, "scope": scope, "iss": "portico-auth", "aud": "portico", "exp": now() + 300}),
        );
        format!("Bearer {t}")
    };
    let admitted = |headers: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut n = 0;
            loop {
                let r = send(&url, TYPENAME, &headers).await;
                if r.status == 429 {
                    assert_eq!(r.code(), "RATE_LIMITED");
                    assert_eq!(r.header("ratelimit-remaining"), Some(0));
                    return (n, r.header("ratelimit-limit"));
                }
                assert_eq!(r.status, 200, "{}", r.body);
                n += 1;
                assert!(n < 100, "never limited");
            }
        }
    };
    let xff = |a: &str| ("x-forwarded-for", a.to_string());
    assert_eq!(admitted(vec![xff("1.1.1.1")]).await, (3, Some(3)));
    // Another address has its own budget; the proxy's last entry is the client.
    assert_eq!(admitted(vec![xff("1.1.1.1, 2.2.2.2")]).await, (3, Some(3)));
    let auth = |sub: &str, scope: &str| ("authorization", bearer(sub, scope));
    // Authenticated: keyed by user id whatever the address.
    assert_eq!(
        admitted(vec![auth("u1", "read"), xff("1.1.1.1")]).await,
        (5, Some(5))
    );
    assert_eq!(
        admitted(vec![auth("u2", "read premium")]).await,
        (8, Some(8))
    );

    // Reload: the new budget applies at once; buckets are kept (an exhausted client
    // stays exhausted: GCRA stores time, not points).
    let mut reloaded = gateway.config().clone();
    reloaded.rate_limit.anonymous_budget = 4;
    gateway
        .reload_config(reloaded.clone())
        .expect("valid limits");
    assert_eq!(admitted(vec![xff("3.3.3.3")]).await, (4, Some(4)));
    assert_eq!(admitted(vec![xff("1.1.1.1")]).await, (0, Some(4)));
    reloaded.rate_limit.window_secs = 0;
    let e = gateway
        .reload_config(reloaded.clone())
        .expect_err("invalid");
    assert!(e.to_string().contains("rate_limit.window_secs"), "{e}");
    assert_eq!(gateway.rate_limit_config().anonymous_budget, 4);

    let metrics = metrics_at(url.trim_end_matches("/graphql")).await;
    assert!(
        metrics.contains("portico_rate_limit_decisions_total{decision=\"limited\"} 6"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------- Redis

/// Whether a Redis answers PING at `port`. When none does, the test fails under
/// `CI=true` and is skipped loudly otherwise.
pub(crate) fn redis_available(port: u16, what: &str) -> bool {
    let up = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"));
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what}: Redis is required in CI (port {port})"
        );
        eprintln!(
            "SKIPPED {what}: no Redis on port {port} (redis-server/redis-cli missing or down)"
        );
    }
    up
}

pub(crate) fn unique_prefix(name: &str) -> String {
    format!("portico-test:{name}:{}:", uuid::Uuid::new_v4())
}

fn redis_config(budget: u64, port: u16, prefix: &str) -> GatewayConfig {
    let mut config = limited(budget);
    config.rate_limit.backend = RateLimitBackend::Redis;
    config.rate_limit.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    config.rate_limit.key_prefix = prefix.to_string();
    config.rate_limit.redis_retry_interval_ms = 20;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_sharing_redis_admit_exactly_one_budget() {
    if !redis_available(6379, "two_gateways_sharing_redis_admit_exactly_one_budget") {
        return;
    }
    const BUDGET: u64 = 40;
    let prefix = unique_prefix("shared");
    let (_a, url_a) = gateway_with(redis_config(BUDGET, 6379, &prefix), &[]).await;
    let (_b, url_b) = gateway_with(redis_config(BUDGET, 6379, &prefix), &[]).await;
    // 8 clients (the same address) × 25 requests, alternating replicas.
    let tasks: Vec<_> = (0..8)
        .map(|c| {
            let urls = [url_a.clone(), url_b.clone()];
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..25 {
                    let url = &urls[(c + i) % 2];
                    let r = send(url, TYPENAME, &[("x-forwarded-for", "9.9.9.9")]).await;
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.expect("client"));
    }
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let refused = statuses.iter().filter(|s| **s == 429).count() as u64;
    // GCRA's burst is the whole budget and nothing refills within a day-long window.
    assert_eq!(ok, BUDGET, "{statuses:?}");
    assert_eq!(ok + refused, 200);
}

/// A `redis-server` of our own on a free port (the shared one is never stopped).
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut redis = OwnRedis {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
            {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        redis.kill();
        None
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_or_closed_and_enforcement_resumes_when_it_is_back() {
    const WHAT: &str = "redis_down_fails_open_or_closed_and_enforcement_resumes_when_it_is_back";
    let port = free_port();
    let Some(mut redis) = OwnRedis::start(port) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{WHAT}: redis-server is required in CI"
        );
        eprintln!("SKIPPED {WHAT}: cannot start redis-server");
        return;
    };
    let prefix = unique_prefix("kill");
    let open_config = redis_config(3, redis.port, &prefix);
    let mut closed_config = redis_config(3, redis.port, &format!("{prefix}closed:"));
    closed_config.rate_limit.fail_open = false;
    let (_open, open_url) = gateway_with(open_config, &[]).await;
    let (_closed, closed_url) = gateway_with(closed_config, &[]).await;
    let client = [("x-forwarded-for", "7.7.7.7")];

    let statuses = |url: String| async move {
        let mut v = Vec::new();
        for _ in 0..4 {
            let r = send(&url, TYPENAME, &client).await;
            v.push((r.status, r.code().to_string()));
        }
        v
    };
    let enforced = vec![
        (200, String::new()),
        (200, String::new()),
        (200, String::new()),
        (429, "RATE_LIMITED".to_string()),
    ];
    assert_eq!(statuses(open_url.clone()).await, enforced);
    assert_eq!(statuses(closed_url.clone()).await, enforced);

    redis.kill();
    for _ in 0..3 {
        let r = send(&open_url, TYPENAME, &client).await;
        assert_eq!(r.status, 200, "fail open serves: {}", r.body);
        assert!(r.headers.get("ratelimit-limit").is_none());
        let r = send(&closed_url, TYPENAME, &client).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.code(), "RATE_LIMITER_UNAVAILABLE");
    }

    // Back on the same port (empty: budgets start full): enforcement resumes.
    let _redis = OwnRedis::start(port).expect("redis restarts");
    for url in [open_url, closed_url] {
        let mut back = false;
        for _ in 0..200 {
            let r = send(&url, TYPENAME, &[("x-forwarded-for", "8.8.8.8")]).await;
            if r.headers.get("ratelimit-limit").is_some() {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(back, "the limiter reconnects without a restart");
        let r = statuses(url.clone()).await;
        assert_eq!(r.last(), Some(&(429, "RATE_LIMITED".to_string())), "{r:?}");
    }
}

#[tokio::test]
async fn each_item_of_a_batch_is_costed_and_rate_limited_on_its_own() {
    let subgraphs = demo_subgraphs(2, 1).await;
    // A budget of 3 points: `{ __typename }` costs 1 (the minimum taken), so the fourth
    // item of the batch finds the budget empty.
    let mut config = limited(3);
    config.batching.enabled = true;
    config.cost.max_cost = 10.0;
    config.cost.model.fields.insert(
        "User.posts".into(),
        FieldCost {
            slicing_arguments: vec!["first".into()],
            sized_fields: vec!["nodes".into()],
            require_one_slicing_argument: Some(true),
            ..FieldCost::default()
        },
    );
    let (_gateway, url) = gateway_with(config, &subgraphs).await;
    let item = |query: &str| json!({"query": query, "variables": {"id": "1"}});
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-forwarded-for", "10.0.0.9")
        .body(
            json!([
                item(TYPENAME),
                item(PROFILE_QUERY),
                item(TYPENAME),
                item(TYPENAME),
                item(TYPENAME),
            ])
            .to_string(),
        )
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status().as_u16(), 200);
    let remaining = response
        .headers()
        .get("ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = response.json().await.expect("json");
    let code = |i: usize| {
        body[i]["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    };
    assert_eq!(body[0]["data"]["__typename"], "Query", "{body}");
    // Above max_cost: refused, and took nothing from the budget.
    assert_eq!(code(1), "COST_ESTIMATED_TOO_EXPENSIVE", "{body}");
    assert_eq!(body[2]["data"]["__typename"], "Query", "{body}");
    assert_eq!(body[3]["data"]["__typename"], "Query", "{body}");
    assert_eq!(code(4), "RATE_LIMITED", "{body}");
    // The headers show the budget after the last item.
    assert_eq!(remaining.as_deref(), Some("0"), "{body}");
}
