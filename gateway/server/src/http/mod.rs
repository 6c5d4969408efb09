//! HTTP: the axum router. `POST /graphql` and `GET /graphql` run the request pipeline
//! (`graphql.rs`, one function read top to bottom); subscriptions stream over SSE or a
//! WebSocket upgrade of `GET /graphql` (`subscriptions.rs`); a browser `GET /graphql` gets
//! the playground when enabled; `/graphql/assets/*` serves its embedded files; `/health`
//! (liveness), `/ready` (supergraph loaded) and `/metrics` (Prometheus text).

mod cors;
mod graphql;
pub mod metrics;
mod playground;
mod subscriptions;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Live;

/// The public router: `/graphql`, the playground's assets and `/health`, plus `/ready`
/// and `/metrics` unless `admin_listen` moves them to [`admin_router`].
pub(crate) fn router(gw: Arc<Live>) -> Router {
    // Where `/ready` and `/metrics` are served is fixed at start-up (a listener).
    let separate_admin = gw.current().config.admin_listen.is_some();
    let mut router = Router::new()
        .route("/graphql", get(graphql::handle).post(graphql::handle))
        .route("/graphql/assets/{name}", get(playground::asset))
        .route("/health", get(health));
    if !separate_admin {
        router = router
            .route("/ready", get(ready))
            .route("/metrics", get(metrics_handler));
    }
    router
        .layer(axum::middleware::from_fn_with_state(gw.clone(), cors))
        .with_state(gw)
}

pub(crate) use cors::layer as cors_layer;
pub(crate) use graphql::{Shared, SharedKey};

/// `[cors]` of the config in force (it reloads with the rest of the config).
async fn cors(
    State(live): State<Arc<Live>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tower::{Layer, ServiceExt};
    // Read under the lock: no `Inner` clone for the common case of no CORS at all.
    let layer = live.current.read().cors.clone();
    match layer {
        Some(layer) => match layer.layer(next).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => next.run(request).await,
    }
}

/// The admin router (`admin_listen`): `/health`, `/ready`, `/metrics`.
pub(crate) fn admin_router(gw: Arc<Live>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_handler))
        .with_state(gw)
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"pass"}"#,
    )
}

/// Ready once the gateway exists (the supergraph is loaded and the plan stage is built)
/// until shutdown starts: then 503, while requests in flight finish.
async fn ready(State(live): State<Arc<Live>>) -> axum::response::Response {
    if live.is_draining() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"draining"}"#,
        )
            .into_response();
    }
    let gw = live.current();
    let body = format!(
        r#"{{"status":"ready","subgraphs":{}}}"#,
        gw.subgraphs.endpoints().len()
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics_handler(State(live): State<Arc<Live>>) -> impl IntoResponse {
    let mut out = metrics::render(&live.current());
    out.push_str(&format!(
        "# HELP portico_http_requests_shed_total Requests refused with GATEWAY_OVERLOADED ([overload] max_in_flight_requests reached).\n# TYPE portico_http_requests_shed_total counter\nportico_http_requests_shed_total {}\n",
        live.shed.load(std::sync::atomic::Ordering::Relaxed)
    ));
    let (ok, failed) = live.reloads();
    out.push_str(
        "# HELP portico_reloads_total Reloads of the config and/or supergraph, by result \
         (a failed one leaves the previous config and supergraph serving).\n# TYPE portico_reloads_total counter\n",
    );
    out.push_str(&format!(
        "portico_reloads_total{{result=\"ok\"}} {ok}\nportico_reloads_total{{result=\"failed\"}} {failed}\n"
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
