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

/// `tests/browser`, or `None` when the tools are missing: a panic under `CI=true`, a loud
/// SKIPPED line elsewhere.
fn browser_or_skip(what: &str) -> Option<&'static Path> {
    let browser_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"));
    let Some(why) = missing_tools(browser_dir) else {
        return Some(browser_dir);
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("browser test cannot run in CI: {why}");
    }
    eprintln!("\n!!!!! SKIPPED {what} browser test: {why} !!!!!\n");
    None
}

/// Runs `node <dir>/<script> <args>` off the async workers; its stdout, or a panic
/// showing both outputs when it fails.
async fn node(dir: &Path, script: &str, args: Vec<String>) -> String {
    let script = dir.join(script);
    let out =
        tokio::task::spawn_blocking(move || Command::new("node").arg(&script).args(&args).output())
            .await
            .expect("join")
            .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_loads_and_runs_an_authenticated_query_in_headless_chromium() {
    let Some(browser_dir) = browser_or_skip("playground") else {
        return;
    };
    let p = crate::platform::start().await;
    let client = portico::seed::Client::new(&p.gateway_url);
    let (token, _) = crate::platform::login(&client, "alice").await;
    let stdout = node(
        browser_dir,
        "playground.mjs",
        vec![
            p.gateway_url.clone(),
            "{ me { username posts(first: 2) { nodes { caption likeCount } } } }".into(),
            "\"username\": \"alice\"".into(),
            token,
        ],
    )
    .await;
    assert!(stdout.contains("likeCount"), "{stdout}");

    // @defer from the playground: GraphiQL reads the multipart answer and merges the
    // deferred part into the result it shows.
    let stdout = node(
        browser_dir,
        "playground.mjs",
        vec![
            p.gateway_url.clone(),
            "{ userByUsername(username: \"alice\") { username ... @defer(label: \"later\") { posts(first: 1) { nodes { caption } } } } }".into(),
            "\"caption\"".into(),
        ],
    )
    .await;
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
    let Some(browser_dir) = browser_or_skip("playground explain") else {
        return;
    };
    let p = crate::platform::start().await;
    let query = "query AliceProfile { me { username posts(first: 2) { nodes { caption likeCount commentCount } } } }";
    let stdout = node(
        browser_dir,
        "explain.mjs",
        vec![
            p.gateway_url.clone(),
            "alice".into(),
            portico::seed::DEMO_PASSWORD.into(),
            query.into(),
            "\"username\": \"alice\"".into(),
        ],
    )
    .await;
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
    let Some(browser_dir) = browser_or_skip("playground subscription") else {
        return;
    };
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
    let stdout = node(
        browser_dir,
        "subscribe.mjs",
        vec![
            p.gateway_url.clone(),
            alice,
            bob,
            post,
            "\"username\": \"bob\"".into(),
        ],
    )
    .await;
    assert!(stdout.contains("\"kind\": \"LIKE\""), "{stdout}");
    p.shutdown();
}
