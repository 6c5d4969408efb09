//! The benchmark's own correctness: the heavy query through an in-process Portico
//! gateway over the four subgraphs answers exactly [`Data::expected_heavy`], with the
//! number of subgraph requests the plan promises.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::load::Checker;
use crate::subgraphs::{self, Data, HEAVY_QUERY, NAMES, SMALL_QUERY, Tap};

struct Running {
    gateway: String,
    tap: Arc<Tap>,
}

async fn start() -> Running {
    let data = Arc::new(Data::new());
    let tap = Arc::new(Tap::default());
    let mut inputs = Vec::new();
    for name in NAMES {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/graphql", listener.local_addr().expect("addr"));
        let app = subgraphs::app(name, data.clone(), tap.clone()).expect("subgraph");
        tokio::spawn(async move { axum::serve(listener, app).await });
        inputs.push(portico_federation::compose::SubgraphInput {
            name: name.to_string(),
            url,
            sdl: subgraphs::sdl(name).expect("sdl"),
        });
    }
    let composed = portico_federation::compose::compose(&inputs).expect("composes");
    let mut config = portico_gateway::GatewayConfig::default();
    config.cost.max_cost = 1_000_000.0;
    config.rate_limit.enabled = false;
    let gateway = portico_gateway::Gateway::new(
        config,
        &composed.supergraph_sdl,
        portico_trust::TrustSigner::generate(),
    )
    .expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            gateway
                .router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Running {
        gateway: format!("http://{addr}/graphql"),
        tap,
    }
}

async fn post(url: &str, query: &str) -> bytes::Bytes {
    reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .expect("gateway answers")
        .bytes()
        .await
        .expect("body")
}

#[tokio::test]
async fn the_heavy_query_through_portico_is_exactly_the_expected_response() {
    let r = start().await;
    let data = Data::new();
    let heavy = Checker::new(&data.expected_heavy());
    let before = r.tap.requests();
    let body = post(&r.gateway, HEAVY_QUERY).await;
    heavy.check(&body).expect("the expected response");
    // Seven requests (`portico plan` shows them): accounts (users) and products
    // (topProducts) at the root; reviews once for every review below both branches (one
    // BatchFetch); then products, inventory (@requires price weight) and accounts (the
    // authors' names; username is @provides'd) once each for all the entities found in
    // those reviews; and inventory for the top products, in parallel. Hive Router 0.0.41
    // sends 13 for the same query (BENCHMARKS.md).
    let sent = r.tap.requests() - before;
    assert_eq!(sent, 7, "subgraph requests for one heavy query");

    let small = Checker::new(&data.expected_small());
    let before = r.tap.requests();
    small
        .check(&post(&r.gateway, SMALL_QUERY).await)
        .expect("the expected response");
    assert_eq!(r.tap.requests() - before, 1, "one subgraph request");
}
