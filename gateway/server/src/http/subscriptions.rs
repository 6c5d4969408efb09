//! The client transports of subscriptions (`subscription.rs` runs them):
//!
//! - GraphQL over Server-Sent Events, "distinct connections" mode: `POST /graphql` with
//!   `Accept: text/event-stream` answers a `text/event-stream` of `next` events (one
//!   GraphQL response each) and a final `complete`;
//! - WebSocket, `graphql-transport-ws` (the graphql-ws library's protocol): `GET
//!   /graphql` upgraded. `connection_init` must come within
//!   `[subscriptions] connection_init_timeout_ms` (else close 4408); its payload's string
//!   entries (`{"Authorization": "Bearer …"}`, or under `headers`) join the upgrade
//!   request's headers, and the token is checked before `connection_ack` (a bad one
//!   closes 4403). Each `subscribe` runs the whole pipeline with those headers (a query
//!   or mutation gets one `next` and `complete`); `complete` from the client cancels;
//!   `ping` gets `pong`; a reused id closes 4409; more than `max_per_connection` at once
//!   gets an `error` for that id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts as _;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, Stream, StreamExt as _};
use serde_json::{Value, json};

use super::graphql::{Outcome, ws_operation};
use crate::error::{ErrorCode, GraphQLError, GraphQLResponse};
use crate::{Inner, Live};

/// The `graphql-transport-ws` subprotocol.
const PROTOCOL: &str = "graphql-transport-ws";

/// A `text/event-stream` of `events`: `next` per response, then `complete`.
pub(super) fn sse(events: impl Stream<Item = GraphQLResponse> + Send + 'static) -> Response {
    let events = events
        .map(|response| {
            let data = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
            Ok::<_, Infallible>(Event::default().event("next").data(data))
        })
        .chain(futures::stream::once(async {
            Ok(Event::default().event("complete").data(""))
        }));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Apollo's multipart HTTP subscriptions (`Accept: multipart/mixed;
/// subscriptionSpec="1.0"`, what Apollo Client, Kotlin and iOS speak): one part per
/// event, `{"payload": <response>}`; `{}` heartbeats every 5 s while idle; the closing
/// boundary when the subscription ends.
pub(super) fn multipart(events: impl Stream<Item = GraphQLResponse> + Send + 'static) -> Response {
    const PART: &str = "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n";
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
        heartbeat.tick().await;
        loop {
            let part = tokio::select! {
                event = events.next() => match event {
                    Some(response) => {
                        let payload = serde_json::to_string(&json!({ "payload": response }))
                            .unwrap_or_else(|_| "{}".into());
                        format!("{PART}{payload}")
                    }
                    None => {
                        let _ = tx.send(bytes::Bytes::from_static(b"\r\n--graphql--\r\n")).await;
                        return;
                    }
                },
                _ = heartbeat.tick() => format!("{PART}{{}}"),
            };
            if tx.send(bytes::Bytes::from(part)).await.is_err() {
                return; // the client is gone: dropping `events` ends the subscription
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"",
        )],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// A task that is aborted when this handle is dropped (a `@defer` run whose client
/// left).
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AbortOnDrop<Result<GraphQLResponse, crate::error::RequestFailure>> {
    /// The task's result; a task that panicked or was aborted is a failure.
    pub(super) async fn finish(mut self) -> Result<GraphQLResponse, crate::error::RequestFailure> {
        match (&mut self.0).await {
            Ok(result) => result,
            Err(_) => Err(crate::error::RequestFailure::new(
                ErrorCode::InternalServerError,
                "internal server error",
            )),
        }
    }
}

/// The `multipart/mixed` body of an operation with `@defer`: `first` (the initial
/// payload, `hasNext: true`); each deferred fragment's part that the run sends to
/// `parts` as soon as its fetches are done; then, once `run` has the whole operation's
/// response, the last part (`hasNext: false`) with the fragments not delivered yet and
/// the errors not sent yet.
pub(super) fn deferred(
    gw: Arc<Inner>,
    mut first: GraphQLResponse,
    run: AbortOnDrop<Result<GraphQLResponse, crate::error::RequestFailure>>,
    split: Arc<crate::defer::Split>,
    parts: tokio::sync::mpsc::UnboundedReceiver<String>,
    delivered: Arc<parking_lot::Mutex<crate::defer::Delivered>>,
) -> Response {
    const PART: &str = "\r\n---\r\ncontent-type: application/json; charset=utf-8\r\n\r\n";
    let mut initial = json!({});
    if let Some(data) = first.data.take() {
        let mut data = data.into_json();
        crate::defer::strip_placeholders(&mut data);
        initial["data"] = data;
    }
    if !first.errors.is_empty() {
        initial["errors"] = json!(first.errors);
    }
    initial["hasNext"] = json!(true);
    let head = format!("{PART}{initial}");
    let middle = futures::stream::unfold(parts, |mut parts| async move {
        let part = parts.recv().await?;
        Some((
            Ok::<_, Infallible>(bytes::Bytes::from(format!("{PART}{part}"))),
            parts,
        ))
    });
    let rest = async move {
        let mut last = json!({ "hasNext": false });
        match run.finish().await {
            Ok(response) => {
                let schema = gw.planner.api_schema();
                last = delivered
                    .lock()
                    .part(&split, response, None, &|a, o| schema.is_subtype(a, o));
            }
            Err(failure) => last["errors"] = json!(failure.errors),
        }
        format!("{PART}{last}\r\n-----\r\n")
    };
    let body = futures::stream::once(async move { Ok::<_, Infallible>(bytes::Bytes::from(head)) })
        .chain(middle)
        .chain(futures::stream::once(async move {
            Ok::<_, Infallible>(bytes::Bytes::from(rest.await))
        }));
    let mut response = (
        [(
            axum::http::header::CONTENT_TYPE,
            "multipart/mixed;boundary=\"-\";deferSpec=20220824",
        )],
        axum::body::Body::from_stream(body),
    )
        .into_response();
    response.extensions_mut().insert(StillRunning);
    response
}

/// Marks a response whose body is still running the request (`@defer`'s deferred
/// parts): the request's admission place (`[overload]`) goes with the body.
#[derive(Clone, Copy)]
pub(super) struct StillRunning;

/// `response` holding `place` until its body is done or dropped, when the body is still
/// running the request ([`StillRunning`]); otherwise `response`, and `place` is freed.
pub(super) fn hold_place<T: Send + 'static>(response: Response, place: T) -> Response {
    if response.extensions().get::<StillRunning>().is_none() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &place;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

/// Is `request` a WebSocket upgrade?
pub(super) fn is_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /graphql` with `Upgrade: websocket`.
pub(super) async fn websocket(live: Arc<Live>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let offered = parts
        .headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    if !offered {
        return (
            StatusCode::BAD_REQUEST,
            "subscriptions over WebSocket speak graphql-transport-ws: offer it in \
             Sec-WebSocket-Protocol",
        )
            .into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let gw = live.current();
    if !gw.config.subscriptions.enabled {
        return (StatusCode::NOT_FOUND, "subscriptions are not enabled").into_response();
    }
    // WebSockets skip CORS: a page of another site could open one with the user's
    // cookies. Browsers send `Origin`; only this gateway's own and `[cors]
    // allow_origins` may connect (clients that are not browsers send none).
    if let Some(origin) = parts.headers.get(axum::http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(host)
            });
        let allowed = gw
            .config
            .cors
            .allow_origins
            .iter()
            .any(|o| o == "*" || o == origin);
        if !own && !allowed {
            return (
                StatusCode::FORBIDDEN,
                "this origin may not open subscriptions: add it to [cors] allow_origins",
            )
                .into_response();
        }
    }
    let max_message = gw.config.limits.max_body_bytes;
    upgrade
        .protocols([PROTOCOL])
        .read_buffer_size(crate::subscription::WS_BUFFER)
        .write_buffer_size(crate::subscription::WS_BUFFER)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(max_message)
        .on_upgrade(move |socket| Connection::serve(gw, parts, socket))
}

/// What a connection's tasks send to its writer.
enum Out {
    Message(Value),
    /// Subscription `id` ended (its id is free again), with its last message.
    Last(String, Option<Value>),
}

struct Connection {
    gw: Arc<Inner>,
    /// The upgrade request's head, its headers joined by `connection_init`'s payload.
    parts: axum::http::request::Parts,
}

impl Connection {
    async fn serve(gw: Arc<Inner>, parts: axum::http::request::Parts, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let init_timeout =
            Duration::from_millis(gw.config.subscriptions.connection_init_timeout_ms);
        let init = tokio::time::timeout(init_timeout, async {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Text(text) => return serde_json::from_str::<Value>(&text).ok(),
                    Message::Close(_) => return None,
                    _ => {}
                }
            }
            None
        })
        .await;
        let payload = match init {
            Err(_) => return close(&mut sink, 4408, "Connection initialisation timeout").await,
            Ok(Some(m)) if m.get("type").and_then(Value::as_str) == Some("connection_init") => {
                m.get("payload").cloned().unwrap_or(Value::Null)
            }
            Ok(_) => return close(&mut sink, 4400, "Expected connection_init").await,
        };
        let mut parts = parts;
        merge_init_headers(&mut parts.headers, &payload);
        // The token is checked now: a bad one never gets an acknowledgement.
        let authorization = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        if let Err(e) = gw.auth.authenticate(authorization).await {
            return close(&mut sink, 4403, &format!("Forbidden: {e}")).await;
        }
        if sink
            .send(text(json!({"type": "connection_ack"})))
            .await
            .is_err()
        {
            return;
        }
        let connection = Arc::new(Connection { gw, parts });
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Out>(64);
        let mut active: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let max = connection.gw.config.subscriptions.max_per_connection;
        loop {
            tokio::select! {
                out = out_rx.recv() => match out {
                    Some(Out::Message(m)) => {
                        if sink.send(text(m)).await.is_err() {
                            break;
                        }
                    }
                    Some(Out::Last(id, last)) => {
                        active.remove(&id);
                        if let Some(m) = last
                            && sink.send(text(m)).await.is_err()
                        {
                            break;
                        }
                    }
                    None => break,
                },
                incoming = stream.next() => {
                    let Some(Ok(message)) = incoming else { break };
                    let text_message = match message {
                        Message::Text(t) => t,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    let Ok(message) = serde_json::from_str::<Value>(&text_message) else {
                        close(&mut sink, 4400, "Invalid message").await;
                        break;
                    };
                    match message.get("type").and_then(Value::as_str) {
                        Some("ping") => {
                            if sink.send(text(json!({"type": "pong"}))).await.is_err() {
                                break;
                            }
                        }
                        Some("pong") => {}
                        Some("subscribe") => {
                            let Some(id) = message.get("id").and_then(Value::as_str).map(str::to_string) else {
                                close(&mut sink, 4400, "subscribe needs an id").await;
                                break;
                            };
                            if active.contains_key(&id) {
                                close(&mut sink, 4409, &format!("Subscriber for {id} already exists")).await;
                                break;
                            }
                            if active.len() >= max {
                                let error = GraphQLError::new(
                                    ErrorCode::SubscriptionLimitExceeded,
                                    format!("at most {max} subscriptions per connection"),
                                );
                                if sink.send(text(json!({"id": id, "type": "error", "payload": [error]}))).await.is_err() {
                                    break;
                                }
                                continue;
                            }
                            let payload = message.get("payload").cloned().unwrap_or(Value::Null);
                            let task = tokio::spawn(connection.clone().run(id.clone(), payload, out_tx.clone()));
                            active.insert(id, task);
                        }
                        Some("complete") => {
                            if let Some(id) = message.get("id").and_then(Value::as_str)
                                && let Some(task) = active.remove(id)
                            {
                                task.abort();
                            }
                        }
                        Some("connection_init") => {
                            close(&mut sink, 4429, "Too many initialisation requests").await;
                            break;
                        }
                        _ => {
                            close(&mut sink, 4400, "Unknown message type").await;
                            break;
                        }
                    }
                }
            }
        }
        // The client is gone: nothing it started keeps running.
        for (_, task) in active {
            task.abort();
        }
    }

    /// Subscription `id`: the pipeline, then its events (`next`), then `complete`; a
    /// refusal is an `error` message. The last message goes with [`Out::Last`], so the
    /// id is free again once the client reads it.
    async fn run(self: Arc<Self>, id: String, payload: Value, out: tokio::sync::mpsc::Sender<Out>) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let send = |m: Value| {
            let out = out.clone();
            async move { out.send(Out::Message(m)).await.is_ok() }
        };
        let last = match ws_operation(&self.gw, &self.parts, payload, &request_id).await {
            Err(failure) => Some(json!({"id": id, "type": "error", "payload": failure.errors})),
            // WebSocket operations are never split (`may_defer` is off for them).
            Ok(Outcome::Defer(_)) => Some(json!({"id": id, "type": "error", "payload": [
                crate::error::GraphQLError::new(ErrorCode::BadRequest, "@defer is not supported over a WebSocket")
            ]})),
            Ok(Outcome::Done(response, _)) => {
                send(json!({"id": id, "type": "next", "payload": response}))
                    .await
                    .then(|| json!({"id": id, "type": "complete"}))
            }
            Ok(Outcome::Subscribe(prepared)) => {
                match crate::subscription::events(self.gw.clone(), *prepared) {
                    Err(failure) => {
                        Some(json!({"id": id, "type": "error", "payload": failure.errors}))
                    }
                    Ok(events) => {
                        let mut events = std::pin::pin!(events);
                        let mut open = true;
                        while let Some(response) = events.next().await {
                            if !send(json!({"id": id, "type": "next", "payload": response})).await {
                                open = false;
                                break;
                            }
                        }
                        open.then(|| json!({"id": id, "type": "complete"}))
                    }
                }
            }
        };
        let _ = out.send(Out::Last(id, last)).await;
    }
}

/// String entries of `connection_init`'s payload (and of its `headers` object) as
/// request headers: how browser clients, which cannot set WebSocket headers, send
/// `Authorization`.
fn merge_init_headers(headers: &mut HeaderMap, payload: &Value) {
    let mut add = |object: &serde_json::Map<String, Value>| {
        for (name, value) in object {
            let (Some(value), Ok(name)) = (
                value.as_str(),
                HeaderName::try_from(name.to_ascii_lowercase()),
            ) else {
                continue;
            };
            // The gateway's own headers are never taken from a client.
            if name.as_str().starts_with("portico-") && name.as_str() != "portico-csrf" {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
    };
    if let Some(object) = payload.as_object() {
        add(object);
        if let Some(nested) = object.get("headers").and_then(Value::as_object) {
            add(nested);
        }
    }
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

async fn close<S>(sink: &mut S, code: u16, reason: &str)
where
    S: futures::Sink<Message> + Unpin,
{
    // Close reasons are at most 123 bytes.
    let mut reason = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
