//! The playground in a real browser: headless Chromium (driven by playwright-core from
//! the npm registry, see `tests/browser/`) loads GraphiQL from the gateway's embedded
//! assets, a user pastes `Authorization: Bearer …` into the headers editor and runs a
//! query. Any request leaving the gateway's origin (a CDN) fails the test.
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix tests/browser` (`.ci/run` does
//! all three). Missing: fails under `CI=true`, prints a loud SKIPPED line elsewhere.

use std::path::Path;
use std::process::Command;

fn missing_tools(browser_dir: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    if !browser_dir.join("node_modules/playwright-core").exists() {
        return Some("playwright-core not installed (npm ci --prefix tests/browser)".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_loads_and_runs_an_authenticated_query_in_headless_chromium() {
    let browser_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"));
    if let Some(why) = missing_tools(browser_dir) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("browser test cannot run in CI: {why}");
        }
        eprintln!("\n!!!!! SKIPPED playground browser test: {why} !!!!!\n");
        return;
    }
    let p = crate::platform::start().await;
    let client = portico::seed::Client::new(&p.gateway_url);
    let (token, _) = crate::platform::login(&client, "alice").await;
    let url = p.gateway_url.clone();
    let script = browser_dir.join("playground.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg("{ me { username posts(first: 2) { nodes { caption likeCount } } } }")
            .arg("\"username\": \"alice\"")
            .arg(&token)
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "playground test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("likeCount"), "{stdout}");

    // @defer from the playground: GraphiQL reads the multipart answer and merges the
    // deferred part into the result it shows.
    let url = p.gateway_url.clone();
    let script = browser_dir.join("playground.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg("{ userByUsername(username: \"alice\") { username ... @defer(label: \"later\") { posts(first: 1) { nodes { caption } } } } }")
            .arg("\"caption\"")
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "playground @defer test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\"username\": \"alice\""), "{stdout}");
    p.shutdown();
}

/// The Sign in and Explain plugins, driven as a user would (`tests/browser/explain.mjs`):
/// signing in as alice puts her token in the Headers tab; her feed query runs; the
/// Explain panel shows the plan (a fetch per subgraph involved, with the request sent)
/// and the cost (estimated, actual, per-field breakdown); signing out removes the token.
/// `EXPLAIN_SCREENSHOT=$PWD/docs/playground-explain.png` refreshes the README's picture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_signs_in_and_explains_the_plan_and_cost_in_headless_chromium() {
    let browser_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"));
    if let Some(why) = missing_tools(browser_dir) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("browser test cannot run in CI: {why}");
        }
        eprintln!("\n!!!!! SKIPPED playground explain browser test: {why} !!!!!\n");
        return;
    }
    let p = crate::platform::start().await;
    let url = p.gateway_url.clone();
    let script = browser_dir.join("explain.mjs");
    let query = "query AliceProfile { me { username posts(first: 2) { nodes { caption likeCount commentCount } } } }";
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg("alice")
            .arg(portico::seed::DEMO_PASSWORD)
            .arg(query)
            .arg("\"username\": \"alice\"")
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "explain test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert!(
        seen["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Signed in as alice")),
        "{seen}"
    );
    let headers: serde_json::Value =
        serde_json::from_str(seen["signedInHeaders"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("headers after signing in: {e}\n{seen}"));
    assert!(
        headers["Authorization"]
            .as_str()
            .is_some_and(|a| a.starts_with("Bearer ey")),
        "{seen}"
    );
    // The response shown is the data (the explanation went to the panel).
    let response = seen["response"].as_str().unwrap_or("");
    assert!(response.contains("likeCount"), "{response}");
    assert!(!response.contains("\"explain\""), "{response}");
    // users (me), posts (User.posts), likes and comments (counts), each once.
    let fetches = seen["explained"]["fetches"].as_array().expect("fetches");
    let mut subgraphs: Vec<&str> = fetches
        .iter()
        .filter_map(|f| f["subgraph"].as_str())
        .collect();
    subgraphs.sort_unstable();
    assert_eq!(subgraphs, ["comments", "likes", "posts", "users"], "{seen}");
    assert!(
        fetches.iter().any(|f| f["operation"]
            .as_str()
            .is_some_and(|o| o.contains("_entities"))),
        "{seen}"
    );
    let estimated: f64 = seen["explained"]["estimated"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("estimated cost");
    let actual: f64 = seen["explained"]["actual"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("actual cost");
    assert!(estimated >= actual && actual >= 1.0, "{seen}");
    let breakdown = seen["explained"]["breakdown"].as_array().expect("rows");
    assert!(
        breakdown
            .iter()
            .any(|row| row[1] == "posts" && row[3] == "User.posts"),
        "{seen}"
    );
    let after: serde_json::Value =
        serde_json::from_str(seen["signedOutHeaders"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("headers after signing out: {e}\n{seen}"));
    assert!(after.get("Authorization").is_none(), "{seen}");
    p.shutdown();
}

/// A subscription run from the playground (over its WebSocket, graphql-transport-ws,
/// alice's token from the Headers tab): bob likes her post and the notification shows in
/// the response panel, with bob's username resolved by the users service
/// (`tests/browser/subscribe.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_in_the_playground_shows_the_notification_as_it_happens() {
    let browser_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"));
    if let Some(why) = missing_tools(browser_dir) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("browser test cannot run in CI: {why}");
        }
        eprintln!("\n!!!!! SKIPPED playground subscription browser test: {why} !!!!!\n");
        return;
    }
    let p = crate::platform::start().await;
    let client = portico::seed::Client::new(&p.gateway_url);
    let (alice, alice_id) = crate::platform::login(&client, "alice").await;
    let (bob, _) = crate::platform::login(&client, "bob").await;
    let data = client
        .run(
            None,
            "query($id: ID!) { user(id: $id) { posts(first: 1) { nodes { id } } } }",
            serde_json::json!({ "id": alice_id }),
        )
        .await
        .expect("alice's posts");
    let post = data["user"]["posts"]["nodes"][0]["id"]
        .as_str()
        .expect("a post")
        .to_string();
    let url = p.gateway_url.clone();
    let script = browser_dir.join("subscribe.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg(&alice)
            .arg(&bob)
            .arg(&post)
            .arg("\"username\": \"bob\"")
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "playground subscription test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\"kind\": \"LIKE\""), "{stdout}");
    p.shutdown();
}
