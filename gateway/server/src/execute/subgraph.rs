//! Subgraph HTTP: one pooled reqwest client, per-subgraph URL, timeout and response size
//! limit, identity headers plus a trust token minted for that request (audience, identity
//! and the SHA-256 of the exact body sent, with a unique id), the client headers the
//! `[headers]` rules propagate (nothing else the client sent), and a request counter per
//! subgraph. A response body is read chunk by chunk and dropped as soon as it passes the
//! subgraph's `max_response_bytes`, so no subgraph can make the gateway buffer more. At
//! most `max_concurrent_requests` requests per subgraph are in flight (a semaphore per
//! endpoint; a request holds its slot until its body is read), so no more connections to
//! it are open at once; waiting for a slot counts against the subgraph's timeout.
//! Identical queries in flight to one subgraph at the same time (same body, identity and
//! forwarded headers) share one request when deduplication is on (`[deduplication]`): the
//! first is sent, the others wait for its response. Only a client query's requests are
//! shared ([`Sending::Query`]); a client mutation's, or any request to a subgraph whose
//! response headers reach clients (`respond` rules), is always sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Instrument;

use super::value::Val;
use crate::inflight::Turn;
use portico_trust::{
    HEADER_REQUEST_ID, HEADER_TRUST, HEADER_USER_ID, HEADER_USER_SCOPES, Identity, TrustSigner,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One subgraph as the executor sees it.
pub struct Endpoint {
    pub name: String,
    pub url: String,
    /// `url` parsed once (not per request); `None` when it does not parse, and each
    /// request then fails with the parse error.
    parsed_url: Option<reqwest::Url>,
    /// This subgraph's own HTTP client (its own TLS settings); else the shared one.
    client: Option<reqwest::Client>,
    /// TLS of subscription WebSockets to a `wss://` URL.
    websocket_tls: Option<Arc<rustls::ClientConfig>>,
    /// Deadline of one request, waiting for a slot included.
    pub timeout: Duration,
    /// Largest response body read, in bytes.
    pub max_response_bytes: usize,
    /// Most requests in flight at once.
    pub max_concurrent_requests: usize,
    /// Requests sent (a request that got no slot in time is not sent).
    pub requests: AtomicU64,
    /// Requests that got no GraphQL response (slot timeouts included).
    pub failures: AtomicU64,
    slots: tokio::sync::Semaphore,
    waiting: AtomicU64,
    breaker: parking_lot::Mutex<Breaker>,
    /// Retry budget: tokens (see `RetryConfig::budget_ratio`).
    retry_tokens: parking_lot::Mutex<f64>,
    /// Retries sent.
    pub retries: AtomicU64,
    /// Queries answered by another identical query's response instead of a request.
    pub deduplicated: AtomicU64,
    /// Queries in flight that identical ones may join (see [`DedupeKey`]).
    in_flight: crate::inflight::InFlightTable<DedupeKey, Outcome>,
    /// Duration of each request that went out (waiting for a slot excluded, retries
    /// each counted), for `/metrics`.
    pub(crate) latency: crate::http::metrics::DurationHistogram,
}

/// Circuit state of one subgraph (see [`Resilience`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Breaker {
    Closed {
        failures: u32,
    },
    /// Not called until then.
    Open {
        until: tokio::time::Instant,
    },
    /// One probe request in flight.
    Probing,
}

/// Most retry tokens saved up per subgraph.
const RETRY_TOKENS_MAX: f64 = 10.0;

/// Retries, the circuit breaker and deduplication (`[retries]`, `[circuit_breaker]`,
/// `[deduplication]`).
#[derive(Debug, Clone, Default)]
pub struct Resilience {
    pub retries: crate::config::RetryConfig,
    pub breaker: crate::config::CircuitBreakerConfig,
    /// Identical queries in flight to one subgraph share one request.
    pub dedupe: bool,
}

/// What makes two subgraph queries identical: everything the subgraph receives that can
/// change its answer. The trust token and request id differ per request but only carry
/// the same identity and body; everything else is here, compared in full (no hash that
/// could collide and hand one user another's answer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DedupeKey {
    body: bytes::Bytes,
    user_id: Option<String>,
    scopes: Vec<String>,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl DedupeKey {
    fn new(body: &bytes::Bytes, identity: &Identity, forwarded: &http::HeaderMap) -> Self {
        Self {
            body: body.clone(),
            user_id: identity.user_id.clone(),
            scopes: identity.scopes.clone(),
            headers: forwarded
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// The outcome of a query in flight, published once to the queries that joined it.
type Outcome = Result<SubgraphResponse, FetchError>;

impl Endpoint {
    pub fn new(
        name: String,
        url: String,
        timeout: Duration,
        max_response_bytes: usize,
        max_concurrent_requests: usize,
    ) -> Self {
        Self {
            name,
            parsed_url: reqwest::Url::parse(&url).ok(),
            url,
            client: None,
            websocket_tls: None,
            timeout,
            max_response_bytes,
            max_concurrent_requests,
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slots: tokio::sync::Semaphore::new(max_concurrent_requests),
            waiting: AtomicU64::new(0),
            breaker: parking_lot::Mutex::new(Breaker::Closed { failures: 0 }),
            retry_tokens: parking_lot::Mutex::new(RETRY_TOKENS_MAX),
            retries: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            in_flight: Default::default(),
            latency: Default::default(),
        }
    }

    /// Adds `old`'s counters and latency histogram to this endpoint's (a reload carries
    /// them over; the circuit breaker and retry budget start afresh).
    pub(crate) fn count_on_from(&self, old: &Endpoint) {
        for (mine, theirs) in [
            (&self.requests, &old.requests),
            (&self.failures, &old.failures),
            (&self.retries, &old.retries),
            (&self.deduplicated, &old.deduplicated),
        ] {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.latency.add_from(&old.latency);
    }

    /// Sends this subgraph's requests with `client` (its own TLS settings).
    /// TLS settings of this subgraph's subscription WebSockets (`wss://`).
    pub fn with_websocket_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.websocket_tls = Some(tls);
        self
    }

    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Is the circuit open (the subgraph not being called) now?
    pub fn circuit_open(&self) -> bool {
        matches!(*self.breaker.lock(), Breaker::Open { until } if tokio::time::Instant::now() < until)
    }

    /// May a request go out? `Err(time until the next probe)` while the circuit is open
    /// (or another request is probing).
    fn admit(&self, policy: &crate::config::CircuitBreakerConfig) -> Result<(), Duration> {
        if !policy.enabled {
            return Ok(());
        }
        let mut state = self.breaker.lock();
        let now = tokio::time::Instant::now();
        match *state {
            Breaker::Closed { .. } => Ok(()),
            Breaker::Open { until } if now < until => Err(until - now),
            Breaker::Open { .. } => {
                *state = Breaker::Probing;
                Ok(())
            }
            Breaker::Probing => Err(Duration::ZERO),
        }
    }

    /// Records the outcome of a request that went out (`failed`: no GraphQL response).
    fn record(&self, policy: &crate::config::CircuitBreakerConfig, failed: bool) {
        if !policy.enabled {
            return;
        }
        let mut state = self.breaker.lock();
        let open = || Breaker::Open {
            until: tokio::time::Instant::now() + Duration::from_millis(policy.cooldown_ms),
        };
        *state = match (*state, failed) {
            (_, false) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, true) if failures + 1 >= policy.failure_threshold => {
                tracing::warn!(
                    subgraph = self.name.as_str(),
                    failures = failures + 1,
                    cooldown_ms = policy.cooldown_ms,
                    "circuit opened: the subgraph is not called until the cool-down ends"
                );
                open()
            }
            (Breaker::Closed { failures }, true) => Breaker::Closed {
                failures: failures + 1,
            },
            (Breaker::Probing | Breaker::Open { .. }, true) => open(),
        };
    }

    /// Takes one retry token if there is one.
    fn take_retry_token(&self) -> bool {
        let mut tokens = self.retry_tokens.lock();
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn deposit_retry_tokens(&self, ratio: f64) {
        let mut tokens = self.retry_tokens.lock();
        *tokens = (*tokens + ratio).min(RETRY_TOKENS_MAX);
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent_requests
            .saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A slot, or `None` once `deadline` passes. Counted in `waiting` meanwhile (also when
    /// the caller gives up by dropping this future).
    async fn slot(
        &self,
        deadline: tokio::time::Instant,
    ) -> Option<tokio::sync::SemaphorePermit<'_>> {
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if let Ok(permit) = self.slots.try_acquire() {
            return Some(permit);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        // The semaphore is never closed, so `acquire` fails only by the deadline.
        tokio::time::timeout_at(deadline, self.slots.acquire())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

/// Why a subgraph request produced no GraphQL response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("subgraph '{0}' is not in the supergraph")]
    UnknownSubgraph(String),
    #[error("request to subgraph '{service}' timed out after {timeout:?}")]
    Timeout { service: String, timeout: Duration },
    #[error(
        "request to subgraph '{service}' timed out after {timeout:?} waiting for one of its {limit} request slots"
    )]
    SlotTimeout {
        service: String,
        timeout: Duration,
        limit: usize,
    },
    #[error("HTTP fetch failed from '{service}': {message}")]
    Http { service: String, message: String },
    #[error("response of subgraph '{service}' exceeds the limit of {limit} bytes")]
    ResponseTooLarge { service: String, limit: usize },
    #[error(
        "subgraph '{service}' is not called for now: its circuit is open after repeated failures (next try in {retry_in:?})"
    )]
    CircuitOpen { service: String, retry_in: Duration },
}

impl FetchError {
    /// Did the subgraph fail (no GraphQL response), as the circuit breaker counts it?
    /// A full slot queue, an oversized body or an open circuit say nothing of its health.
    fn is_subgraph_failure(&self) -> bool {
        matches!(self, FetchError::Timeout { .. } | FetchError::Http { .. })
    }

    /// Could the subgraph not have acted on the request, so that sending it again is
    /// safe (for a query)? The connection failed, or it answered 502, 503 or 504.
    fn is_retryable(&self) -> bool {
        match self {
            FetchError::Http { message, .. } => {
                message == "connection failed"
                    || ["502", "503", "504"]
                        .iter()
                        .any(|c| message.starts_with(&format!("HTTP status {c}")))
            }
            _ => false,
        }
    }
}

/// How a subgraph request may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// A subgraph mutation: sent exactly once, never retried or shared.
    Mutation,
    /// A query serving a client mutation (entity fetches after its root fields): retried,
    /// never shared, so that the client reads its own writes.
    QueryOfMutation,
    /// A query serving a client query: retried, and shared with identical ones in flight.
    Query,
}

/// A GraphQL request to a subgraph, serialised without copying its parts.
#[derive(serde::Serialize)]
struct RequestBody<'a> {
    query: &'a str,
    #[serde(rename = "operationName", skip_serializing_if = "Option::is_none")]
    operation_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Variables::is_empty")]
    variables: &'a Variables,
}

/// The variables of a subgraph request: the client's values it uses, and the lists of
/// entity representations the executor built (serialised after them, in order).
#[derive(Debug, Default)]
pub(crate) struct Variables {
    pub values: Map<String, Value>,
    pub representations: Vec<(String, Vec<Val>)>,
}

impl Variables {
    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.representations.is_empty()
    }
}

impl From<Map<String, Value>> for Variables {
    fn from(values: Map<String, Value>) -> Self {
        Variables {
            values,
            representations: Vec::new(),
        }
    }
}

impl serde::Serialize for Variables {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map =
            serializer.serialize_map(Some(self.values.len() + self.representations.len()))?;
        for (k, v) in &self.values {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in &self.representations {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The part of a subgraph response the executor reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SubgraphResponse {
    #[serde(default)]
    pub data: Option<Val>,
    #[serde(default)]
    pub errors: Vec<Value>,
    /// Response headers the `respond` rules pass on to the client.
    #[serde(skip)]
    pub headers: http::HeaderMap,
}

/// Where and how to open one subscription on a subgraph (see
/// [`Subgraphs::subscription_request`]).
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionTarget {
    pub service: String,
    pub url: String,
    /// For a `wss://` URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub headers: http::HeaderMap,
    /// Connecting and acknowledging must happen within it.
    pub timeout: Duration,
    pub max_message_bytes: usize,
}

/// All subgraphs, the shared HTTP client and the trust-token cache.
pub struct Subgraphs {
    client: reqwest::Client,
    endpoints: HashMap<String, Arc<Endpoint>>,
    signer: TrustSigner,
    token_ttl: Duration,
    header_rules: crate::headers::HeaderRules,
    error_policy: super::SubgraphErrorPolicy,
    resilience: Resilience,
}

impl Subgraphs {
    pub fn new(
        client: reqwest::Client,
        endpoints: Vec<Endpoint>,
        signer: TrustSigner,
        token_ttl: Duration,
    ) -> Self {
        Self {
            client,
            endpoints: endpoints
                .into_iter()
                .map(|e| (e.name.clone(), Arc::new(e)))
                .collect(),
            signer,
            token_ttl,
            header_rules: Default::default(),
            error_policy: Default::default(),
            resilience: Default::default(),
        }
    }

    /// Use these header propagation rules (default: none).
    /// The `[headers]` rules requests to subgraphs are sent with.
    pub fn header_rules(&self) -> &crate::headers::HeaderRules {
        &self.header_rules
    }

    pub fn with_header_rules(mut self, rules: crate::headers::HeaderRules) -> Self {
        self.header_rules = rules;
        self
    }

    /// Show clients subgraph errors by these rules (default: production defaults).
    pub fn with_error_policy(mut self, policy: super::SubgraphErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// Retry and circuit-breaker policy (default: the config defaults).
    pub fn with_resilience(mut self, resilience: Resilience) -> Self {
        self.resilience = resilience;
        self
    }

    /// What clients see of the errors subgraphs return.
    pub fn error_policy(&self) -> &super::SubgraphErrorPolicy {
        &self.error_policy
    }

    /// Requests sent to subgraph `name` so far.
    pub fn request_count(&self, name: &str) -> u64 {
        self.endpoints
            .get(name)
            .map_or(0, |e| e.requests.load(Ordering::Relaxed))
    }

    /// All endpoints, sorted by name (for /metrics).
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut v: Vec<_> = self.endpoints.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// POST one GraphQL request to `service`.
    /// The gateway's headers on one request to `endpoint`: a trust token for `body`, the
    /// request id and the identity headers.
    fn trust_headers(
        &self,
        endpoint: &Endpoint,
        identity: &Identity,
        body: &[u8],
        request_id: &str,
    ) -> Result<http::HeaderMap, String> {
        let value = |v: &str| {
            http::HeaderValue::from_str(v)
                .map_err(|_| "identity not representable as a header".to_string())
        };
        let token = self
            .signer
            .mint(&endpoint.name, identity, body, self.token_ttl);
        let mut headers = http::HeaderMap::with_capacity(4);
        headers.insert(http::HeaderName::from_static(HEADER_TRUST), value(&token)?);
        headers.insert(
            http::HeaderName::from_static(HEADER_REQUEST_ID),
            value(request_id)?,
        );
        if let Some(user) = &identity.user_id {
            headers.insert(http::HeaderName::from_static(HEADER_USER_ID), value(user)?);
        }
        if !identity.scopes.is_empty() {
            headers.insert(
                http::HeaderName::from_static(HEADER_USER_SCOPES),
                value(&identity.scopes_header())?,
            );
        }
        Ok(headers)
    }

    /// What opening a subscription on `service` takes: its URL (`http` → `ws`, `https`
    /// → `wss`), its timeout and largest message, and the upgrade request's headers: a
    /// trust token bound to the (empty) body of the upgrade, the identity headers, the
    /// request id and the `[headers]` rules' headers.
    pub(crate) fn subscription_request(
        &self,
        service: &str,
        identity: &Identity,
        request_id: &str,
        client_headers: &http::HeaderMap,
    ) -> Result<SubscriptionTarget, FetchError> {
        let endpoint = self
            .endpoints
            .get(service)
            .ok_or_else(|| FetchError::UnknownSubgraph(service.to_string()))?;
        let url = if let Some(rest) = endpoint.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = endpoint.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            endpoint.url.clone()
        };
        let mut headers = if self.header_rules.is_empty() {
            http::HeaderMap::new()
        } else {
            self.header_rules
                .for_subgraph(&endpoint.name, client_headers)
        };
        crate::telemetry::inject_current(&mut headers);
        // The upgrade has no body: the token binds the empty one.
        let trusted = self
            .trust_headers(endpoint, identity, b"", request_id)
            .map_err(|message| FetchError::Http {
                service: endpoint.name.clone(),
                message,
            })?;
        headers.extend(trusted);
        endpoint.requests.fetch_add(1, Ordering::Relaxed);
        Ok(SubscriptionTarget {
            service: endpoint.name.clone(),
            tls: endpoint.websocket_tls.clone(),
            url,
            headers,
            timeout: endpoint.timeout,
            max_message_bytes: endpoint.max_response_bytes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        service: &str,
        sending: Sending,
        query: &str,
        operation_name: Option<&str>,
        variables: impl Into<Variables>,
        identity: &Identity,
        request_id: &str,
        client_headers: &http::HeaderMap,
    ) -> Result<SubgraphResponse, FetchError> {
        // One trace span per subgraph request, named by the plan's fetch name.
        let span = tracing::info_span!(
            target: "portico::otel",
            "fetch",
            otel.kind = "client",
            otel.name = operation_name.unwrap_or(service),
            otel.status_code = tracing::field::Empty,
            error.message = tracing::field::Empty,
            portico.subgraph = service,
        );
        let result = self
            .send_untraced(
                service,
                sending,
                query,
                operation_name,
                variables.into(),
                identity,
                request_id,
                client_headers,
            )
            .instrument(span.clone())
            .await;
        if let Err(e) = &result
            && !span.is_disabled()
        {
            span.record("otel.status_code", "ERROR");
            span.record("error.message", e.to_string().as_str());
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_untraced(
        &self,
        service: &str,
        sending: Sending,
        query: &str,
        operation_name: Option<&str>,
        variables: Variables,
        identity: &Identity,
        request_id: &str,
        client_headers: &http::HeaderMap,
    ) -> Result<SubgraphResponse, FetchError> {
        let endpoint = self
            .endpoints
            .get(service)
            .ok_or_else(|| FetchError::UnknownSubgraph(service.to_string()))?;
        // The body, serialised once for every attempt (each gets its own trust token).
        let body = serde_json::to_vec(&RequestBody {
            query,
            operation_name,
            variables: &variables,
        })
        .map(bytes::Bytes::from)
        .map_err(|e| FetchError::Http {
            service: endpoint.name.clone(),
            message: format!("request body: {e}"),
        })?;
        // Rules cannot name `portico-*` or framing headers (checked at start-up), so the
        // gateway's own headers always win over these.
        let forwarded = if self.header_rules.is_empty() {
            http::HeaderMap::new()
        } else {
            self.header_rules
                .for_subgraph(&endpoint.name, client_headers)
        };
        let is_mutation = sending == Sending::Mutation;
        // A subgraph whose response headers reach clients (`respond` rules, e.g. a
        // Set-Cookie) is never deduplicated: no client gets a header meant for another.
        let shareable = self.resilience.dedupe
            && sending == Sending::Query
            && !self.header_rules.responds(&endpoint.name);
        self.send_shared(
            endpoint,
            shareable,
            is_mutation,
            body,
            identity,
            (request_id, operation_name),
            forwarded,
        )
        .await
    }

    /// [`send_untraced`](Self::send_untraced)'s sending, joining an identical request in
    /// flight when `shareable`.
    #[allow(clippy::too_many_arguments)]
    async fn send_shared(
        &self,
        endpoint: &Arc<Endpoint>,
        shareable: bool,
        is_mutation: bool,
        body: bytes::Bytes,
        identity: &Identity,
        (request_id, operation_name): (&str, Option<&str>),
        forwarded: http::HeaderMap,
    ) -> Result<SubgraphResponse, FetchError> {
        // Either this request joins an identical one in flight and takes its outcome, or
        // it is sent (and, when shareable, first registered for others to join).
        let mut leading = None;
        if shareable {
            let key = DedupeKey::new(&body, identity, &forwarded);
            match endpoint.in_flight.join_or_lead(key).await {
                Turn::Joined(outcome) => {
                    endpoint.deduplicated.fetch_add(1, Ordering::Relaxed);
                    return outcome;
                }
                // Possibly one that joined a request dropped before answering: sent anyway.
                Turn::Lead(leader) => leading = Some(leader),
            }
        }
        let outcome = self
            .send_with_retries(
                endpoint,
                is_mutation,
                body,
                identity,
                (request_id, operation_name.unwrap_or("")),
                &forwarded,
            )
            .await;
        if let Some(leader) = leading {
            leader.publish(&outcome);
        }
        outcome
    }

    /// Sends `body` to `endpoint` with retries (queries only) and the circuit breaker.
    /// `(request_id, fetch)`: the client request's id and the plan's fetch name
    /// (`<Operation>__<subgraph>__<n>`, empty for an unnamed operation), for the logs.
    async fn send_with_retries(
        &self,
        endpoint: &Endpoint,
        is_mutation: bool,
        body: bytes::Bytes,
        identity: &Identity,
        (request_id, fetch): (&str, &str),
        forwarded: &http::HeaderMap,
    ) -> Result<SubgraphResponse, FetchError> {
        let service = endpoint.name.as_str();
        // One deadline for every attempt, waiting for slots and backoff included.
        let deadline = tokio::time::Instant::now() + endpoint.timeout;
        let policy = &self.resilience;
        if policy.retries.enabled {
            endpoint.deposit_retry_tokens(policy.retries.budget_ratio);
        }
        let mut attempt = 0u32;
        let result = loop {
            if let Err(retry_in) = endpoint.admit(&policy.breaker) {
                break Err(FetchError::CircuitOpen {
                    service: endpoint.name.clone(),
                    retry_in,
                });
            }
            let result = self
                .send_to(
                    endpoint,
                    deadline,
                    body.clone(),
                    identity,
                    request_id,
                    forwarded,
                )
                .await;
            match &result {
                Err(e) if e.is_subgraph_failure() => endpoint.record(&policy.breaker, true),
                Ok(_) => endpoint.record(&policy.breaker, false),
                Err(_) => {}
            }
            let Err(e) = &result else { break result };
            attempt += 1;
            let retry = policy.retries.enabled
                && !is_mutation
                && e.is_retryable()
                && attempt <= policy.retries.max_retries
                && endpoint.take_retry_token();
            if !retry {
                break result;
            }
            // Full jitter: a random wait up to backoff × 2^(attempt-1), if time remains.
            let cap = policy
                .retries
                .backoff_ms
                .saturating_mul(1 << (attempt - 1).min(16));
            let wait = Duration::from_millis(rand::random::<u64>() % (cap + 1));
            if tokio::time::Instant::now() + wait >= deadline {
                break result;
            }
            tracing::info!(subgraph = service, fetch, request_id, attempt, error = %e, "retrying a subgraph request");
            endpoint.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        };
        if let Err(e) = &result {
            endpoint.failures.fetch_add(1, Ordering::Relaxed);
            // The error names the subgraph and the reason, never a URL, token or body.
            tracing::warn!(subgraph = service, fetch, request_id, error = %e, "subgraph request failed");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_to(
        &self,
        endpoint: &Endpoint,
        deadline: tokio::time::Instant,
        body: bytes::Bytes,
        identity: &Identity,
        request_id: &str,
        forwarded: &http::HeaderMap,
    ) -> Result<SubgraphResponse, FetchError> {
        // The slot is held until the body is read (the connection is busy until then).
        let slot_timeout = || FetchError::SlotTimeout {
            service: endpoint.name.clone(),
            timeout: endpoint.timeout,
            limit: endpoint.max_concurrent_requests,
        };
        let _slot = endpoint.slot(deadline).await.ok_or_else(slot_timeout)?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(slot_timeout());
        }
        endpoint.requests.fetch_add(1, Ordering::Relaxed);
        let client = endpoint.client.as_ref().unwrap_or(&self.client);
        let mut request = match &endpoint.parsed_url {
            Some(url) => client.post(url.clone()),
            None => client.post(&endpoint.url),
        };
        if !forwarded.is_empty() {
            request = request.headers(forwarded.clone());
        }
        let mut trace_context = http::HeaderMap::new();
        crate::telemetry::inject_current(&mut trace_context);
        if !trace_context.is_empty() {
            request = request.headers(trace_context);
        }
        // The trust token binds this exact body: one token per request.
        let trusted = self
            .trust_headers(endpoint, identity, &body, request_id)
            .map_err(|message| FetchError::Http {
                service: endpoint.name.clone(),
                message,
            })?;
        request = request
            .timeout(remaining)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::ACCEPT,
                "application/graphql-response+json, application/json",
            )
            .headers(trusted);
        let http_error = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout {
                    service: endpoint.name.clone(),
                    timeout: endpoint.timeout,
                }
            } else {
                FetchError::Http {
                    service: endpoint.name.clone(),
                    message: without_url(&e),
                }
            }
        };
        let sent = std::time::Instant::now();
        let response = request.body(body).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                endpoint.latency.observe(sent.elapsed());
                return Err(http_error(e));
            }
        };
        let status = response.status();
        let passed_on = self
            .header_rules
            .respond(&endpoint.name, response.headers());
        let bytes = read_limited(response, endpoint.max_response_bytes).await;
        endpoint.latency.observe(sent.elapsed());
        let bytes = bytes.map_err(|e| match e {
            BodyError::TooLarge => FetchError::ResponseTooLarge {
                service: endpoint.name.clone(),
                limit: endpoint.max_response_bytes,
            },
            BodyError::Http(e) => http_error(e),
        })?;
        // JSON is UTF-8: checked once for the whole body, so that parsing (`from_str`)
        // does not check each string again (2.4 % of a heavy request's instructions).
        let parsed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| serde_json::from_str::<SubgraphResponse>(text).ok());
        match parsed {
            Some(mut parsed) if parsed.data.is_some() || !parsed.errors.is_empty() => {
                parsed.headers = passed_on;
                Ok(parsed)
            }
            _ if !status.is_success() => Err(FetchError::Http {
                service: endpoint.name.clone(),
                message: format!("HTTP status {status}"),
            }),
            _ => Err(FetchError::Http {
                service: endpoint.name.clone(),
                message: "the response is not a GraphQL response".into(),
            }),
        }
    }
}

enum BodyError {
    TooLarge,
    Http(reqwest::Error),
}

/// The body of `response`, refused as soon as it is known to exceed `limit` bytes: at
/// once when `Content-Length` announces more, else when the bytes read pass it. The rest
/// is never read (dropping the response closes its connection), so a subgraph sending
/// an endless body costs at most `limit` bytes and the time to read them.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let announced = match response.content_length().map(usize::try_from) {
        Some(Ok(n)) if n <= limit => n,
        Some(_) => return Err(BodyError::TooLarge),
        None => 0,
    };
    let mut body = Vec::with_capacity(announced);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if chunk.len() > limit - body.len() {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest errors embed the URL; keep messages short and free of query strings.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    if e.contains("error sending request") {
        "connection failed".to_string()
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waiting_for_a_slot_times_out_without_reaching_the_subgraph() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}/graphql", listener.local_addr().expect("addr"));
        let s = Subgraphs::new(
            reqwest::Client::new(),
            vec![Endpoint::new(
                "users".into(),
                url,
                Duration::from_millis(50),
                1024,
                1,
            )],
            TrustSigner::generate(),
            Duration::from_secs(60),
        );
        let endpoint = s.endpoints.get("users").expect("endpoint").clone();
        let held = endpoint.slots.acquire().await.expect("the only slot");
        assert_eq!(endpoint.in_flight(), 1);
        let (anonymous, headers) = (Identity::anonymous(), http::HeaderMap::new());
        let send = s.send(
            "users",
            Sending::Query,
            "{ me { id } }",
            None,
            Map::new(),
            &anonymous,
            "r1",
            &headers,
        );
        // The guard only keeps a broken deadline from hanging the test.
        let e = tokio::time::timeout(Duration::from_secs(60), send)
            .await
            .expect("the wait for a slot is bounded by the subgraph timeout")
            .expect_err("no slot within the timeout");
        assert!(
            matches!(e, FetchError::SlotTimeout { limit: 1, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "request to subgraph 'users' timed out after 50ms waiting for one of its 1 request slots"
        );
        assert_eq!(endpoint.waiting(), 0);
        assert_eq!(endpoint.failures.load(Ordering::Relaxed), 1);
        assert_eq!(s.request_count("users"), 0, "nothing was sent");
        // Nothing was sent: no connection is waiting to be accepted.
        assert_eq!(
            listener.accept().map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::WouldBlock)
        );
        drop(held);
        assert_eq!(endpoint.in_flight(), 0);
    }

    /// A subgraph that answers `{"data":{"n":<request number>}}` after 100 ms, so requests
    /// stay in flight long enough to be joined; returns its URL and request counter.
    async fn numbering_subgraph() -> (String, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let app = axum::Router::new().route(
            "/graphql",
            axum::routing::post(move || {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    axum::Json(serde_json::json!({ "data": { "n": n } }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/graphql", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, count)
    }

    fn deduplicating(url: String, rules: crate::headers::HeaderRules) -> Subgraphs {
        Subgraphs::new(
            reqwest::Client::new(),
            vec![Endpoint::new(
                "users".into(),
                url,
                Duration::from_secs(10),
                1024,
                16,
            )],
            TrustSigner::generate(),
            Duration::from_secs(60),
        )
        .with_header_rules(rules)
        .with_resilience(Resilience {
            dedupe: true,
            ..Resilience::default()
        })
    }

    fn n_of(r: Result<SubgraphResponse, FetchError>) -> u64 {
        r.expect("a response").data.expect("data").into_json()["n"]
            .as_u64()
            .expect("n")
    }

    #[tokio::test]
    async fn identical_queries_in_flight_share_one_request() {
        let (url, count) = numbering_subgraph().await;
        let s = deduplicating(url, Default::default());
        let (anonymous, headers) = (Identity::anonymous(), http::HeaderMap::new());
        let vars = || Map::from_iter([("id".to_string(), serde_json::json!("1"))]);
        // join_all polls every send once before any can finish: the first sends, the
        // other four find it in flight and join it.
        let all = futures::future::join_all((0..5).map(|i| {
            s.send(
                "users",
                Sending::Query,
                "query($id: ID!) { user(id: $id) { name } }",
                None,
                vars(),
                &anonymous,
                if i == 0 { "r0" } else { "rn" },
                &headers,
            )
        }))
        .await;
        let ns: Vec<u64> = all.into_iter().map(n_of).collect();
        assert_eq!(ns, vec![1; 5], "every caller got the one response");
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "one request reached the subgraph"
        );
        let endpoint = s.endpoints.get("users").expect("endpoint");
        assert_eq!(endpoint.deduplicated.load(Ordering::Relaxed), 4);
        assert!(endpoint.in_flight.len() == 0, "nothing left in flight");
        // Once answered, the same query is sent again.
        let again = s
            .send(
                "users",
                Sending::Query,
                "query($id: ID!) { user(id: $id) { name } }",
                None,
                vars(),
                &anonymous,
                "r9",
                &headers,
            )
            .await;
        assert_eq!(n_of(again), 2);
    }

    #[tokio::test]
    async fn queries_differing_in_variables_identity_or_forwarded_headers_and_mutation_requests_are_each_sent()
     {
        let (url, count) = numbering_subgraph().await;
        let rules = crate::headers::HeaderRules::new(
            &toml::from_str::<crate::config::HeadersConfig>(
                r#"subgraphs = { "*" = { propagate = [{ named = "x-tenant" }] } }"#,
            )
            .expect("rules"),
        );
        let s = deduplicating(url, rules);
        let anonymous = Identity::anonymous();
        let alice = Identity {
            user_id: Some("alice".into()),
            scopes: vec![],
        };
        let admin = Identity {
            user_id: Some("alice".into()),
            scopes: vec!["admin".into()],
        };
        let mut tenant_a = http::HeaderMap::new();
        tenant_a.insert("x-tenant", http::HeaderValue::from_static("a"));
        let mut tenant_b = http::HeaderMap::new();
        tenant_b.insert("x-tenant", http::HeaderValue::from_static("b"));
        // A header no rule forwards does not tell requests apart.
        let mut tenant_a_other = tenant_a.clone();
        tenant_a_other.insert("x-other", http::HeaderValue::from_static("1"));
        let q = "query($id: ID!) { user(id: $id) { name } }";
        let v = |id: &str| Map::from_iter([("id".to_string(), serde_json::json!(id))]);
        // (kind, id variable, identity, client headers); the last equals the first but
        // for a header no rule forwards.
        let cases = [
            (Sending::Query, "1", &anonymous, &tenant_a),
            (Sending::Query, "2", &anonymous, &tenant_a),
            (Sending::Query, "1", &alice, &tenant_a),
            (Sending::Query, "1", &admin, &tenant_a),
            (Sending::Query, "1", &anonymous, &tenant_b),
            (Sending::Mutation, "1", &anonymous, &tenant_a),
            (Sending::QueryOfMutation, "1", &anonymous, &tenant_a),
            (Sending::Query, "1", &anonymous, &tenant_a_other),
        ];
        let calls = cases.iter().map(|(sending, id, who, headers)| {
            s.send("users", *sending, q, None, v(id), who, "r", headers)
        });
        let ns: Vec<u64> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(n_of)
            .collect();
        assert_eq!(count.load(Ordering::SeqCst), 7, "{ns:?}");
        assert_eq!(ns[7], ns[0], "same forwarded headers: joined the first");
        let mut distinct = ns[..7].to_vec();
        distinct.sort_unstable();
        assert_eq!(distinct, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[tokio::test]
    async fn a_subgraph_whose_response_headers_reach_clients_is_never_deduplicated() {
        let (url, count) = numbering_subgraph().await;
        let rules = crate::headers::HeaderRules::new(
            &toml::from_str::<crate::config::HeadersConfig>(
                r#"subgraphs = { users = { respond = ["set-cookie"] } }"#,
            )
            .expect("rules"),
        );
        let s = deduplicating(url, rules);
        let (anonymous, headers) = (Identity::anonymous(), http::HeaderMap::new());
        let all = futures::future::join_all((0..3).map(|_| {
            s.send(
                "users",
                Sending::Query,
                "{ me { id } }",
                None,
                Map::new(),
                &anonymous,
                "r",
                &headers,
            )
        }))
        .await;
        let mut ns: Vec<u64> = all.into_iter().map(n_of).collect();
        ns.sort_unstable();
        assert_eq!(ns, vec![1, 2, 3], "each sent on its own");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_query_whose_first_sender_goes_away_is_sent_by_those_who_joined_it() {
        use futures::FutureExt as _;
        let (url, count) = numbering_subgraph().await;
        let s = deduplicating(url, Default::default());
        let (anonymous, headers) = (Identity::anonymous(), http::HeaderMap::new());
        let send = || {
            s.send(
                "users",
                Sending::Query,
                "{ me { id } }",
                None,
                Map::new(),
                &anonymous,
                "r",
                &headers,
            )
        };
        let mut first = Box::pin(send());
        let mut joined = Box::pin(send());
        assert!((&mut first).now_or_never().is_none(), "in flight");
        assert!((&mut joined).now_or_never().is_none(), "joined");
        // The first one's client disconnects: the one that joined must still be answered,
        // by a request of its own.
        drop(first);
        let n = n_of(joined.await);
        assert_eq!(n, count.load(Ordering::SeqCst), "its own request's answer");
        let endpoint = s.endpoints.get("users").expect("endpoint");
        assert!(endpoint.in_flight.len() == 0);
        assert_eq!(endpoint.deduplicated.load(Ordering::Relaxed), 0);
    }
}
