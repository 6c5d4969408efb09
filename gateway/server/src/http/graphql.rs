//! The GraphQL request pipeline, one stage after another (DESIGN "how a request flows").

use std::sync::Arc;
use std::sync::atomic::Ordering;

use apollo_compiler::executable::Operation;
use apollo_compiler::parser::Parser;
use apollo_compiler::response::JsonMap;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::metrics::{OperationKind, PanicSite};
use super::playground;
use crate::auth::Identity;
use crate::authz::Filtered;
use crate::error::{
    ErrorCode, GraphQLError, GraphQLResponse, Location, RequestFailure, catch_panic,
};
use crate::execute::{self, ExecutionInput};
use crate::inflight::Turn;
use crate::limits;
use crate::plan::{ParsedDocument, PlanJob, PlanKey, PlanningError, hash_filtered, hash_query};
use crate::{Inner, Live};
use apollo_compiler::ExecutableDocument;
use portico_federation::plan::QueryPlan;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const HEADER_INCLUDE_PLAN: &str = "portico-include-plan";
/// Asks for `extensions.explain` (see `[explain]`).
const HEADER_EXPLAIN: &str = "portico-explain";

fn header_is_true(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// The body of a GraphQL-over-HTTP request (JSON, or GET parameters).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GraphQLRequest {
    query: Option<String>,
    /// Set by the gateway: this request may be split for `@defer` (the top-level
    /// request; not batch items, WebSocket operations or the parts themselves).
    #[serde(skip)]
    may_defer: bool,
    /// Set by the gateway: `query` was derived from a text already resolved and checked
    /// (APQ, trusted documents), so it is used as is.
    #[serde(skip)]
    derived: bool,
    /// Set by the gateway: `@defer` delivered incrementally (see [`DeferTarget`]).
    #[serde(skip)]
    defer: Option<DeferTarget>,
    /// A trusted document's id, sent instead of the query.
    #[serde(default)]
    document_id: Option<String>,
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    extensions: Option<Map<String, Value>>,
}

/// Where the payloads of an operation with `@defer` go. The initial one (shaped by the
/// split's `initial` operation), with the subgraph response headers passed on so far
/// and the rate limiter's decision, goes to the request handler, which answers with it
/// while the deferred fetches run; then each deferred fragment's part (its JSON) as
/// soon as its fetches are done, when there are at most [`SEPARATE_PARTS`] fragments.
#[derive(Clone)]
pub(super) struct DeferTarget {
    split: Arc<crate::defer::Split>,
    sink: Arc<parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<DeferStart>>>>,
    parts: tokio::sync::mpsc::UnboundedSender<String>,
    delivered: Arc<parking_lot::Mutex<crate::defer::Delivered>>,
}

/// Most deferred fragments of one operation delivered each in a part of its own (each
/// costs a document of its own, parsed and validated); beyond, they all come with the
/// last part.
const SEPARATE_PARTS: usize = 16;

impl std::fmt::Debug for DeferTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferTarget").finish_non_exhaustive()
    }
}

impl DeferTarget {
    fn send(&self, start: DeferStart) {
        if let Some(sink) = self.sink.lock().take() {
            // The handler may have gone (the client left): nothing to do then.
            let _ = sink.send(start);
        }
    }
}

/// The initial payload of an operation with `@defer` (see [`DeferTarget`]).
pub(super) struct DeferStart {
    pub(super) response: GraphQLResponse,
    pub(super) passed_on: HeaderMap,
    pub(super) quota: Option<crate::ratelimit::Decision>,
}

/// What makes two client queries identical (`[deduplication] requests`): everything the
/// execution of a query depends on. The plan key (the query's hash, or the hash of the
/// operation as authorization filtered it, the operation name and the override labels),
/// the coerced variables, the identity, and the values of every client header a
/// `[headers]` rule propagates. Compared in full; the request id, the client's other
/// headers and its rate-limit state do not change what subgraphs answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SharedKey {
    plan: PlanKey,
    variables: Vec<u8>,
    user_id: Option<String>,
    scopes: Vec<String>,
    /// `(index in the propagated names, value)`, every value of each.
    headers: Vec<(usize, HeaderValue)>,
}

/// The executed response identical queries share.
pub(crate) type Shared = Arc<GraphQLResponse>;

impl SharedKey {
    fn new(
        plan: PlanKey,
        variables: &Map<String, Value>,
        identity: &Identity,
        propagated: &[axum::http::HeaderName],
        headers: &HeaderMap,
    ) -> Self {
        let mut values = Vec::new();
        for (i, name) in propagated.iter().enumerate() {
            values.extend(headers.get_all(name).iter().map(|v| (i, v.clone())));
        }
        Self {
            plan,
            // Serialising a map cannot fail; an empty key part would still differ from
            // any non-empty variables.
            variables: serde_json::to_vec(variables).unwrap_or_default(),
            user_id: identity.user_id.clone(),
            scopes: identity.scopes.clone(),
            headers: values,
        }
    }
}

/// `GET|POST /graphql`.
pub(super) async fn handle(State(live): State<Arc<Live>>, request: Request) -> Response {
    // Subscriptions over a WebSocket (`subscriptions.rs`).
    if super::subscriptions::is_upgrade(&request) {
        return super::subscriptions::websocket(live, request).await;
    }
    // The supergraph this request is served with, whatever reloads happen meanwhile.
    let gw = live.current();
    // Load shedding: a place among the requests in flight, or a fast 503.
    let overload = &gw.config.overload;
    let Ok(place) = live
        .admit(std::time::Duration::from_millis(overload.queue_timeout_ms))
        .await
    else {
        gw.metrics.record_response(503);
        let failure = RequestFailure::new(
            ErrorCode::GatewayOverloaded,
            "the gateway is serving as many requests as it can; retry later",
        );
        let mut response = failure_response(failure, response_content_type(request.headers()));
        if let Ok(v) = HeaderValue::from_str(&overload.retry_after_secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    };
    let started = std::time::Instant::now();
    let json_type = response_content_type(request.headers());
    let mut quota = None;
    // Sent to subgraphs, logged with every failure, shown in 500 responses.
    let request_id = uuid::Uuid::new_v4().to_string();
    let deadline = std::time::Duration::from_millis(gw.config.request_timeout_ms);
    let _in_flight = gw.metrics.in_flight();
    // Client identification for logs (Apollo's header names too), bounded and printable.
    let client_name = client_header(
        request.headers(),
        ["graphql-client-name", "apollographql-client-name"],
    );
    let client_version = client_header(
        request.headers(),
        ["graphql-client-version", "apollographql-client-version"],
    );
    // Set by the pipeline once the operation is known.
    let mut kind = OperationKind::Unknown;
    let mut operation_name = String::new();
    let span = crate::telemetry::request_span(request.headers());
    // The last-resort catch: a panic anywhere in the pipeline costs this request only.
    let guarded = catch_panic(pipeline(
        &gw,
        request,
        json_type,
        &mut quota,
        &request_id,
        &mut kind,
        &mut operation_name,
    ))
    .instrument(span.clone());
    let outcome = match tokio::time::timeout(deadline, guarded).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(detail)) => {
            gw.metrics.record_panic(PanicSite::Request);
            Err(internal_failure(
                &gw,
                ErrorCode::InternalServerError,
                "internal server error",
                &request_id,
                &format!("the request pipeline panicked: {detail}"),
            ))
        }
        Err(_) => Err(RequestFailure::new(
            ErrorCode::GatewayTimeout,
            "the request did not complete within request_timeout_ms",
        )),
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(failure) => failure_response(failure, json_type),
    };
    if let Some(decision) = &quota {
        crate::ratelimit::set_headers(response.headers_mut(), decision);
    }
    let status = response.status().as_u16();
    gw.metrics.record_response(status);
    gw.metrics.record_duration(kind, status, started.elapsed());
    gw.metrics.record_client(&client_name, &client_version);
    crate::telemetry::finish_request(&span, kind.label(), &operation_name, status, &request_id);
    // The access log: never the body, variables, headers or tokens.
    tracing::info!(
        target: "portico::access",
        request_id,
        operation = operation_name.as_str(),
        operation_type = kind.label(),
        client_name = client_name.as_str(),
        client_version = client_version.as_str(),
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1e3,
        "graphql request"
    );
    // `@defer`'s deferred parts still run in the body: they keep the admission place.
    super::subscriptions::hold_place(response, place)
}

/// The first of `names` present, without control characters, at most 64 characters.
fn client_header(headers: &HeaderMap, names: [&str; 2]) -> String {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .map(|v| v.chars().filter(|c| !c.is_control()).take(64).collect())
        .unwrap_or_default()
}

/// Every stage in order; each one may refuse the request with a [`RequestFailure`].
/// `json_type` is the response content type the client accepts; `quota` receives the
/// rate limiter's decision, for the `RateLimit-*` headers.
async fn pipeline(
    gw: &Arc<Inner>,
    request: Request,
    json_type: &'static str,
    quota: &mut Option<crate::ratelimit::Decision>,
    request_id: &str,
    kind: &mut OperationKind,
    operation_name_out: &mut String,
) -> Result<Response, RequestFailure> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;

    // Playground: a browser navigating to the endpoint.
    if parts.method == Method::GET
        && gw.config.playground_enabled()
        && accepts_html(headers)
        && !parts.uri.query().unwrap_or("").contains("query=")
    {
        return Ok(playground::page(&gw.config));
    }

    // 1. Request guard: method, CSRF, content type, body size.
    let is_get = match parts.method {
        Method::GET => true,
        Method::POST => false,
        _ => {
            return Err(RequestFailure::new(
                ErrorCode::MethodNotAllowed,
                "use GET or POST",
            ));
        }
    };
    if gw.config.csrf.enabled && !is_preflighted(headers, &gw.config.csrf.required_headers) {
        return Err(RequestFailure::new(
            ErrorCode::CsrfPrevention,
            "this request could have been sent by a browser without a CORS preflight: send \
             `Content-Type: application/json` or a `portico-csrf` header",
        ));
    }
    let request: GraphQLRequest = if is_get {
        read_get_params(parts.uri.query().unwrap_or(""))?
    } else {
        if !is_json(headers) {
            return Err(RequestFailure::new(
                ErrorCode::UnsupportedMediaType,
                "POST requests must have `Content-Type: application/json`",
            ));
        }
        let bytes = read_body(headers, body, gw.config.limits.max_body_bytes).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            let batch = read_batch(gw, &bytes)?;
            let mut responses = Vec::with_capacity(batch.len());
            let mut passed_on = HeaderMap::new();
            for request in batch {
                // Each operation on its own: a refusal is that item's answer.
                let response = operation(
                    gw,
                    &parts,
                    request,
                    false,
                    quota,
                    request_id,
                    kind,
                    operation_name_out,
                )
                .await
                .and_then(|outcome| match outcome {
                    Outcome::Done(response, headers) => Ok((response, headers)),
                    Outcome::Subscribe(_) | Outcome::Defer(_) => Err(RequestFailure::new(
                        ErrorCode::SubscriptionTransportRequired,
                        "a subscription cannot be an item of a batch",
                    )),
                })
                .unwrap_or_else(|failure| {
                    let response = GraphQLResponse {
                        errors: failure.errors,
                        data: None,
                        extensions: Map::new(),
                    };
                    (response, HeaderMap::new())
                });
                responses.push(response.0);
                crate::headers::append_all(&mut passed_on, response.1);
            }
            let mut http = json_response(StatusCode::OK, &responses, json_type);
            crate::headers::append_all(http.headers_mut(), passed_on);
            return Ok(http);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            RequestFailure::new(
                ErrorCode::BadRequest,
                format!("the body is not a GraphQL request: {e}"),
            )
        })?
    };
    // Only the request itself may split for `@defer` (not batch items, not the parts).
    let mut request = request;
    request.may_defer = true;
    let outcome = operation(
        gw,
        &parts,
        request,
        is_get,
        quota,
        request_id,
        kind,
        operation_name_out,
    )
    .await?;
    let (response, passed_on) = match outcome {
        Outcome::Done(response, passed_on) => (response, passed_on),
        Outcome::Defer(deferred) => {
            let (split, request) = *deferred;
            return deferred_response(
                gw,
                &parts,
                split,
                request,
                is_get,
                quota,
                request_id,
                kind,
                operation_name_out,
                json_type,
            )
            .await;
        }
        Outcome::Subscribe(prepared) => {
            let (sse, multipart) = (
                accepts_event_stream(headers),
                accepts_multipart_subscriptions(headers),
            );
            if !sse && !multipart {
                return Err(RequestFailure::new(
                    ErrorCode::SubscriptionTransportRequired,
                    "subscriptions stream their events: send `Accept: text/event-stream` \
                     (GraphQL over SSE) or `Accept: multipart/mixed; subscriptionSpec=\"1.0\"`, \
                     or open a WebSocket (graphql-transport-ws)",
                ));
            }
            let events = crate::subscription::events(gw.clone(), *prepared)?;
            return Ok(if sse {
                super::subscriptions::sse(events)
            } else {
                super::subscriptions::multipart(events)
            });
        }
    };
    let mut http = json_response(StatusCode::OK, &response, json_type);
    crate::headers::append_all(http.headers_mut(), passed_on);
    Ok(http)
}

/// `@defer` (`defer.rs`): with `Accept: multipart/mixed`, the operation runs once, as
/// `split.planned`: its plan's primary part runs, the initial payload is sent at once,
/// then the deferred fragments' own fetches run and their fields follow
/// (`subscriptions.rs::deferred`). Otherwise the whole operation in one response. The
/// run carries the resolved text (`derived`: an APQ hash or a trusted document's id was
/// already resolved and checked).
#[allow(clippy::too_many_arguments)] // the pipeline's state, passed down once
async fn deferred_response(
    gw: &Arc<Inner>,
    parts: &axum::http::request::Parts,
    split: crate::defer::Split,
    mut request: GraphQLRequest,
    is_get: bool,
    quota: &mut Option<crate::ratelimit::Decision>,
    request_id: &str,
    kind: &mut OperationKind,
    operation_name_out: &mut String,
    json_type: &'static str,
) -> Result<Response, RequestFailure> {
    request.may_defer = false;
    request.derived = true;
    request.document_id = None;
    if let Some(extensions) = request.extensions.as_mut() {
        extensions.remove("persistedQuery");
    }
    if !accepts_multipart_defer(&parts.headers) {
        // Without multipart, no incremental delivery: the whole result in one response.
        request.query = Some(split.full.clone());
        let outcome = operation(
            gw,
            parts,
            request,
            is_get,
            quota,
            request_id,
            kind,
            operation_name_out,
        )
        .await?;
        let Outcome::Done(mut response, passed_on) = outcome else {
            return Err(RequestFailure::new(
                ErrorCode::BadRequest,
                "@defer in a subscription is not supported",
            ));
        };
        strip_defer_placeholders(&mut response);
        let mut http = json_response(StatusCode::OK, &response, json_type);
        crate::headers::append_all(http.headers_mut(), passed_on);
        return Ok(http);
    }
    // One run, on a task of its own: it outlives this handler, which answers as soon as
    // the initial payload is ready. It ends with the request timeout, or when the
    // client leaves (the response body drops it).
    let (sink, started) = tokio::sync::oneshot::channel();
    let (part_sink, parts_out) = tokio::sync::mpsc::unbounded_channel();
    let split = Arc::new(split);
    let delivered = Arc::new(parking_lot::Mutex::new(crate::defer::Delivered::default()));
    request.query = Some(split.planned_text.clone());
    request.defer = Some(DeferTarget {
        split: split.clone(),
        sink: Arc::new(parking_lot::Mutex::new(Some(sink))),
        parts: part_sink,
        delivered: delivered.clone(),
    });
    let (task_gw, task_parts, task_id) = (gw.clone(), parts.clone(), request_id.to_string());
    let deadline = std::time::Duration::from_millis(gw.config.request_timeout_ms);
    let run = super::subscriptions::AbortOnDrop(tokio::spawn(async move {
        let run = run_operation(&task_gw, &task_parts, request, &task_id);
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(Outcome::Done(response, _))) => Ok(response),
            Ok(Ok(_)) => Err(RequestFailure::new(
                ErrorCode::BadRequest,
                "@defer in a subscription is not supported",
            )),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(RequestFailure::new(
                ErrorCode::GatewayTimeout,
                "the request did not complete within request_timeout_ms",
            )),
        }
    }));
    match started.await {
        Ok(start) => {
            *quota = start.quota;
            let mut http = super::subscriptions::deferred(
                gw.clone(),
                start.response,
                run,
                split,
                parts_out,
                delivered,
            );
            crate::headers::append_all(http.headers_mut(), start.passed_on);
            Ok(http)
        }
        // The run ended before any payload: it was refused (limits, authentication,
        // cost), or failed.
        Err(_) => match run.finish().await {
            Ok(mut response) => {
                strip_defer_placeholders(&mut response);
                Ok(json_response(StatusCode::OK, &response, json_type))
            }
            Err(failure) => Err(failure),
        },
    }
}

/// The items of a batch (a JSON array of GraphQL requests), when batching is on and the
/// batch is not empty and not longer than `[batching] max_size`.
fn read_batch(gw: &Inner, bytes: &[u8]) -> Result<Vec<GraphQLRequest>, RequestFailure> {
    let config = &gw.config.batching;
    if !config.enabled {
        return Err(RequestFailure::new(
            ErrorCode::BatchingNotEnabled,
            "batched requests (a JSON array) are not enabled on this gateway \
             (`[batching] enabled = true`)",
        ));
    }
    let batch: Vec<GraphQLRequest> = serde_json::from_slice(bytes).map_err(|e| {
        RequestFailure::new(
            ErrorCode::BadRequest,
            format!("the body is not a batch of GraphQL requests: {e}"),
        )
    })?;
    if batch.is_empty() || batch.len() > config.max_size {
        return Err(RequestFailure::new(
            ErrorCode::BatchLimitExceeded,
            format!(
                "a batch holds 1 to {} requests (`[batching] max_size`), this one {}",
                config.max_size,
                batch.len()
            ),
        ));
    }
    Ok(batch)
}

/// The query text of `request`: sent, or (automatic persisted queries) looked up by the
/// `extensions.persistedQuery.sha256Hash` sent instead, which a request carrying both
/// registers after checking that the text hashes to it.
async fn resolve_query(gw: &Inner, request: &GraphQLRequest) -> Result<Arc<str>, RequestFailure> {
    use crate::config::TrustedDocumentsMode as Mode;
    if request.derived
        && let Some(query) = &request.query
    {
        return Ok(Arc::from(query.as_str()));
    }
    let mode = gw.config.trusted_documents.mode;
    let not_in_list = || {
        RequestFailure::new(
            ErrorCode::PersistedQueryNotInList,
            "this operation is not in the gateway's trusted documents",
        )
    };
    if mode == Mode::Off {
        if request.document_id.is_some() {
            return Err(RequestFailure::new(
                ErrorCode::BadRequest,
                "`documentId` needs trusted documents (`[trusted_documents]`)",
            ));
        }
        return resolve_text(gw, request).await;
    }
    let manifest = gw.trusted.current();
    // An id: the document of the manifest (a trusted document's id, or the APQ hash
    // of one).
    let apq_hash = request
        .extensions
        .as_ref()
        .and_then(|e| e.get("persistedQuery"))
        .and_then(|p| p.get("sha256Hash"))
        .and_then(Value::as_str);
    if let Some(id) = request.document_id.as_deref() {
        return manifest.document(id).ok_or_else(not_in_list);
    }
    if let Some(document) = apq_hash.and_then(|h| manifest.document(h)) {
        return Ok(document);
    }
    let text = resolve_text(gw, request).await?;
    if !manifest.allows(&text) {
        gw.trusted.count_unknown();
        // The hash, not the text: logs never hold client documents.
        tracing::warn!(
            mode = if mode == Mode::Enforce { "enforce" } else { "log" },
            document_sha256 = %hex::encode(crate::plan::hash_query(&text)),
            "operation not in the trusted documents"
        );
        if mode == Mode::Enforce {
            return Err(not_in_list());
        }
    }
    Ok(text)
}

/// The query text: sent, or (APQ) looked up by its hash; see [`resolve_query`].
async fn resolve_text(gw: &Inner, request: &GraphQLRequest) -> Result<Arc<str>, RequestFailure> {
    let text = request.query.as_deref().filter(|q| !q.trim().is_empty());
    let persisted = request
        .extensions
        .as_ref()
        .and_then(|e| e.get("persistedQuery"));
    let Some(persisted) = persisted else {
        return text.map(Arc::from).ok_or_else(|| {
            RequestFailure::new(ErrorCode::BadRequest, "the request has no `query`")
        });
    };
    if !gw.config.apq.enabled {
        return match text {
            // The client sent the text anyway: serve it, just do not remember it.
            Some(text) => Ok(Arc::from(text)),
            // APQ clients fall back to sending the full query on this code.
            None => Err(RequestFailure::new(
                ErrorCode::PersistedQueryNotSupported,
                "PersistedQueryNotSupported",
            )),
        };
    }
    let bad = |m: &str| RequestFailure::new(ErrorCode::BadRequest, m.to_string());
    if persisted.get("version").and_then(Value::as_u64) != Some(1) {
        return Err(bad("`extensions.persistedQuery.version` must be 1"));
    }
    let hash = persisted
        .get("sha256Hash")
        .and_then(Value::as_str)
        .and_then(|h| {
            let bytes = hex::decode(h).ok()?;
            <[u8; 32]>::try_from(bytes).ok()
        })
        .ok_or_else(|| {
            bad("`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits")
        })?;
    match text {
        Some(text) => {
            if crate::plan::hash_query(text) != hash {
                return Err(RequestFailure::new(
                    ErrorCode::PersistedQueryHashMismatch,
                    "the query does not hash to `extensions.persistedQuery.sha256Hash`",
                ));
            }
            // Only a query that fits the length limit is worth remembering.
            limits::check_query_length(text, &gw.config.limits)?;
            let text: Arc<str> = Arc::from(text);
            gw.persisted.insert(hash, text.clone()).await;
            Ok(text)
        }
        None => gw.persisted.get(&hash).await.ok_or_else(|| {
            RequestFailure::new(ErrorCode::PersistedQueryNotFound, "PersistedQueryNotFound")
        }),
    }
}

/// One operation of a request (the request itself, or one item of a batch): stages 2
/// to 12.
#[allow(clippy::too_many_arguments)] // the pipeline's state, passed down once
async fn operation(
    gw: &Arc<Inner>,
    parts: &axum::http::request::Parts,
    request: GraphQLRequest,
    is_get: bool,
    quota: &mut Option<crate::ratelimit::Decision>,
    request_id: &str,
    kind: &mut OperationKind,
    operation_name_out: &mut String,
) -> Result<Outcome, RequestFailure> {
    let headers = &parts.headers;
    let mut request = request;
    let defer_target = request.defer.take();
    let defer_split = defer_target.as_ref().map(|t| t.split.clone());
    let query = resolve_query(gw, &request).await?;
    let query: &str = &query;

    // 2. Document: length limit, parse and validate against the API schema (cached).
    limits::check_query_length(query, &gw.config.limits)?;
    let (query_hash, parsed) = cached_document(gw, query);
    let document = match parsed.as_ref() {
        Ok(document) => document,
        Err(errors) => {
            return Err(RequestFailure {
                status: StatusCode::BAD_REQUEST,
                errors: errors.clone(),
            });
        }
    };

    // 3. Operation: the one named (or the only one); queries only over GET.
    let operation_name = request.operation_name.as_deref().filter(|n| !n.is_empty());
    let operation = document.operations.get(operation_name).map_err(|e| {
        RequestFailure::new(
            ErrorCode::GraphqlUnknownOperationName,
            e.message().to_string(),
        )
    })?;
    *kind = OperationKind::of(operation.operation_type);
    // A `@defer` part is not what the client sent: its operation was recorded already.
    if let Some(usage) = gw.usage.as_ref().filter(|_| !request.derived) {
        usage.record(
            &hex::encode(query_hash),
            query,
            &client_header(
                headers,
                ["graphql-client-name", "apollographql-client-name"],
            ),
            &client_header(
                headers,
                ["graphql-client-version", "apollographql-client-version"],
            ),
        );
    }
    if let Some(name) = &operation.name {
        *operation_name_out = name.to_string();
    }
    if is_get && !operation.operation_type.is_query() {
        return Err(RequestFailure::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{} operations are only accepted over POST",
                operation.operation_type
            ),
        ));
    }
    if operation.operation_type.is_subscription() && !gw.config.subscriptions.enabled {
        return Err(RequestFailure::new(
            ErrorCode::GraphqlValidationFailed,
            "subscriptions are not enabled on this gateway (`[subscriptions] enabled`)",
        ));
    }

    // 4. Operation limits: depth, aliases, root fields.
    limits::check_operation(document, operation, &gw.config.limits)?;
    limits::check_directives(document, &gw.config.limits)?;

    // `@defer` (only where the caller can deliver incrementally), on a document that
    // validated and passed the limits: the caller runs the parts, each through these
    // stages.
    if request.may_defer
        && let Some(split) = crate::defer::split(
            query,
            request.operation_name.as_deref(),
            request.variables.as_ref().unwrap_or(&Map::new()),
        )
    {
        let mut request = request;
        request.query = Some(query.to_string());
        return Ok(Outcome::Defer(Box::new((split, request))));
    }

    // 5. Authentication: a bad token stops here, before any subgraph is called.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let (identity, token_expiry) = gw
        .auth
        .authenticate_with_expiry(authorization)
        .instrument(tracing::info_span!(target: "portico::otel", "authenticate"))
        .await
        .map_err(|e| RequestFailure::from(e.to_graphql_error()))?;

    // 6. Authorization (@authenticated, @requiresScopes, @policy, config rules):
    //    unauthorized fields are removed from the operation that is planned (and answered
    //    with null and an error), or the request is refused (`reject_unauthorized`).
    gw.authz.check_identity(&identity)?;
    let authorized = gw.authz.authorize(document, operation, &identity)?;
    // The filtered operation itself is built only when its plan is not cached.
    let (filtered, plan_query_hash, authz_errors) = match authorized {
        Some(mut filtered) => {
            let hash = hash_filtered(&query_hash, &filtered.denied);
            let errors = std::mem::take(&mut filtered.errors);
            (Some(filtered), hash, errors)
        }
        None => (None, query_hash, Vec::new()),
    };

    // 7. Variables, coerced against the operation's definitions.
    let variables = coerce_variables(gw, operation, request.variables.unwrap_or_default())?;
    let variables_json = match serde_json::to_value(&*variables) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };

    // 8. Cost and rate limit: refused above `cost.max_cost`, then the estimate is taken
    //    from the client's budget (user id, else client address).
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let admitted = crate::cost::admit(
        gw,
        document,
        operation_name,
        &variables_json,
        &identity,
        peer,
        headers,
        quota,
    )
    .instrument(tracing::info_span!(target: "portico::otel", "cost"))
    .await?;

    // 9. Introspection, answered by the gateway from the API schema.
    let introspection = introspect(gw, document, operation, &variables)?;

    // 10. Plan: cached by (query hash, operation name, override labels); a miss plans
    //     on the blocking pool, once however many requests wait for it (`plan/stage.rs`).
    let plan_key = (!only_meta_fields(document, operation)).then(|| PlanKey {
        query: plan_query_hash,
        operation_name: operation_name.map(str::to_string),
        override_labels: gw.override_labels_for_request(),
    });
    // What makes this query identical to another in flight (`[deduplication] requests`);
    // never an incremental `@defer` run, whose initial payload goes to its own client.
    let shared_key = match (&gw.shared_requests, &plan_key) {
        (Some(_), Some(key)) if operation.operation_type.is_query() && defer_target.is_none() => {
            Some(SharedKey::new(
                key.clone(),
                &variables_json,
                &identity,
                gw.subgraphs.header_rules().propagated(),
                headers,
            ))
        }
        _ => None,
    };
    let plan = match plan_key {
        // Root `__schema`/`__type`/`__typename` are answered here, never planned (nor
        // looked up in the plan cache, where they would only count as misses).
        None => Arc::new(QueryPlan::default()),
        Some(plan_key) => {
            let job = |key: &PlanKey| plan_job(gw, &parsed, filtered, &identity, key);
            gw.plans
                .plan(plan_key, job)
                .instrument(tracing::info_span!(target: "portico::otel", "plan"))
                .await
                .map_err(|e| planning_failure(gw, &e, request_id))?
        }
    };

    // A response carrying a subgraph's response headers (`respond` rules) is one
    // client's: never shared.
    let shared_key = shared_key.filter(|_| {
        let rules = gw.subgraphs.header_rules();
        !plan.any_fetch(|service| rules.responds(service))
    });

    // A subscription stops here: its events run the plan one by one
    // (`subscription.rs`), over the transport the caller picks.
    if operation.operation_type.is_subscription() {
        let client = gw.rate_limiter.client_key(&identity, peer, headers);
        return Ok(Outcome::Subscribe(Box::new(
            crate::subscription::Prepared {
                parsed: parsed.clone(),
                operation_name: operation_name.map(str::to_string),
                variables: variables_json,
                identity,
                client,
                peer,
                estimated: admitted.estimated,
                token_expiry,
                plan,
                request_id: request_id.to_string(),
                client_headers: headers.clone(),
            },
        )));
    }

    // 11. Execute: fetch, merge, shape. A panic here costs this request only. An
    //     identical query in flight is joined instead: its response is copied.
    let (mut leader, mut joined) = (None, None);
    if let (Some(table), Some(key)) = (&gw.shared_requests, shared_key) {
        match table.join_or_lead(key).await {
            Turn::Joined(shared) => joined = Some(shared),
            Turn::Lead(l) => leader = Some(l),
        }
    }
    // `@defer` delivered incrementally: the initial payload's shape (a document derived
    // from this one, parsed and validated through the same cache).
    let initial_document = defer_target
        .as_ref()
        .map(|target| cached_document(gw, &target.split.initial).1);
    // Each deferred fragment's part shape, when there are few enough of them.
    let part_documents: Vec<(String, Arc<ParsedDocument>)> = match &defer_target {
        Some(target) if target.split.labels().count() <= SEPARATE_PARTS => target
            .split
            .labels()
            .filter_map(|label| {
                let text = target.split.part(&label)?;
                Some((label, cached_document(gw, &text).1))
            })
            .collect(),
        _ => Vec::new(),
    };
    let initial = match (defer_target, initial_document.as_deref()) {
        (Some(target), Some(Ok(document))) => match document.operations.get(operation_name) {
            Ok(operation) => Some(initial_part(
                gw,
                target,
                document,
                operation,
                &part_documents,
                operation_name,
                &authz_errors,
                *quota,
            )),
            Err(_) => None,
        },
        _ => None,
    };
    let (mut response, passed_on) = match joined {
        Some(shared) => {
            // No `@defer` run is shared; the initial part (borrowing the authorization
            // errors merged below) ends here.
            drop(initial);
            gw.metrics.shared_requests.fetch_add(1, Ordering::Relaxed);
            // No fetch of a shared plan has `respond` rules: nothing is passed on.
            ((*shared).clone(), HeaderMap::new())
        }
        None => {
            let execution = execute::execute(
                &gw.subgraphs,
                ExecutionInput {
                    schema: gw.planner.api_schema(),
                    document,
                    operation,
                    plan: &plan,
                    variables: &variables_json,
                    introspection: introspection.as_ref().map(|(data, _)| data),
                    identity: &identity,
                    request_id,
                    client_headers: headers,
                    initial,
                },
            );
            let execution =
                execution.instrument(tracing::info_span!(target: "portico::otel", "execute"));
            let (response, passed_on) = catch_panic(execution).await.map_err(|detail| {
                gw.metrics.record_panic(PanicSite::Execute);
                internal_failure(
                    gw,
                    ErrorCode::InternalServerError,
                    "internal server error",
                    request_id,
                    &format!("execution panicked: {detail}"),
                )
            })?;
            match leader.take() {
                Some(leader) => {
                    // Copied only when someone joined.
                    let shared = Arc::new(response);
                    leader.publish(&shared);
                    let response = Arc::try_unwrap(shared).unwrap_or_else(|s| (*s).clone());
                    (response, passed_on)
                }
                None => (response, passed_on),
            }
        }
    };
    if let Some((_, errors)) = introspection {
        response.errors.extend(errors);
    }
    if !authz_errors.is_empty() {
        crate::authz::merge_errors(&mut response.errors, authz_errors, response.data.as_ref());
    }

    // 12. Response (with `extensions.cost` when enabled, `extensions.explain` when
    //     asked for and allowed).
    let explain = header_is_true(headers, HEADER_EXPLAIN) && gw.config.explain_allowed(&identity);
    let actual = gw.cost.finish(
        admitted,
        document,
        operation_name,
        &variables_json,
        &mut response,
        explain,
    );
    // The plan as the client wrote it: `@defer` labels are the client's, not the split's.
    let plan = match &defer_split {
        Some(split) => Arc::new(split.with_client_labels(&plan)),
        None => plan,
    };
    if header_is_true(headers, HEADER_INCLUDE_PLAN) && gw.config.plan_extension_enabled() {
        response
            .extensions
            .insert("queryPlan".into(), Value::String(plan.to_string()));
    }
    if explain {
        let cost = gw
            .cost
            .explain(document, operation_name, &variables_json, admitted, actual);
        response.extensions.insert(
            "explain".into(),
            serde_json::json!({
                "plan": serde_json::to_value(&*plan).unwrap_or(Value::Null),
                "planText": plan.to_string(),
                "cost": cost,
            }),
        );
    }
    // 13. Cache-Control for a successful GET query with a positive max-age (never for an
    //     explained one, which is meant for one caller).
    let mut passed_on = passed_on;
    if is_get && !explain && response.errors.is_empty() && operation.operation_type.is_query() {
        let age = crate::cache_control::max_age(&gw.config.cache_control, document, operation);
        if age > 0 {
            let scope = if authorization.is_some() {
                "private"
            } else {
                "public"
            };
            if let Ok(value) = HeaderValue::from_str(&format!("max-age={age}, {scope}")) {
                passed_on.insert(header::CACHE_CONTROL, value);
            }
        }
    }
    Ok(Outcome::Done(response, passed_on))
}

/// One operation sent over a WebSocket (a `subscribe` message's payload), through
/// stages 2 to 12 with the connection's headers; a panic costs this operation only.
pub(super) async fn ws_operation(
    gw: &Arc<Inner>,
    parts: &axum::http::request::Parts,
    payload: Value,
    request_id: &str,
) -> Result<Outcome, RequestFailure> {
    let request: GraphQLRequest = serde_json::from_value(payload).map_err(|e| {
        RequestFailure::new(
            ErrorCode::BadRequest,
            format!("the subscribe payload is not a GraphQL request: {e}"),
        )
    })?;
    run_operation(gw, parts, request, request_id).await
}

/// [`operation`] outside the HTTP request flow (a WebSocket's `subscribe`, `@defer`'s
/// second part), its own quota and labels; a panic costs this operation only.
async fn run_operation(
    gw: &Arc<Inner>,
    parts: &axum::http::request::Parts,
    request: GraphQLRequest,
    request_id: &str,
) -> Result<Outcome, RequestFailure> {
    let mut quota = None;
    let mut kind = OperationKind::Unknown;
    let mut name = String::new();
    let run = operation(
        gw, parts, request, false, &mut quota, request_id, &mut kind, &mut name,
    );
    catch_panic(run).await.unwrap_or_else(|detail| {
        gw.metrics.record_panic(PanicSite::Request);
        Err(internal_failure(
            gw,
            ErrorCode::InternalServerError,
            "internal server error",
            request_id,
            &format!("an operation panicked: {detail}"),
        ))
    })
}

/// What [`operation`] ends with: a response (and headers for the client), or a
/// subscription ready to stream.
#[allow(
    clippy::large_enum_variant,
    reason = "Done is every query's and mutation's outcome: boxing it would cost each an allocation"
)]
pub(super) enum Outcome {
    Done(GraphQLResponse, HeaderMap),
    Subscribe(Box<crate::subscription::Prepared>),
    /// An operation with `@defer`, split, and the request (its text resolved).
    Defer(Box<(crate::defer::Split, GraphQLRequest)>),
}

/// Does `operation` select only meta fields (`__typename`, `__schema`, `__type`) at its
/// root? Those are answered by the gateway, with nothing to plan.
fn only_meta_fields(document: &ExecutableDocument, operation: &Operation) -> bool {
    operation
        .root_fields(document)
        .all(|f| f.name.starts_with("__"))
}

/// The work of a plan-cache miss, run on the blocking pool: remove what authorization
/// denies (when the identity misses requirements), then plan the operation.
fn plan_job(
    gw: &Arc<Inner>,
    parsed: &Arc<ParsedDocument>,
    filtered: Option<Filtered>,
    identity: &Identity,
    key: &PlanKey,
) -> PlanJob {
    let gw = gw.clone();
    let parsed = parsed.clone();
    let identity = identity.clone();
    let operation_name = key.operation_name.clone();
    let labels = key.override_labels.clone();
    Box::new(move || {
        let Ok(document) = parsed.as_ref() else {
            return Err(PlanningError::Failed(
                "asked to plan a document that did not validate".into(),
            ));
        };
        let filtered = filtered.map(|f| {
            gw.authz
                .filter(gw.planner.api_schema(), document, &identity, &f)
        });
        let document = filtered.as_ref().unwrap_or(document);
        let name = operation_name.as_deref();
        // Authorization may leave only `__typename` at the root: nothing to plan (the
        // empty plan is cached like any other).
        if let Ok(operation) = document.operations.get(name)
            && only_meta_fields(document, operation)
        {
            return Ok(QueryPlan::default());
        }
        gw.planner.plan(document, name, &labels)
    })
}

/// A planning error as the client sees it: client errors with their message and code
/// (HTTP 4xx); failures and panics as a 500 that names only the request id.
fn planning_failure(gw: &Inner, error: &PlanningError, request_id: &str) -> RequestFailure {
    if error.is_client_error() {
        let error_json = GraphQLError::new(ErrorCode::BadRequest, error.to_string())
            .with_extension("code", error.code());
        return RequestFailure {
            status: error.http_status(),
            errors: vec![error_json],
        };
    }
    internal_failure(
        gw,
        ErrorCode::QueryPlanningFailed,
        "query planning failed",
        request_id,
        &error.to_string(),
    )
}

/// An HTTP 500 whose message is only `what` and the request id; `detail` is logged with
/// the request id, and sent as `extensions.detail` in dev mode only.
fn internal_failure(
    gw: &Inner,
    code: ErrorCode,
    what: &str,
    request_id: &str,
    detail: &str,
) -> RequestFailure {
    tracing::error!(request_id, code = code.as_str(), detail, "{what}");
    let mut error = GraphQLError::new(code, format!("{what} (request id {request_id})"))
        .with_extension("requestId", request_id);
    if gw.config.dev {
        error = error.with_extension("detail", detail);
    }
    RequestFailure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        errors: vec![error],
    }
}

/// The executor's side of a `@defer` run ([`DeferTarget`]): the initial payload's shape
/// and each deferred fragment's (`parts`), and where they go. Authorization errors go
/// with the payload that holds their field.
#[allow(clippy::too_many_arguments)] // the pipeline's state, passed down once
fn initial_part<'a>(
    gw: &'a Inner,
    target: DeferTarget,
    document: &'a apollo_compiler::validation::Valid<ExecutableDocument>,
    operation: &'a Operation,
    parts: &'a [(String, Arc<ParsedDocument>)],
    operation_name: Option<&str>,
    authz: &'a [crate::error::GraphQLError],
    quota: Option<crate::ratelimit::Decision>,
) -> execute::InitialPart<'a> {
    let held = |authz: &[crate::error::GraphQLError], response: &mut GraphQLResponse| {
        if authz.is_empty() {
            return;
        }
        let mut placed = Vec::new();
        crate::authz::merge_errors(&mut placed, authz.to_vec(), response.data.as_ref());
        placed.retain(|e| {
            e.path
                .as_deref()
                .is_some_and(|path| holds(response.data.as_ref(), path))
        });
        response.errors.extend(placed);
    };
    let parts = parts
        .iter()
        .filter_map(|(label, parsed)| {
            let document = parsed.as_ref().as_ref().ok()?;
            let operation = document.operations.get(operation_name).ok()?;
            Some(execute::DeferredPart {
                label: label.clone(),
                document,
                operation,
            })
        })
        .collect();
    let first_target = target.clone();
    let schema = gw.planner.api_schema();
    execute::InitialPart {
        document,
        operation,
        send: Box::new(move |mut response, passed_on| {
            held(authz, &mut response);
            first_target.delivered.lock().new_errors(&response.errors);
            first_target.send(DeferStart {
                response,
                passed_on,
                quota,
            });
        }),
        parts,
        send_part: Box::new(move |label, mut response| {
            held(authz, &mut response);
            let part =
                target
                    .delivered
                    .lock()
                    .part(&target.split, response, Some(label), &|a, o| {
                        schema.is_subtype(a, o)
                    });
            // The handler may have gone (the client left): nothing to do then.
            let _ = target.parts.send(part.to_string());
        }),
    }
}

/// Does `data` hold a value (null included) at `path`?
fn holds(data: Option<&execute::Val>, path: &[crate::error::PathElem]) -> bool {
    let mut at = data;
    for step in path {
        at = match (at, step) {
            (Some(v), crate::error::PathElem::Key(k)) => v.get(k),
            (Some(v), crate::error::PathElem::Index(i)) => v.at(*i),
            (None, _) => return false,
        };
    }
    at.is_some()
}

/// `query` parsed and validated against the API schema, from the document cache (by
/// the text's hash, also returned) or put there.
fn cached_document(gw: &Inner, query: &str) -> (crate::plan::QueryHash, Arc<ParsedDocument>) {
    let query_hash = hash_query(query);
    let parsed = match gw.documents.get(&query_hash) {
        Some(parsed) => parsed,
        None => {
            let parsed = Arc::new(parse_and_validate(gw, query));
            gw.documents.insert(query_hash, parsed.clone());
            parsed
        }
    };
    (query_hash, parsed)
}

fn parse_and_validate(gw: &Inner, query: &str) -> ParsedDocument {
    let parsing = tracing::info_span!(target: "portico::otel", "parse").entered();
    let ast = Parser::new()
        .token_limit(gw.config.limits.max_tokens)
        .parse_ast(query, "query.graphql")
        .map_err(|with| {
            let too_many_tokens = with
                .errors
                .iter()
                .any(|d| d.error.to_string().contains("token limit"));
            if too_many_tokens {
                return vec![GraphQLError::new(
                    ErrorCode::MaxTokensExceeded,
                    format!(
                        "the document has more than {} tokens",
                        gw.config.limits.max_tokens
                    ),
                )];
            }
            diagnostics(
                with.errors.iter().map(|d| d.to_json()),
                ErrorCode::GraphqlParseFailed,
            )
        })?;
    drop(parsing);
    let _validating = tracing::info_span!(target: "portico::otel", "validate").entered();
    ast.to_executable_validate(gw.planner.api_schema())
        .map_err(|with| {
            diagnostics(
                with.errors.iter().map(|d| d.to_json()),
                ErrorCode::GraphqlValidationFailed,
            )
        })
}

fn diagnostics(
    errors: impl Iterator<Item = apollo_compiler::response::GraphQLError>,
    code: ErrorCode,
) -> Vec<GraphQLError> {
    errors
        .map(|e| {
            let locations = e
                .locations
                .iter()
                .map(|l| Location {
                    line: l.line,
                    column: l.column,
                })
                .collect();
            GraphQLError::new(code, e.message).with_locations(locations)
        })
        .collect()
}

fn coerce_variables(
    gw: &Inner,
    operation: &Operation,
    raw: Map<String, Value>,
) -> Result<apollo_compiler::validation::Valid<JsonMap>, RequestFailure> {
    let bad = |message: String| RequestFailure::new(ErrorCode::BadUserInput, message);
    let map: JsonMap = serde_json::from_value(Value::Object(raw))
        .map_err(|e| bad(format!("invalid variables: {e}")))?;
    apollo_compiler::request::coerce_variable_values(gw.planner.api_schema(), operation, &map)
        .map_err(|e| bad(e.message().to_string()))
}

type Introspection = (Map<String, Value>, Vec<GraphQLError>);

fn introspect(
    gw: &Inner,
    document: &apollo_compiler::validation::Valid<apollo_compiler::ExecutableDocument>,
    operation: &Operation,
    variables: &apollo_compiler::validation::Valid<JsonMap>,
) -> Result<Option<Introspection>, RequestFailure> {
    let selects_schema = operation
        .root_fields(document)
        .any(|f| matches!(f.name.as_str(), "__schema" | "__type"));
    if !selects_schema {
        return Ok(None);
    }
    if !gw.config.introspection_enabled() {
        return Err(RequestFailure::new(
            ErrorCode::IntrospectionDisabled,
            "introspection is disabled",
        ));
    }
    let request_error = |e: apollo_compiler::request::RequestError| {
        let mut error =
            GraphQLError::new(ErrorCode::GraphqlValidationFailed, e.message().to_string());
        if let Some(lc) = e.location().and_then(|l| l.line_column(&document.sources)) {
            error = error.with_locations(vec![Location {
                line: lc.line,
                column: lc.column,
            }]);
        }
        RequestFailure::from(error)
    };
    apollo_compiler::introspection::check_max_depth(document, operation).map_err(request_error)?;
    let response = apollo_compiler::introspection::partial_execute(
        gw.planner.api_schema(),
        &gw.implementers,
        document,
        operation,
        variables,
    )
    .map_err(request_error)?;
    let data = match response.data.map(|d| serde_json::to_value(&d)) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    };
    let errors = response
        .errors
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|e| serde_json::from_value::<GraphQLError>(e).ok())
        .collect();
    Ok(Some((data, errors)))
}

fn read_get_params(query_string: &str) -> Result<GraphQLRequest, RequestFailure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        query: Option<String>,
        document_id: Option<String>,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let bad = |m: String| RequestFailure::new(ErrorCode::BadRequest, m);
    let params: Params = serde_urlencoded_like(query_string).map_err(bad)?;
    let json_param =
        |name: &str, raw: Option<String>| -> Result<Option<Map<String, Value>>, RequestFailure> {
            match raw.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| bad(format!("`{name}` is not a JSON object: {e}"))),
            }
        };
    Ok(GraphQLRequest {
        query: params.query,
        document_id: params.document_id,
        operation_name: params.operation_name,
        variables: json_param("variables", params.variables)?,
        extensions: json_param("extensions", params.extensions)?,
        may_defer: false,
        derived: false,
        defer: None,
    })
}

/// URL query parsing through axum's `Query` extractor machinery.
fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, String> {
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|e| format!("invalid query string: {e}"))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| format!("invalid query string: {}", e.body_text()))
}

/// The body, refused without reading when `Content-Length` already says it is too big.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, RequestFailure> {
    let too_large = || {
        RequestFailure::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body exceeds {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if declared.is_some() || e.to_string().contains("length limit") {
            too_large()
        } else {
            RequestFailure::new(ErrorCode::BadRequest, "the request body could not be read")
        }
    })
}

fn mime(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    mime(headers).is_some_and(|m| m == "application/json" || m == GRAPHQL_RESPONSE_JSON)
}

/// Apollo's CSRF rule: a request is safe when a browser would have had to preflight it.
fn is_preflighted(headers: &HeaderMap, required: &[String]) -> bool {
    let non_simple_type = mime(headers).is_some_and(|m| {
        !matches!(
            m.as_str(),
            "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        )
    });
    non_simple_type || required.iter().any(|h| headers.contains_key(h.as_str()))
}

/// Removes `defer.rs`'s placeholder fields from a response's data.
fn strip_defer_placeholders(response: &mut GraphQLResponse) {
    if let Some(data) = response.data.take() {
        let mut json = data.into_json();
        crate::defer::strip_placeholders(&mut json);
        response.data = Some(crate::execute::Val::from(json));
    }
}

/// Does a media range of `Accept` satisfy `wanted`?
fn accepts(headers: &HeaderMap, wanted: impl Fn(&str) -> bool) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| wanted(m.trim()))
}

/// Does the client accept `text/event-stream` (GraphQL over SSE)?
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    accepts(headers, |m| m.starts_with("text/event-stream"))
}

/// Does the client accept incremental delivery (`multipart/mixed`, not the subscription
/// flavour)?
fn accepts_multipart_defer(headers: &HeaderMap) -> bool {
    accepts(headers, |m| {
        m.starts_with("multipart/mixed") && !m.contains("subscriptionSpec")
    })
}

/// Does the client accept Apollo's multipart subscriptions (`multipart/mixed` with
/// `subscriptionSpec`)?
fn accepts_multipart_subscriptions(headers: &HeaderMap) -> bool {
    accepts(headers, |m| {
        m.starts_with("multipart/mixed") && m.contains("subscriptionSpec")
    })
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// `application/graphql-response+json` when the client accepts it, else `application/json`.
fn response_content_type(headers: &HeaderMap) -> &'static str {
    let accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|a| a.contains(GRAPHQL_RESPONSE_JSON));
    if accepts {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    }
}

/// What [`json_response`] sends: a response, or a batch's responses in order.
trait JsonBody {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;
}

impl JsonBody for GraphQLResponse {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        GraphQLResponse::write_json(self, out)
    }
}

impl JsonBody for Vec<GraphQLResponse> {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'[');
        for (i, response) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            response.write_json(out)?;
        }
        out.push(b']');
        Ok(())
    }
}

/// `body` as JSON.
fn json_response(status: StatusCode, body: &impl JsonBody, content_type: &'static str) -> Response {
    let mut bytes = Vec::with_capacity(4096);
    if body.write_json(&mut bytes).is_err() {
        bytes = br#"{"errors":[{"message":"response serialization failed","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#.to_vec();
    }
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response()
}

fn failure_response(failure: RequestFailure, content_type: &'static str) -> Response {
    let status = failure.status;
    let body = GraphQLResponse {
        errors: failure.errors,
        data: None,
        extensions: Map::new(),
    };
    let mut response = json_response(status, &body, content_type);
    match status {
        StatusCode::UNAUTHORIZED => {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn csrf_rule_matches_apollo() {
        let required = vec!["portico-csrf".to_string()];
        assert!(!is_preflighted(&headers(&[]), &required));
        assert!(!is_preflighted(
            &headers(&[("content-type", "text/plain")]),
            &required
        ));
        assert!(is_preflighted(
            &headers(&[("content-type", "application/json; charset=utf-8")]),
            &required
        ));
        assert!(is_preflighted(
            &headers(&[("portico-csrf", "1")]),
            &required
        ));
    }

    #[test]
    fn get_params_are_read() {
        let r = read_get_params("query=%7B%20a%20%7D&variables=%7B%22x%22%3A1%7D").expect("valid");
        assert_eq!(r.query.as_deref(), Some("{ a }"));
        assert_eq!(
            r.variables.and_then(|v| v.get("x").cloned()),
            Some(Value::from(1))
        );
        assert!(read_get_params("query=x&variables=nope").is_err());
    }
}
