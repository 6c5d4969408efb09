//! The HTTP face of a subgraph: `POST /graphql` (and subscriptions over a WebSocket at
//! `GET /graphql`) behind trust-token verification, and an open `GET /health`.
//!
//! Every `/graphql` request must carry a gateway trust token (`portico-trust`) minted for
//! this service, bound to the identity headers (`portico-user-id`, `portico-user-scopes`).
//! Anything else — missing, forged, expired, minted for another subgraph, headers altered —
//! is refused with HTTP 401 and a GraphQL-shaped error body with no `data`. The verified
//! [`Identity`] is the only identity resolvers ever see.

use std::net::SocketAddr;

use async_graphql::{ObjectType, Schema, SubscriptionType};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use portico_trust::{HEADER_TRUST, HEADER_USER_ID, HEADER_USER_SCOPES, Identity, TrustVerifier};

use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::KitError;

/// Largest accepted `/graphql` request body (read only after the trust token verified).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct TrustState {
    audience: &'static str,
    verifier: TrustVerifier,
}

/// The router of a subgraph: `POST /graphql` (trust token required) and `GET /health`.
pub fn graphql_router<Q, M, S>(
    schema: Schema<Q, M, S>,
    name: &'static str,
    trust: TrustVerifier,
) -> Router
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    // One replay guard per router (per subgraph process), shared by its clones.
    let state = TrustState {
        audience: name,
        verifier: trust.with_replay_guard(portico_trust::ReplayGuard::DEFAULT_CAPACITY),
    };
    let graphql = Router::new()
        .route(
            "/graphql",
            post(graphql_handler::<Q, M, S>).get(subscription_handler::<Q, M, S>),
        )
        // Inside the trust check: only the gateway's requests continue its traces.
        .layer(middleware::from_fn_with_state(name, trace_request))
        .layer(middleware::from_fn_with_state(state, require_trust))
        .layer(Extension(schema));
    Router::new().route("/health", get(health)).merge(graphql)
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The `Cookie` header of the request (as the gateway forwarded it, when its
/// `[headers]` rules propagate it to this subgraph), for resolvers that read a cookie.
#[derive(Debug, Clone, Default)]
pub struct RequestCookies(pub String);

impl RequestCookies {
    /// The value of cookie `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }
}

/// The server span of one trusted `/graphql` request, a child of the gateway's fetch
/// span when the request carries its `traceparent`. Disabled (and free) unless the
/// binary exports traces (see the gateway's `telemetry` module for the span target).
async fn trace_request(State(name): State<&'static str>, req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        target: "portico::otel",
        "subgraph request",
        otel.kind = "server",
        otel.name = "POST /graphql",
        portico.subgraph = name,
        http.response.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() && req.headers().contains_key("traceparent") {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
    }
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// `GET /graphql` upgraded to a WebSocket (`graphql-transport-ws`, or the older
/// `graphql-ws`): the gateway's subscriptions. The upgrade request carries the trust
/// token like any other (bound to its empty body, used once), so the connection serves
/// the identity the token vouched for, and only that.
async fn subscription_handler<Q, M, S>(
    Extension(schema): Extension<Schema<Q, M, S>>,
    Extension(identity): Extension<Identity>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    // Small buffers (tungstenite's defaults are 128 KiB each way): an idle subscription
    // costs a few KiB.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let mut data = async_graphql::Data::default();
            data.insert(identity);
            GraphQLWebSocket::new(stream, schema, protocol)
                .with_data(data)
                .serve()
        })
}

async fn graphql_handler<Q, M, S>(
    Extension(schema): Extension<Schema<Q, M, S>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> GraphQLResponse
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let cookies = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let request = req.into_inner();
    let span = tracing::info_span!(
        target: "portico::otel",
        "resolve",
        graphql.operation.name = request.operation_name.as_deref().unwrap_or(""),
    );
    schema
        .execute(request.data(identity).data(RequestCookies(cookies)))
        .instrument(span)
        .await
        .into()
}

/// Logs that the shared replay store did not answer (at most once per 10 s): the
/// request was checked against this process's accepted ids only.
fn shared_replay_unavailable(service: &str, reason: &str) {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(
            service,
            reason,
            "shared trust-token replay store unavailable; checking this process's ids only"
        );
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn require_trust(State(state): State<TrustState>, req: Request, next: Next) -> Response {
    // The token binds the body: read it (bounded) before verifying.
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            "BAD_REQUEST",
        );
    };
    let headers = &parts.headers;
    let verified = state.verifier.verify_token(
        header(headers, HEADER_TRUST),
        state.audience,
        header(headers, HEADER_USER_ID),
        header(headers, HEADER_USER_SCOPES),
        &bytes,
    );
    let verified = match (verified, state.verifier.shared_replay()) {
        (Ok(v), Some(store)) => match store.claim(state.audience, &v.jti, v.dead_after).await {
            Ok(true) => Ok(v),
            Ok(false) => Err(portico_trust::TrustError::Replayed),
            Err(reason) => {
                shared_replay_unavailable(state.audience, &reason);
                Ok(v)
            }
        },
        (verified, _) => verified,
    };
    match verified {
        Ok(v) => {
            parts.extensions.insert(v.identity);
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(err) => {
            tracing::warn!(service = state.audience, error = %err, "request refused: no valid trust token");
            error_response(
                StatusCode::UNAUTHORIZED,
                &err.to_string(),
                "UNAUTHENTICATED",
            )
        }
    }
}

/// A refusal: a GraphQL error body without `data`.
fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, Json(body)).into_response()
}

/// Bind a TCP listener (port 0 picks a free port) and return it with its actual address.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), KitError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serve `router` on `addr` until the process ends.
pub async fn serve(router: Router, addr: SocketAddr) -> Result<(), KitError> {
    let (listener, _) = bind(addr).await?;
    serve_listener(router, listener).await
}

/// Serve `router` on an already bound listener.
pub async fn serve_listener(
    router: Router,
    listener: tokio::net::TcpListener,
) -> Result<(), KitError> {
    axum::serve(listener, router).await?;
    Ok(())
}
