//! Subscriptions through the gateway. A subscription goes through the same stages as any
//! operation (document, limits, authentication, authorization, cost and rate limit,
//! plan: `http/graphql.rs::operation` stops before executing and hands over a
//! [`Prepared`]); then [`events`] opens ONE upstream subscription on the subgraph that
//! owns the root field (WebSocket, `graphql-transport-ws`, the upgrade carrying a trust
//! token like any request), and for every event it runs the rest of the plan (entity
//! fetches for the fields other subgraphs own, batched as for a query) and shapes the
//! response for the client's operation.
//!
//! A subscription ends when the caller's access token expires (`UNAUTHENTICATED`, "the
//! access token expired").
//!
//! Bounded: events go to the client through a small buffer; a client that takes none for
//! `slow_consumer_timeout` loses the subscription (it ends with an error), so a slow
//! client never grows the gateway's memory. The upstream task ends as soon as the client
//! is gone (its receiver dropped), an upstream error or completion ends the client's
//! stream, and nothing is left running.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, Stream, StreamExt as _};
use portico_federation::plan::{FetchNode, OperationKind, PlanNode, QueryPlan};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::Inner;
use crate::auth::Identity;
use crate::error::{ErrorCode, GraphQLError, GraphQLResponse};
use crate::execute::subgraph::{SubgraphResponse, SubscriptionTarget};
use crate::plan::ParsedDocument;

/// Events buffered between the upstream task and the client.
const BUFFER: usize = 16;

/// Read and write buffer of each WebSocket (upstream and client-facing), in bytes.
pub(crate) const WS_BUFFER: usize = 4 * 1024;

/// The gateway's open subscriptions: how many each client holds (`[subscriptions]
/// max_per_client`), and the signal that ends them all (a new supergraph, shutdown).
/// Kept across reloads.
#[derive(Default)]
pub(crate) struct Registry {
    per_client: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
    /// Bumped (with the reason) to end every open subscription.
    ending: tokio::sync::watch::Sender<(u64, &'static str)>,
    pub(crate) ended_slow: std::sync::atomic::AtomicU64,
}

/// One open subscription's place in the [`Registry`], given back when dropped.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    client: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_client = self.registry.per_client.lock();
        if let Some(n) = per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

impl Registry {
    /// A place for one more subscription of `client`, unless it holds `max` already.
    pub(crate) fn take(self: &Arc<Self>, client: &str, max: usize) -> Option<Slot> {
        let mut per_client = self.per_client.lock();
        let n = per_client.entry(client.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            registry: self.clone(),
            client: client.to_string(),
        })
    }

    /// Subscriptions open now (every client's).
    pub(crate) fn open(&self) -> usize {
        self.per_client.lock().values().sum()
    }

    /// Ends every open subscription: each gets a last error saying `reason`, then
    /// completes.
    pub(crate) fn end_all(&self, reason: &'static str) {
        self.ending.send_modify(|(generation, why)| {
            *generation += 1;
            *why = reason;
        });
    }
}

/// A subscription that passed every stage up to planning.
pub(crate) struct Prepared {
    pub(crate) parsed: Arc<ParsedDocument>,
    pub(crate) operation_name: Option<String>,
    pub(crate) variables: Map<String, Value>,
    pub(crate) identity: Identity,
    /// When the caller's access token expires (unix seconds): the subscription ends then.
    pub(crate) token_expiry: Option<u64>,
    pub(crate) plan: Arc<QueryPlan>,
    pub(crate) request_id: String,
    pub(crate) client_headers: http::HeaderMap,
    /// Who holds it, for `max_per_client`: `user:<id>` or `addr:<client address>`.
    pub(crate) client: String,
    /// The client's address, for the rate limiter (`charge_per_event`).
    pub(crate) peer: Option<std::net::IpAddr>,
    /// The operation's estimated cost, charged at the start (and per event with
    /// `charge_per_event`).
    pub(crate) estimated: f64,
}

/// With `[subscriptions] charge_per_event`: takes the operation's cost from the client's
/// budget for one event; the refusal that ends the subscription, if any.
async fn charge_event(gw: &Inner, prepared: &Prepared) -> Option<GraphQLResponse> {
    use crate::ratelimit::Outcome;
    if !gw.config.subscriptions.charge_per_event {
        return None;
    }
    let points = (prepared.estimated.ceil() as u64).max(1);
    match gw
        .rate_limiter
        .check(
            &prepared.identity,
            prepared.peer,
            &prepared.client_headers,
            points,
        )
        .await
    {
        Outcome::Decided(decision) if !decision.allowed => Some(failure(
            ErrorCode::RateLimited,
            format!(
                "rate limit exceeded: each event costs {points} points, {} remain; subscription ended",
                decision.remaining
            ),
        )),
        Outcome::Unavailable {
            fail_open: false,
            error,
        } => Some(failure(
            ErrorCode::RateLimiterUnavailable,
            format!("{error}; subscription ended"),
        )),
        _ => None,
    }
}

/// The root fetch of a subscription plan (a subscription operation sent to one
/// subgraph) and what runs after it on each event.
pub(crate) fn split(plan: &QueryPlan) -> Option<(&FetchNode, Option<PlanNode>)> {
    let is_root = |f: &FetchNode| f.operation_kind == OperationKind::Subscription;
    match plan.node.as_ref()? {
        PlanNode::Fetch(f) if is_root(f) => Some((f, None)),
        PlanNode::Sequence { nodes } => match nodes.split_first()? {
            (PlanNode::Fetch(f), rest) if is_root(f) => {
                let rest = match rest {
                    [] => None,
                    [one] => Some(one.clone()),
                    more => Some(PlanNode::Sequence {
                        nodes: more.to_vec(),
                    }),
                };
                Some((f, rest))
            }
            _ => None,
        },
        _ => None,
    }
}

fn failure(code: ErrorCode, message: impl Into<String>) -> GraphQLResponse {
    GraphQLResponse {
        errors: vec![GraphQLError::new(code, message)],
        data: None,
        extensions: Map::new(),
    }
}

/// The client's events: one response per upstream event; ends when the upstream ends,
/// fails (a last response with the error), the token expires, the gateway ends it
/// ([`Registry::end_all`]) or the client is too slow. Refused with
/// `SUBSCRIPTION_LIMIT_EXCEEDED` when the client holds `max_per_client` already.
pub(crate) fn events(
    gw: Arc<Inner>,
    prepared: Prepared,
) -> Result<impl Stream<Item = GraphQLResponse>, crate::error::RequestFailure> {
    let max = gw.config.subscriptions.max_per_client;
    let Some(slot) = gw.subscriptions.take(&prepared.client, max) else {
        return Err(crate::error::RequestFailure::new(
            ErrorCode::SubscriptionLimitExceeded,
            format!("at most {max} open subscriptions per client"),
        ));
    };
    let mut ending = gw.subscriptions.ending.subscribe();
    ending.borrow_and_update();
    let (tx, rx) = tokio::sync::mpsc::channel::<GraphQLResponse>(BUFFER);
    tokio::spawn(async move {
        let _slot = slot;
        let slow = Duration::from_millis(gw.config.subscriptions.slow_consumer_timeout_ms);
        let registry = gw.subscriptions.clone();
        let send = |response: GraphQLResponse| {
            let tx = tx.clone();
            let registry = registry.clone();
            async move {
                match tokio::time::timeout(slow, tx.send(response)).await {
                    Ok(Ok(())) => true,
                    Ok(Err(_)) => false, // the client is gone
                    Err(_) => {
                        registry
                            .ended_slow
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let _ = tx.try_send(failure(
                            ErrorCode::SubscriptionSlowConsumer,
                            "the client did not read events fast enough; subscription ended",
                        ));
                        false
                    }
                }
            }
        };
        let Some((root, rest)) = split(&prepared.plan) else {
            send(failure(
                ErrorCode::InternalServerError,
                "the subscription's plan has no subscription fetch",
            ))
            .await;
            return;
        };
        let target = match gw.subgraphs.subscription_request(
            &root.service_name,
            &prepared.identity,
            &prepared.request_id,
            &prepared.client_headers,
        ) {
            Ok(t) => t,
            Err(e) => {
                send(failure(ErrorCode::SubrequestHttpError, e.to_string())).await;
                return;
            }
        };
        let variables: Map<String, Value> = root
            .variable_usages
            .iter()
            .filter_map(|v| {
                prepared
                    .variables
                    .get(v)
                    .map(|value| (v.clone(), value.clone()))
            })
            .collect();
        let payload = json!({
            "query": root.operation,
            "operationName": root.operation_name,
            "variables": variables,
        });
        let mut upstream = match open(&target, payload).await {
            Ok(u) => u,
            Err(message) => {
                tracing::warn!(subgraph = %target.service, request_id = %prepared.request_id, error = %message, "subscription not opened");
                send(failure(
                    ErrorCode::SubrequestHttpError,
                    format!(
                        "subscription to subgraph '{}' failed: {message}",
                        target.service
                    ),
                ))
                .await;
                return;
            }
        };
        let Ok(document) = prepared.parsed.as_ref() else {
            return;
        };
        let Ok(operation) = document.operations.get(prepared.operation_name.as_deref()) else {
            return;
        };
        // The token's expiry, on the runtime's clock.
        let expiry = prepared.token_expiry.map(|exp| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now))
        });
        let expired = async {
            match expiry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            let event = tokio::select! {
                _ = tx.closed() => break,
                changed = ending.changed() => {
                    let reason = if changed.is_ok() { ending.borrow().1 } else { "the gateway stopped" };
                    send(failure(ErrorCode::SubscriptionEnded, reason)).await;
                    break;
                }
                _ = &mut expired => {
                    send(failure(
                        ErrorCode::Unauthenticated,
                        "the access token expired: subscription ended; subscribe again with a fresh token",
                    ))
                    .await;
                    break;
                }
                event = upstream.next() => event,
            };
            let event = match event {
                None => break,
                Some(Ok(event)) => event,
                Some(Err(message)) => {
                    send(failure(
                        ErrorCode::SubrequestHttpError,
                        format!(
                            "subscription to subgraph '{}' failed: {message}",
                            target.service
                        ),
                    ))
                    .await;
                    break;
                }
            };
            if let Some(refusal) = charge_event(&gw, &prepared).await {
                send(refusal).await;
                break;
            }
            let input = crate::execute::ExecutionInput {
                schema: gw.planner.api_schema(),
                document,
                operation,
                plan: &prepared.plan,
                variables: &prepared.variables,
                introspection: None,
                identity: &prepared.identity,
                request_id: &prepared.request_id,
                client_headers: &prepared.client_headers,
                initial: None,
            };
            let response =
                crate::execute::execute_event(&gw.subgraphs, input, root, rest.as_ref(), event)
                    .await;
            if !send(response).await {
                break;
            }
        }
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|r| (r, rx))
    }))
}

/// The events of one upstream subscription: `data`/`errors` of each `next`; an `error`
/// message is one last event with its errors; ends on `complete` or when the connection
/// closes.
type Upstream = std::pin::Pin<Box<dyn Stream<Item = Result<SubgraphResponse, String>> + Send>>;

/// Connects to `target` (`graphql-transport-ws`; TLS for `wss://` with the subgraph's
/// TLS settings), initialises, subscribes with `payload`, all within the subgraph's
/// timeout.
async fn open(target: &SubscriptionTarget, payload: Value) -> Result<Upstream, String> {
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad subgraph URL: {e}"))?;
    request.headers_mut().extend(target.headers.clone());
    request.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    // Small buffers: tungstenite's defaults (128 KiB each way) made an idle subscription
    // cost a quarter of a megabyte; messages larger than them still pass (the buffers grow
    // up to `max_message_bytes`).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(Some(target.max_message_bytes))
        .max_frame_size(Some(target.max_message_bytes));
    let host = request.uri().host().unwrap_or_default().to_string();
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if target.url.starts_with("wss://") {
            443
        } else {
            80
        });
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connecting: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        if target.url.starts_with("wss://") {
            let tls = target
                .tls
                .clone()
                .ok_or_else(|| "no TLS settings for a wss:// subgraph".to_string())?;
            let name =
                rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                    .map_err(|e| format!("bad subgraph host: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let (ws, _) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                    .await
                    .map_err(|e| format!("connecting: {}", without_url(&e)))?;
            subscribe_on(ws, payload).await
        } else {
            let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
                .await
                .map_err(|e| format!("connecting: {}", without_url(&e)))?;
            subscribe_on(ws, payload).await
        }
    };
    tokio::time::timeout(target.timeout, connect)
        .await
        .map_err(|_| format!("no acknowledgement within {:?}", target.timeout))?
}

/// `connection_init` → `connection_ack` → `subscribe` on `ws`; then its events.
async fn subscribe_on<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    payload: Value,
) -> Result<Upstream, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    send_json(&mut ws, json!({"type": "connection_init", "payload": {}})).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text)
                    .map_err(|_| "the subgraph sent a message that is not JSON".to_string())?;
                match message.get("type").and_then(Value::as_str) {
                    Some("connection_ack") => break,
                    Some("ping") => send_json(&mut ws, json!({"type": "pong"})).await?,
                    _ => return Err("the subgraph did not acknowledge the connection".into()),
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) | None => {
                return Err("the subgraph closed the connection during initialisation".into());
            }
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
    send_json(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": payload}),
    )
    .await?;
    let stream = futures::stream::unfold(Some(ws), |state| async move {
        let mut ws = state?;
        loop {
            let message = match ws.next().await {
                None => return None,
                Some(Err(e)) => return Some((Err(e.to_string()), None)),
                Some(Ok(m)) => m,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => return None,
                _ => continue,
            };
            let Ok(message) = serde_json::from_str::<Value>(&text) else {
                return Some((
                    Err("the subgraph sent a message that is not JSON".into()),
                    None,
                ));
            };
            match message.get("type").and_then(Value::as_str) {
                Some("next") => {
                    let payload = message.get("payload").cloned().unwrap_or(Value::Null);
                    return match serde_json::from_value::<SubgraphResponse>(payload) {
                        Ok(event) => Some((Ok(event), Some(ws))),
                        Err(_) => Some((
                            Err("the subgraph sent an event that is not a GraphQL response".into()),
                            None,
                        )),
                    };
                }
                Some("error") => {
                    let errors = match message.get("payload") {
                        Some(Value::Array(errors)) => errors.clone(),
                        _ => vec![json!({"message": "the subgraph refused the subscription"})],
                    };
                    let event = SubgraphResponse {
                        errors,
                        ..SubgraphResponse::default()
                    };
                    return Some((Ok(event), None));
                }
                Some("complete") => return None,
                Some("ping") => {
                    let ponged = send_json(&mut ws, json!({"type": "pong"})).await;
                    if ponged.is_err() {
                        return None;
                    }
                }
                _ => {}
            }
        }
    });
    Ok(Box::pin(stream))
}

async fn send_json<S>(ws: &mut S, value: Value) -> Result<(), String>
where
    S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    ws.send(Message::text(value.to_string()))
        .await
        .map_err(|e| e.to_string())
}

/// A connection error without the URL (logs and client errors never hold one).
fn without_url(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => format!("HTTP status {}", response.status()),
        Error::Io(io) => io.kind().to_string(),
        other => other.to_string(),
    }
}
