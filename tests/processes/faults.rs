//! Faults survived, over real processes: the gateway keeps answering while a subgraph
//! process is killed, stopped or restarted, and shuts down cleanly on SIGTERM.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Platform, post};

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
    // Meanwhile a request that does not need comments is answered at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = post(&url, "{ authServiceVersion }").await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        !hung.is_finished(),
        "the comments request waits for its timeout"
    );
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
