//! OpenTelemetry traces end to end: `portico dev` exports to an OTLP/HTTP collector
//! served by this test, which decodes the protobuf requests as a real collector does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Collected {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Collected>>>;

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

async fn export(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut collected = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                collected.push(Collected {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    if let Ok(mut all) = spans.lock() {
        all.extend(collected);
    }
    StatusCode::OK
}

/// An OTLP/HTTP collector on a free port: its base URL and what it received.
async fn collector() -> (String, Spans) {
    let spans = Spans::default();
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the collector");
    let addr = listener.local_addr().expect("collector address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

fn of_trace(spans: &Spans, trace_id: &str) -> Vec<Collected> {
    spans
        .lock()
        .map(|all| {
            all.iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

const QUERY: &str = "query TraceProbe { userByUsername(username: \"alice\") { username posts(first: 3) { nodes { caption likeCount comments(first: 3) { nodes { body } } } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_through_the_gateway_and_the_subgraphs() {
    let (endpoint, spans) = collector().await;
    let (_portico, url) = super::start_dev(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ])
    .await;

    // The client is traced itself: the gateway continues its trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let response: Value = reqwest::Client::new()
        .post(&url)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({ "query": QUERY, "operationName": "TraceProbe" }))
        .send()
        .await
        .expect("query the gateway")
        .json()
        .await
        .expect("a JSON answer");
    assert!(response.get("errors").is_none(), "{response}");
    let posts = response["data"]["userByUsername"]["posts"]["nodes"]
        .as_array()
        .expect("alice's posts");
    assert!(
        !posts.is_empty(),
        "the demo seeds posts for alice: {response}"
    );

    // Wait for the batch processor (100 ms schedule) to export the whole trace: the
    // request span ends last on the gateway side.
    let mut trace = Vec::new();
    for _ in 0..100 {
        trace = of_trace(&spans, trace_id);
        if trace.iter().any(|s| s.name == "query TraceProbe") {
            // Give the subgraph spans exported in the same period a moment to land.
            tokio::time::sleep(Duration::from_millis(500)).await;
            trace = of_trace(&spans, trace_id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    let by_id: BTreeMap<&str, &Collected> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let one = |name: &str| -> &Collected {
        let found: Vec<&Collected> = trace.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one `{name}` span in {names:?}");
        found[0]
    };

    // The gateway's request span continues the client's span, named after the operation.
    let root = one("query TraceProbe");
    assert_eq!(root.parent_span_id, client_span);
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert_eq!(root.service, "portico");
    assert_eq!(root.attributes["graphql.operation.name"], "TraceProbe");
    assert_eq!(root.attributes["graphql.operation.type"], "query");
    assert_eq!(root.attributes["http.response.status_code"], "200");

    // Each stage is a child of the request span (a new document: parsed and validated).
    for stage in [
        "parse",
        "validate",
        "authenticate",
        "cost",
        "plan",
        "execute",
    ] {
        assert_eq!(
            one(stage).parent_span_id,
            root.span_id,
            "`{stage}` under the request span"
        );
    }
    let execute = one("execute");

    // One client span per subgraph request, named by the plan's fetch names, under
    // `execute`; each subgraph's server span is a child of the fetch that called it.
    let fetches: Vec<&Collected> = trace
        .iter()
        .filter(|s| s.name.starts_with("TraceProbe__"))
        .collect();
    let subgraphs: Vec<&str> = fetches
        .iter()
        .map(|f| f.attributes["portico.subgraph"].as_str())
        .collect();
    for expected in ["users", "posts", "likes", "comments"] {
        assert!(
            subgraphs.contains(&expected),
            "a fetch to {expected}: {names:?}"
        );
    }
    for fetch in &fetches {
        assert_eq!(fetch.kind, SpanKind::Client as i32);
        assert_eq!(fetch.parent_span_id, execute.span_id, "{fetch:?}");
        let subgraph = &fetch.attributes["portico.subgraph"];
        assert!(
            fetch.name.starts_with(&format!("TraceProbe__{subgraph}__")),
            "{fetch:?}"
        );
        let served: Vec<&Collected> = trace
            .iter()
            .filter(|s| s.parent_span_id == fetch.span_id)
            .collect();
        assert_eq!(served.len(), 1, "one subgraph span under {fetch:?}");
        let server = served[0];
        assert_eq!(server.name, "POST /graphql");
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(&server.attributes["portico.subgraph"], subgraph);
        assert_eq!(server.attributes["http.response.status_code"], "200");
        // The subgraph resolving the fetch's operation, under its server span.
        let executed = trace
            .iter()
            .find(|s| s.parent_span_id == server.span_id && s.name == "resolve")
            .unwrap_or_else(|| panic!("a resolve span under {server:?}"));
        assert_eq!(executed.attributes["graphql.operation.name"], fetch.name);
    }

    // Every span of the trace hangs off the client's span: no orphan, no second root.
    for span in &trace {
        let mut at = span;
        let mut hops = 0;
        while at.parent_span_id != client_span {
            at = by_id
                .get(at.parent_span_id.as_str())
                .unwrap_or_else(|| panic!("{span:?} has a parent outside the trace"));
            hops += 1;
            assert!(hops < 20, "a parent cycle at {span:?}");
        }
    }

    // A request without a traceparent starts a trace of its own.
    let before = spans.lock().map(|s| s.len()).unwrap_or_default();
    let answered = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "query": "query Untraced { userByUsername(username: \"bob\") { username } }" }))
        .send()
        .await
        .expect("query the gateway");
    assert_eq!(answered.status(), 200);
    let mut fresh = None;
    for _ in 0..100 {
        fresh = spans.lock().ok().and_then(|all| {
            all[before.min(all.len())..]
                .iter()
                .find(|s| s.name == "query Untraced")
                .cloned()
        });
        if fresh.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = fresh.expect("the second request's span is exported");
    assert_ne!(fresh.trace_id, trace_id);
    assert_eq!(fresh.parent_span_id, "", "a root span");
}
