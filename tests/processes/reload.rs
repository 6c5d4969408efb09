//! The gateway process reloads its files: SIGHUP applies a new config and a new
//! supergraph while a request started before finishes on the old ones; a bad file
//! changes nothing; `--watch` applies a replaced file without a signal.

use std::time::Duration;

use serde_json::json;

use super::{Options, Platform, metrics, post};

/// `path`'s text with `from` replaced by `to` (which must be there).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} in the file");
    text.replacen(from, to, 1)
}

/// Replaces `path` as Kubernetes updates a mounted ConfigMap: a new file renamed over.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Asks `query` until `done` holds for the answer (at most 20 s).
async fn until(url: &str, query: &str, done: impl Fn(&serde_json::Value) -> bool) {
    for _ in 0..200 {
        let (_, body) = post(url, query).await;
        if done(&body) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{query} never gave the expected answer");
}

/// Three objects: cost 3.
const THREE: &str = "{ a: userByUsername(username: \"a\") { username } \
    b: userByUsername(username: \"b\") { username } \
    c: userByUsername(username: \"c\") { username } }";

fn code(body: &serde_json::Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_config_and_supergraph_while_a_request_in_flight_finishes_on_the_old_ones() {
    let mut p = Platform::start("").await;
    let url = p.url();
    let query = "{ authServiceVersion nobody: userByUsername(username: \"nobody\") { username } }";

    // In flight: users is stopped, auth has answered.
    p.subgraph("users").signal("STOP").await;
    let in_flight = tokio::spawn({
        let url = url.clone();
        async move { post(&url, query).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!in_flight.is_finished());

    // A new supergraph without `authServiceVersion`, and a config naming it with a
    // cost ceiling and a header rule.
    let supergraph = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("supergraph/supergraph.graphql"),
    )
    .expect("the demo supergraph");
    let smaller = p.dir.join("smaller.graphql");
    std::fs::write(
        &smaller,
        edit(
            &supergraph,
            "  \"Version of the auth service.\"\n  authServiceVersion: String! @join__field(graph: AUTH)\n",
            "",
        ),
    )
    .expect("write");
    let config = std::fs::read_to_string(p.config()).expect("config");
    let original = config.clone();
    let config = edit(
        &config,
        "supergraph = ",
        &format!(
            "supergraph = {:?}\n# was: supergraph = ",
            smaller.display().to_string()
        ),
    );
    let config = format!("{config}\n[cost]\nmax_cost = 2\n");
    replace(p.config(), &config);
    p.gateway.signal("HUP").await;

    until(&url, "{ authServiceVersion }", |b| {
        code(b) == "GRAPHQL_VALIDATION_FAILED"
    })
    .await;
    let (status, body) = post(&url, THREE).await;
    assert_eq!(
        code(&body),
        "COST_ESTIMATED_TOO_EXPENSIVE",
        "{status} {body}"
    );

    // The request in flight finishes on the supergraph it started with.
    p.subgraph("users").signal("CONT").await;
    let (status, body) = in_flight.await.expect("in flight");
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["authServiceVersion"].is_string(), "{body}");
    assert_eq!(body["data"]["nobody"], json!(null), "{body}");

    // A config that does not parse: logged, counted, the reloaded one keeps serving.
    replace(p.config(), "listen = [\n");
    p.gateway.signal("HUP").await;
    let mut seen = String::new();
    for _ in 0..100 {
        seen = metrics(&url).await;
        if seen.contains("portico_reloads_total{result=\"failed\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains("portico_reloads_total{result=\"ok\"} 1"),
        "{seen}"
    );
    assert!(
        seen.contains("portico_reloads_total{result=\"failed\"} 1"),
        "{seen}"
    );
    let (_, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");

    // The original files back: served again.
    replace(p.config(), &original);
    p.gateway.signal("HUP").await;
    until(&url, "{ authServiceVersion }", |b| {
        b["data"]["authServiceVersion"].is_string()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_applies_a_replaced_config_file_without_a_signal() {
    let p = Platform::start_with(Options {
        gateway_args: vec!["--watch".into()],
        ..Options::default()
    })
    .await;
    let url = p.url();
    let (status, body) = post(&url, THREE).await;
    assert_eq!((status, &body["data"]["a"]), (200, &json!(null)), "{body}");

    let config = std::fs::read_to_string(p.config()).expect("config");
    replace(p.config(), &format!("{config}\n[cost]\nmax_cost = 2\n"));
    until(&url, THREE, |b| code(b) == "COST_ESTIMATED_TOO_EXPENSIVE").await;

    // Written in place this time, back to the defaults.
    std::fs::write(p.config(), &config).expect("write");
    until(&url, THREE, |b| b["data"].is_object()).await;
}
