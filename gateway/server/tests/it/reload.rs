//! Reloading the whole config and the supergraph while serving (`Gateway::reload`) and
//! from files (`reload::FileReloader`: explicit checks as on SIGHUP, and a file watch):
//! everything is built before anything changes, requests in flight finish on the state
//! they started with, a bad file changes nothing and is reported once.

use std::path::{Path, PathBuf};

use portico_gateway::Reload;
use portico_gateway::config::SubgraphConfig;
use portico_gateway::reload::{FileReloader, Files};

use super::*;

/// The test supergraph without `Query.me`.
fn without_me() -> String {
    let sdl = SUPERGRAPH.replace("  me: User @join__field(graph: USERS)\n", "");
    assert_ne!(sdl, SUPERGRAPH, "the fixture has the line");
    sdl
}

async fn me(username: &'static str) -> MockSubgraph {
    MockSubgraph::start(move |_| json!({"data": {"me": {"id": "1", "username": username}}})).await
}

fn with_users(mut config: GatewayConfig, url: &str) -> GatewayConfig {
    config.subgraphs.insert(
        "users".into(),
        SubgraphConfig {
            url: Some(url.into()),
            ..SubgraphConfig::default()
        },
    );
    config
}

async fn ask(url: &str, query: &str) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("json")
}

async fn preflight_allowed(url: &str) -> bool {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("answers")
        .headers()
        .get("access-control-allow-origin")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_the_whole_config_and_supergraph_and_requests_in_flight_finish_on_the_old_ones()
 {
    // users "a" answers after 1 s: a request to it is in flight during the reload.
    let slow = MockSubgraph::start_with(
        Arc::new(|_| json!({"data": {"me": {"id": "1", "username": "a"}}})),
        Duration::from_secs(1),
        StatusCode::OK,
    )
    .await;
    let fast = me("b").await;
    let gateway = Gateway::new(
        with_users(dev(), &slow.url),
        SUPERGRAPH,
        TrustSigner::generate(),
    )
    .expect("loads");
    let addr = spawn(gateway.router()).await;
    let url = format!("http://{addr}/graphql");
    assert!(!preflight_allowed(&url).await, "no [cors] at first");

    let in_flight = tokio::spawn({
        let url = url.clone();
        async move { ask(&url, "{ me { username } }").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slow.count(), 1, "the request is at the subgraph");

    // The new config: users elsewhere, CORS on, a cost ceiling; the listen address
    // changes too, which needs a restart. And a supergraph without `Query.me`.
    let mut config = with_users(dev(), &fast.url);
    config.cors.allow_origins = vec!["https://app.example".into()];
    config.cost.max_cost = 3.0;
    config.listen = "127.0.0.1:1".parse().expect("addr");
    let sdl = without_me();
    let done = gateway
        .reload(Reload {
            config: config.clone(),
            supergraph: Some(&sdl),
            reread_files: false,
        })
        .expect("reloads");
    assert_eq!(done.needs_restart, vec!["listen"]);
    assert_eq!(gateway.config(), config);

    // New requests: the new schema, the new CORS rules.
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
    assert!(preflight_allowed(&url).await, "[cors] reloaded");
    // The request in flight finishes on the schema and subgraph it started with.
    let body = in_flight.await.expect("in flight");
    assert_eq!(body, json!({"data": {"me": {"username": "a"}}}));

    // Back to a supergraph with `me`, config alone: the new subgraph URL serves it.
    gateway.reload_supergraph(SUPERGRAPH).expect("reloads");
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(body, json!({"data": {"me": {"username": "b"}}}));
    assert_eq!((slow.count(), fast.count()), (1, 1));

    // Invalid: a subgraph the supergraph does not have. Nothing changes.
    let mut bad = config.clone();
    bad.subgraphs
        .insert("nope".into(), SubgraphConfig::default());
    bad.cors.allow_origins.clear();
    let e = gateway.reload_config(bad).expect_err("refused");
    assert!(e.to_string().contains("subgraphs.nope"), "{e}");
    assert_eq!(gateway.config(), config);
    assert!(preflight_allowed(&url).await, "still the old [cors]");

    let metrics = metrics_at(&format!("http://{addr}")).await;
    for line in [
        "portico_reloads_total{result=\"ok\"} 2",
        "portico_reloads_total{result=\"failed\"} 1",
        // Per-subgraph counters carry over reloads: one request to each users mock.
        "portico_subgraph_requests_total{subgraph=\"users\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_weights_reload_with_the_config() {
    let users = me("a").await;
    let mut config = with_users(dev(), &users.url);
    config.cost.expose_in_extensions = true;
    let gateway = Gateway::new(config.clone(), SUPERGRAPH, TrustSigner::generate()).expect("loads");
    let addr = spawn(gateway.router()).await;
    let url = format!("http://{addr}/graphql");
    let estimated = |body: &Value| body["extensions"]["cost"]["estimated"].as_f64();
    // By default: `me` is an object (1), `username` a scalar (0).
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(estimated(&body), Some(1.0), "{body}");

    // New weights: a field weight and a type weight; the next request is priced with
    // them, and a ceiling below the new estimate refuses it.
    config.cost.model.fields.insert(
        "User.username".into(),
        portico_federation::cost::FieldCost {
            weight: Some(4.0),
            ..Default::default()
        },
    );
    config.cost.model.types.insert("User".into(), 3.0);
    gateway.reload_config(config.clone()).expect("reloads");
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(estimated(&body), Some(7.0), "{body}");
    config.cost.max_cost = 6.0;
    gateway.reload_config(config).expect("reloads");
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "COST_ESTIMATED_TOO_EXPENSIVE",
        "{body}"
    );
    assert_eq!(users.count(), 2, "the refused request reached no subgraph");
}

/// A directory of its own under the system's temporary directory.
fn fresh_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portico-reload-{label}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `text` to `path` the way Kubernetes and careful editors do: a new file
/// renamed over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn config_text(supergraph: &Path, users: &str, extra: &str) -> String {
    format!(
        "dev = true\nsupergraph = {:?}\n{extra}\n[subgraphs.users]\nurl = {users:?}\n",
        supergraph.display().to_string()
    )
}

/// A gateway started from a config file and a supergraph file in a fresh directory,
/// with users served by a mock.
struct FromFiles {
    users: MockSubgraph,
    dir: PathBuf,
    config_path: PathBuf,
    supergraph_path: PathBuf,
    gateway: Gateway,
}

impl FromFiles {
    async fn start(label: &str) -> FromFiles {
        let users = me("a").await;
        let dir = fresh_dir(label);
        let config_path = dir.join("gateway.toml");
        let supergraph_path = dir.join("supergraph.graphql");
        std::fs::write(&supergraph_path, SUPERGRAPH).expect("write");
        std::fs::write(&config_path, config_text(&supergraph_path, &users.url, "")).expect("write");
        let config = GatewayConfig::from_file(&config_path).expect("config");
        let gateway = Gateway::new(config, SUPERGRAPH, TrustSigner::generate()).expect("loads");
        FromFiles {
            users,
            dir,
            config_path,
            supergraph_path,
            gateway,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_reload_when_they_change_and_a_bad_file_is_reported_once_and_changes_nothing() {
    let FromFiles {
        users,
        dir,
        config_path,
        supergraph_path,
        gateway,
    } = FromFiles::start("check").await;
    let addr = spawn(gateway.router()).await;
    let url = format!("http://{addr}/graphql");
    let files = Files {
        config: Some(config_path.clone()),
        supergraph: None,
    };
    let reloader = FileReloader::new(gateway.clone(), files);
    let check = |explicit: bool| {
        let reloader = reloader.clone();
        tokio::task::spawn_blocking(move || reloader.check(explicit))
    };

    assert!(
        check(false).await.expect("ran").expect("ok").is_none(),
        "nothing changed"
    );
    // An explicit check (SIGHUP) reloads even so.
    assert!(check(true).await.expect("ran").expect("ok").is_some());

    replace(
        &config_path,
        &config_text(&supergraph_path, &users.url, "[cost]\nmax_cost = 0.5\n"),
    );
    assert!(check(false).await.expect("ran").expect("ok").is_some());
    assert_eq!(gateway.config().cost.max_cost, 0.5);
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "COST_ESTIMATED_TOO_EXPENSIVE",
        "{body}"
    );

    // A config that does not parse: reported (once), the old one keeps serving.
    replace(&config_path, "dev = maybe\n");
    let e = check(false).await.expect("ran").expect_err("bad file");
    assert!(e.to_string().contains("gateway.toml"), "{e}");
    assert!(
        check(false).await.expect("ran").expect("ok").is_none(),
        "reported once"
    );
    assert_eq!(gateway.config().cost.max_cost, 0.5);

    // Fixed, with a supergraph that changed meanwhile.
    replace(&supergraph_path, &without_me());
    replace(&config_path, &config_text(&supergraph_path, &users.url, ""));
    assert!(check(false).await.expect("ran").expect("ok").is_some());
    let body = ask(&url, "{ me { username } }").await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );

    // A supergraph that does not load: refused, reported once.
    replace(&supergraph_path, "type Query { a: Int }");
    assert!(check(false).await.expect("ran").is_err());
    assert!(check(false).await.expect("ran").expect("ok").is_none());
    assert_eq!(
        ask(&url, "{ __typename }").await["data"]["__typename"],
        "Query",
        "still serving"
    );
    let metrics = metrics_at(&format!("http://{addr}")).await;
    for line in [
        "portico_reloads_total{result=\"ok\"} 3",
        "portico_reloads_total{result=\"failed\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reloads_as_soon_as_a_file_is_replaced() {
    let FromFiles {
        users,
        dir,
        config_path,
        supergraph_path,
        gateway,
    } = FromFiles::start("watch").await;
    let reloader = FileReloader::new(
        gateway.clone(),
        Files {
            config: Some(config_path.clone()),
            supergraph: None,
        },
    );
    reloader.spawn_watch().expect("watches");

    let until = |max_cost: f64| {
        let gateway = gateway.clone();
        async move {
            for _ in 0..1000 {
                if gateway.config().cost.max_cost == max_cost {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the watch never applied max_cost = {max_cost}");
        }
    };
    replace(
        &config_path,
        &config_text(&supergraph_path, &users.url, "[cost]\nmax_cost = 7\n"),
    );
    until(7.0).await;
    // Written in place (not renamed) this time.
    std::fs::write(
        &config_path,
        config_text(&supergraph_path, &users.url, "[cost]\nmax_cost = 8\n"),
    )
    .expect("write");
    until(8.0).await;
    let _ = std::fs::remove_dir_all(dir);
}
