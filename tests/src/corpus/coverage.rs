//! "It composes" implies "every query on it plans and runs": for every corpus case, one
//! query per field reachable in its API schema
//! ([`portico_federation::plan::coverage::queries`]) goes through the gateway to the
//! case's data-driven subgraphs. Data is whatever the case holds (fields it lacks are
//! null, some cases have failing subgraphs on purpose), so responses are not compared;
//! what must never happen:
//! - a planning error (`QUERY_PLANNING_FAILED`, `QUERY_PLAN_TOO_COMPLEX`) or any other
//!   gateway-side failure (HTTP 5xx, `INTERNAL_SERVER_ERROR`, a body that is not a
//!   GraphQL response);
//! - a subgraph rejecting the operation the gateway sent it (the data-driven subgraphs
//!   validate every request against their own SDL: "invalid operation");
//! - the gateway refusing its own generated query (`GRAPHQL_VALIDATION_FAILED`: a bug in
//!   the generator, reported the same way).
//!
//! `QUERY_PLAN_UNSUPPORTED` (a feature the planner refuses on purpose, with a client
//! error) is allowed. `CORPUS_CASE=substring` filters cases, as for the corpus test.

use super::{case_names, serve_case};
use portico_federation::Supergraph;
use serde_json::Value;
use std::time::Duration;

/// What is wrong with one response, if anything.
fn problem(status: u16, body: &str) -> Option<String> {
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("HTTP {status}, body is not JSON ({e}): {body}")),
    };
    problem_in(status, body, &value)
}

fn problem_in(status: u16, body: &str, value: &Value) -> Option<String> {
    if status >= 500 {
        return Some(format!("HTTP {status}: {body}"));
    }
    if value.get("data").is_none() && value.get("errors").is_none() {
        return Some(format!("HTTP {status}, not a GraphQL response: {body}"));
    }
    let errors = value.get("errors").and_then(Value::as_array);
    for e in errors.into_iter().flatten() {
        let code = e
            .pointer("/extensions/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
        let bad_code = matches!(
            code,
            "QUERY_PLANNING_FAILED"
                | "QUERY_PLAN_TOO_COMPLEX"
                | "INTERNAL_SERVER_ERROR"
                | "GRAPHQL_VALIDATION_FAILED"
                | "GRAPHQL_PARSE_FAILED"
        );
        if bad_code || message.contains("invalid operation") {
            return Some(format!("HTTP {status}: {e}"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reachable_field_of_every_corpus_case_plans_and_runs() {
    let names = case_names();
    assert!(names.len() > 100, "found {} corpus cases", names.len());
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut sent = 0usize;
    // Responses with some non-null data, and with (allowed) errors.
    let (mut with_data, mut with_errors) = (0usize, 0usize);
    for name in &names {
        let dir = super::fixtures().join(name);
        let sdl = std::fs::read_to_string(dir.join("supergraph.graphql"))
            .unwrap_or_else(|e| panic!("{name}/supergraph.graphql: {e}"));
        let supergraph = Supergraph::parse(&sdl)
            .unwrap_or_else(|e| panic!("{name}: the supergraph does not load: {e}"));
        let queries = portico_federation::plan::coverage::queries(supergraph.api_schema());
        let served = match serve_case(name).await {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        for query in queries {
            sent += 1;
            let response = client
                .post(format!("http://{}/graphql", served.addr))
                .header("content-type", "application/json")
                .header("portico-csrf", "1")
                .timeout(Duration::from_secs(30))
                .json(&serde_json::json!({ "query": query }))
                .send()
                .await;
            let outcome = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.text().await {
                        Ok(body) => {
                            if let Ok(v) = serde_json::from_str::<Value>(&body) {
                                let data = v.get("data").and_then(Value::as_object);
                                with_data += usize::from(
                                    data.is_some_and(|d| d.values().any(|x| !x.is_null())),
                                );
                                with_errors += usize::from(v.get("errors").is_some());
                            }
                            problem(status, &body)
                        }
                        Err(e) => Some(format!("reading the response: {e}")),
                    }
                }
                Err(e) => Some(format!("request failed: {e}")),
            };
            if let Some(p) = outcome {
                failures.push(format!("{name}: {query}\n  {p}"));
            }
        }
    }
    eprintln!(
        "coverage: {sent} generated queries over {} corpus cases ({with_data} answered with \
         data, {with_errors} with errors the cases' data or failing subgraphs cause), {} failed",
        names.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} generated queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn problems_are_recognised() {
    assert_eq!(problem(200, r#"{"data":{"a":1}}"#), None);
    assert_eq!(
        problem(
            200,
            r#"{"data":{"a":null},"errors":[{"message":"boom","path":["a"]}]}"#
        ),
        None
    );
    assert_eq!(
        problem(
            400,
            r#"{"errors":[{"message":"x","extensions":{"code":"QUERY_PLAN_UNSUPPORTED"}}]}"#
        ),
        None
    );
    assert!(
        problem(
            500,
            r#"{"errors":[{"message":"x","extensions":{"code":"QUERY_PLANNING_FAILED"}}]}"#
        )
        .is_some()
    );
    assert!(
        problem(
            200,
            r#"{"data":{"a":null},"errors":[{"message":"subgraph a: invalid operation: Cannot query field"}]}"#
        )
        .is_some()
    );
    assert!(problem(200, "not json").is_some());
    assert!(problem(502, r#"{"data":null}"#).is_some());
}
