//! Arbitrary bytes as the body of `POST /graphql` (and as the query string of a `GET`)
//! through the whole gateway router, on the demo supergraph with its subgraphs pointed
//! at a closed port (fetches fail at once). Every request must be answered: a GraphQL
//! JSON body with a status below 500, or a 500 that names only a request id; never a
//! panic (which would be caught and counted as a 500) and never a hang.

#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use portico_gateway::{Gateway, GatewayConfig};
use tower::ServiceExt;

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sdl = include_str!("../../supergraph/supergraph.graphql");
    let mut config = GatewayConfig {
        dev: true,
        subgraph_timeout_ms: 200,
        ..GatewayConfig::default()
    };
    for name in ["auth", "users", "posts", "comments", "likes", "notifications"] {
        config.subgraphs.insert(
            name.to_string(),
            portico_gateway::config::SubgraphConfig {
                url: Some("http://127.0.0.1:9/graphql".into()),
                ..Default::default()
            },
        );
    }
    let router = runtime.block_on(async {
        Gateway::new(config, sdl, portico_trust::TrustSigner::generate())
            .expect("gateway")
            .router()
    });
    Harness { runtime, router }
});

/// A 500 is a gateway bug (a panic caught, a planner failure): a finding.
fn check(response: axum::response::Response) {
    assert_ne!(
        response.status(),
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "a request made the gateway fail (500)"
    );
}

fuzz_target!(|data: &[u8]| {
    let harness = &*HARNESS;
    harness.runtime.block_on(async {
        let post = Request::post("/graphql")
            .header("content-type", "application/json")
            .body(Body::from(data.to_vec()))
            .expect("request");
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            harness.router.clone().oneshot(post),
        )
        .await
        .expect("answered within 10 s")
        .expect("infallible");
        check(response);
        if let Ok(query) = std::str::from_utf8(data)
            && let Ok(get) = Request::get(format!(
                "/graphql?query={}",
                query
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            ))
            .body(Body::empty())
        {
            let response = harness.router.clone().oneshot(get).await.expect("infallible");
            check(response);
        }
    });
});
