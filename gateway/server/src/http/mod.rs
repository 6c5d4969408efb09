//! HTTP: the axum router. `POST /graphql` and `GET /graphql` run the request pipeline
//! (`graphql.rs`, one function read top to bottom); a browser `GET /graphql` gets the
//! playground when enabled; `/graphql/assets/*` serves its embedded files; `/health`
//! (liveness), `/ready` (supergraph loaded) and `/metrics` (Prometheus text).

mod cors;
mod graphql;
pub mod metrics;
mod playground;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Inner;

pub(crate) fn router(gw: Arc<Inner>) -> Router {
    let cors = cors::layer(&gw.config.cors);
    let router = Router::new()
        .route("/graphql", get(graphql::handle).post(graphql::handle))
        .route("/graphql/assets/{name}", get(playground::asset))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_handler))
        .with_state(gw);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"pass"}"#,
    )
}

/// Ready once the gateway exists: the supergraph is loaded and the plan stage is built.
async fn ready(State(gw): State<Arc<Inner>>) -> impl IntoResponse {
    let body = format!(
        r#"{{"status":"ready","subgraphs":{}}}"#,
        gw.subgraphs.endpoints().len()
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics_handler(State(gw): State<Arc<Inner>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&gw),
    )
}
