//! Errors as clients see them: the one central [`ErrorCode`] (a stable SCREAMING_SNAKE
//! code mapped to an HTTP status and to `extensions.code`) and the GraphQL error and
//! response shapes of the spec (`message`, `locations`, `path`, `extensions`).
//!
//! Every stage of the pipeline has its own `thiserror` enum; each converts into a
//! [`GraphQLError`] carrying one of these codes, so the HTTP layer never invents codes.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Stable error codes, sent as `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is not a GraphQL request we can read (bad JSON, missing query, ...).
    BadRequest,
    /// A JSON array of requests while `[batching] enabled = false`.
    BatchingNotEnabled,
    /// An automatic persisted query (hash only) the gateway does not know (yet): the
    /// client retries with the query text, which registers it.
    PersistedQueryNotFound,
    /// The query text does not hash to the `sha256Hash` sent with it.
    PersistedQueryHashMismatch,
    /// Trusted documents: the operation (or the id sent) is not in the manifest.
    PersistedQueryNotInList,
    /// A batch longer than `[batching] max_size`, or an empty one.
    BatchLimitExceeded,
    /// A browser could send this request without a CORS preflight and it carries no
    /// CSRF-prevention header.
    CsrfPrevention,
    /// The body exceeds `limits.max_body_bytes`.
    PayloadTooLarge,
    /// The content type is not `application/json`.
    UnsupportedMediaType,
    /// A mutation sent over GET, or an unsupported HTTP method.
    MethodNotAllowed,
    /// Automatic persisted queries (hash-only requests) are not supported: send the query.
    PersistedQueryNotSupported,
    /// The document does not parse.
    GraphqlParseFailed,
    /// The document does not validate against the API schema.
    GraphqlValidationFailed,
    /// `operationName` names no operation, or is missing when several are defined.
    GraphqlUnknownOperationName,
    /// Variables do not match the operation's variable definitions.
    BadUserInput,
    /// The query text exceeds `limits.max_query_length`.
    MaxQueryLengthExceeded,
    /// The operation nests deeper than `limits.max_depth`.
    MaxDepthExceeded,
    /// The operation uses more aliases than `limits.max_aliases`.
    MaxAliasesExceeded,
    /// The operation selects more root fields than `limits.max_root_fields`.
    MaxRootFieldsExceeded,
    /// Introspection is disabled (production mode).
    IntrospectionDisabled,
    /// The bearer token is missing where required, malformed, expired or not ours.
    Unauthenticated,
    /// The operation's estimated cost exceeds `cost.max_cost`.
    CostEstimatedTooExpensive,
    /// The client's budget of cost points for the window does not cover the operation.
    RateLimited,
    /// The rate limiter's backend is unreachable and `rate_limit.fail_open` is false.
    RateLimiterUnavailable,
    /// The gateway already serves `[overload] max_in_flight_requests` requests and none
    /// finished within `queue_timeout_ms`: HTTP 503 with `Retry-After`.
    GatewayOverloaded,
    /// The planner failed or panicked (a bug, or a supergraph it cannot handle): HTTP
    /// 500 whose message shows only this code and `extensions.requestId`; the detail is
    /// logged (and in dev mode also sent as `extensions.detail`).
    QueryPlanningFailed,
    /// Planning the operation needs more work than the planner's step budget allows.
    QueryPlanTooComplex,
    /// The operation needs a Federation feature the planner does not support.
    QueryPlanUnsupported,
    /// A subgraph answered with an HTTP error or a body that is not a GraphQL response.
    SubrequestHttpError,
    /// A subgraph did not answer within its timeout.
    SubrequestTimeout,
    /// A subgraph's response body is larger than its `max_response_bytes` (default
    /// `subgraph_max_response_bytes`): the gateway stopped reading it.
    SubrequestResponseTooLarge,
    /// The whole request did not complete within `request_timeout_ms`.
    GatewayTimeout,
    /// A non-null field resolved to null (spec "field error").
    NullValueInNonNullField,
    /// A subgraph returned a value its field's type in the API schema does not allow (an
    /// enum value the API schema lacks, e.g. `@inaccessible`; a mistyped scalar; a list
    /// where none is declared or the reverse): the field is null (spec "field error").
    SubgraphInvalidValue,
    /// A bug or an unexpected internal state.
    InternalServerError,
    /// The identity may not read this field or type (`@authenticated`,
    /// `@requiresScopes`, `@policy`, `authorization.rules`). In a partial response the
    /// field is null; with `authorization.reject_unauthorized` the request is refused
    /// (403, or 401 when anonymous).
    UnauthorizedFieldOrType,
    /// The document has more lexical tokens than `limits.max_tokens`.
    MaxTokensExceeded,
    /// A field or fragment carries more directives than `limits.max_directives_per_field`.
    MaxDirectivesExceeded,
    /// A subscription sent as a plain HTTP request: it needs a streaming transport
    /// (`Accept: text/event-stream`, or a WebSocket): HTTP 406.
    SubscriptionTransportRequired,
    /// The client did not read a subscription's events for
    /// `[subscriptions] slow_consumer_timeout_ms`: the subscription ended.
    SubscriptionSlowConsumer,
    /// More subscriptions than `[subscriptions] max_per_client` for this client (or
    /// `max_per_connection` on one WebSocket).
    SubscriptionLimitExceeded,
    /// The gateway ended the subscription (a new supergraph, shutdown); the message says
    /// why. Subscribe again.
    SubscriptionEnded,
}

impl ErrorCode {
    /// The code sent in `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::BatchingNotEnabled => "BATCHING_NOT_ENABLED",
            ErrorCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ErrorCode::PersistedQueryHashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            ErrorCode::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            ErrorCode::BatchLimitExceeded => "BATCH_LIMIT_EXCEEDED",
            ErrorCode::CsrfPrevention => "CSRF_PREVENTION",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            ErrorCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            ErrorCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            ErrorCode::GraphqlUnknownOperationName => "GRAPHQL_UNKNOWN_OPERATION_NAME",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::MaxQueryLengthExceeded => "MAX_QUERY_LENGTH_EXCEEDED",
            ErrorCode::MaxDepthExceeded => "MAX_DEPTH_EXCEEDED",
            ErrorCode::MaxAliasesExceeded => "MAX_ALIASES_EXCEEDED",
            ErrorCode::MaxRootFieldsExceeded => "MAX_ROOT_FIELDS_EXCEEDED",
            ErrorCode::IntrospectionDisabled => "INTROSPECTION_DISABLED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::CostEstimatedTooExpensive => "COST_ESTIMATED_TOO_EXPENSIVE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::RateLimiterUnavailable => "RATE_LIMITER_UNAVAILABLE",
            ErrorCode::GatewayOverloaded => "GATEWAY_OVERLOADED",
            ErrorCode::QueryPlanningFailed => "QUERY_PLANNING_FAILED",
            ErrorCode::QueryPlanTooComplex => "QUERY_PLAN_TOO_COMPLEX",
            ErrorCode::QueryPlanUnsupported => "QUERY_PLAN_UNSUPPORTED",
            ErrorCode::SubrequestHttpError => "SUBREQUEST_HTTP_ERROR",
            ErrorCode::SubrequestTimeout => "SUBREQUEST_TIMEOUT",
            ErrorCode::SubrequestResponseTooLarge => "SUBREQUEST_RESPONSE_TOO_LARGE",
            ErrorCode::GatewayTimeout => "GATEWAY_TIMEOUT",
            ErrorCode::NullValueInNonNullField => "NULL_VALUE_IN_NON_NULL_FIELD",
            ErrorCode::SubgraphInvalidValue => "SUBGRAPH_INVALID_VALUE",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            ErrorCode::UnauthorizedFieldOrType => "UNAUTHORIZED_FIELD_OR_TYPE",
            ErrorCode::MaxTokensExceeded => "MAX_TOKENS_EXCEEDED",
            ErrorCode::MaxDirectivesExceeded => "MAX_DIRECTIVES_EXCEEDED",
            ErrorCode::SubscriptionTransportRequired => "SUBSCRIPTION_TRANSPORT_REQUIRED",
            ErrorCode::SubscriptionSlowConsumer => "SUBSCRIPTION_SLOW_CONSUMER",
            ErrorCode::SubscriptionLimitExceeded => "SUBSCRIPTION_LIMIT_EXCEEDED",
            ErrorCode::SubscriptionEnded => "SUBSCRIPTION_ENDED",
        }
    }

    /// HTTP status when this error refuses the whole request. Errors that occur during
    /// execution (subgraph failures, null bubbling) do not change the status: the
    /// response is a partial success (200).
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::BatchingNotEnabled
            | ErrorCode::BatchLimitExceeded
            | ErrorCode::PersistedQueryHashMismatch
            | ErrorCode::PersistedQueryNotInList
            | ErrorCode::CsrfPrevention
            | ErrorCode::PersistedQueryNotSupported
            | ErrorCode::GraphqlParseFailed
            | ErrorCode::GraphqlValidationFailed
            | ErrorCode::GraphqlUnknownOperationName
            | ErrorCode::BadUserInput
            | ErrorCode::MaxQueryLengthExceeded
            | ErrorCode::MaxDepthExceeded
            | ErrorCode::MaxAliasesExceeded
            | ErrorCode::MaxRootFieldsExceeded
            | ErrorCode::IntrospectionDisabled
            | ErrorCode::CostEstimatedTooExpensive
            | ErrorCode::QueryPlanTooComplex
            | ErrorCode::QueryPlanUnsupported => StatusCode::BAD_REQUEST,
            // 200, as Apollo's gateways answer it: APQ clients read the error and retry
            // with the query; some treat any non-2xx as a network failure.
            ErrorCode::PersistedQueryNotFound => StatusCode::OK,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimiterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::GatewayOverloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::QueryPlanningFailed | ErrorCode::InternalServerError => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ErrorCode::UnauthorizedFieldOrType => StatusCode::FORBIDDEN,
            ErrorCode::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::MaxTokensExceeded | ErrorCode::MaxDirectivesExceeded => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::SubscriptionTransportRequired => StatusCode::NOT_ACCEPTABLE,
            ErrorCode::SubscriptionLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::SubscriptionSlowConsumer | ErrorCode::SubscriptionEnded => StatusCode::OK,
            ErrorCode::SubrequestHttpError
            | ErrorCode::SubrequestTimeout
            | ErrorCode::SubrequestResponseTooLarge
            | ErrorCode::NullValueInNonNullField
            | ErrorCode::SubgraphInvalidValue => StatusCode::OK,
        }
    }
}

impl ErrorCode {
    /// The code whose [`as_str`](Self::as_str) is `code`, if it is one of ours.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ALL_CODES.iter().copied().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position in the client's document (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One element of a response path: a response key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathElem {
    Key(String),
    Index(usize),
}

impl PathElem {
    /// Read a path element from a subgraph's JSON (anything else is dropped).
    pub fn from_json(v: &Value) -> Option<PathElem> {
        match v {
            Value::String(s) => Some(PathElem::Key(s.clone())),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(PathElem::Index),
            _ => None,
        }
    }
}

/// A GraphQL error as in the response's `errors` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphQLError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<PathElem>>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

impl GraphQLError {
    /// An error with `extensions.code` set.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut extensions = Map::new();
        extensions.insert("code".into(), Value::String(code.as_str().into()));
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions,
        }
    }

    pub fn with_locations(mut self, locations: Vec<Location>) -> Self {
        self.locations = locations;
        self
    }

    pub fn with_path(mut self, path: Vec<PathElem>) -> Self {
        self.path = Some(path);
        self
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// The code in `extensions.code`, if it is one of ours.
    pub fn code(&self) -> Option<&str> {
        self.extensions.get("code").and_then(Value::as_str)
    }
}

/// A GraphQL response. `data` is absent (not null) for request errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GraphQLResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphQLError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::execute::Val>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

impl GraphQLResponse {
    /// Appends the response as JSON, byte for byte what `serde_json::to_writer` writes for
    /// it, with `data` (the bulk of it) written by [`Val::write_json`](crate::execute::Val::write_json).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'{');
        let mut more = false;
        if !self.errors.is_empty() {
            out.extend_from_slice(b"\"errors\":");
            serde_json::to_writer(&mut *out, &self.errors)?;
            more = true;
        }
        if let Some(data) = &self.data {
            if more {
                out.push(b',');
            }
            out.extend_from_slice(b"\"data\":");
            data.write_json(out);
            more = true;
        }
        if !self.extensions.is_empty() {
            if more {
                out.push(b',');
            }
            out.extend_from_slice(b"\"extensions\":");
            serde_json::to_writer(&mut *out, &self.extensions)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// A request refused before execution: one status, one or more errors.
#[derive(Debug, Clone)]
pub struct RequestFailure {
    pub status: StatusCode,
    pub errors: Vec<GraphQLError>,
}

impl RequestFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: code.http_status(),
            errors: vec![GraphQLError::new(code, message)],
        }
    }
}

impl From<GraphQLError> for RequestFailure {
    fn from(error: GraphQLError) -> Self {
        let status = error
            .code()
            .and_then(code_status)
            .unwrap_or(StatusCode::BAD_REQUEST);
        Self {
            status,
            errors: vec![error],
        }
    }
}

fn code_status(code: &str) -> Option<StatusCode> {
    ErrorCode::from_code(code).map(ErrorCode::http_status)
}

const ALL_CODES: &[ErrorCode] = &[
    ErrorCode::BadRequest,
    ErrorCode::BatchingNotEnabled,
    ErrorCode::BatchLimitExceeded,
    ErrorCode::PersistedQueryNotFound,
    ErrorCode::PersistedQueryHashMismatch,
    ErrorCode::PersistedQueryNotInList,
    ErrorCode::CsrfPrevention,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::MethodNotAllowed,
    ErrorCode::PersistedQueryNotSupported,
    ErrorCode::GraphqlParseFailed,
    ErrorCode::GraphqlValidationFailed,
    ErrorCode::GraphqlUnknownOperationName,
    ErrorCode::BadUserInput,
    ErrorCode::MaxQueryLengthExceeded,
    ErrorCode::MaxDepthExceeded,
    ErrorCode::MaxAliasesExceeded,
    ErrorCode::MaxRootFieldsExceeded,
    ErrorCode::IntrospectionDisabled,
    ErrorCode::Unauthenticated,
    ErrorCode::CostEstimatedTooExpensive,
    ErrorCode::RateLimited,
    ErrorCode::RateLimiterUnavailable,
    ErrorCode::GatewayOverloaded,
    ErrorCode::QueryPlanningFailed,
    ErrorCode::QueryPlanTooComplex,
    ErrorCode::QueryPlanUnsupported,
    ErrorCode::SubrequestHttpError,
    ErrorCode::SubrequestTimeout,
    ErrorCode::SubrequestResponseTooLarge,
    ErrorCode::GatewayTimeout,
    ErrorCode::NullValueInNonNullField,
    ErrorCode::SubgraphInvalidValue,
    ErrorCode::InternalServerError,
    ErrorCode::UnauthorizedFieldOrType,
    ErrorCode::MaxTokensExceeded,
    ErrorCode::MaxDirectivesExceeded,
];

/// Run `future`, turning a panic inside it into `Err(panic message)`: a panic is a bug
/// that costs one request, never the process. Shared state must stay consistent across
/// an unwind (`parking_lot` locks do not poison; nothing else is held across one).
///
/// The future is boxed here, once: the request pipeline's futures are large (tens of
/// KiB of state across their awaits), and every wrapper they then pass through (this
/// one, `instrument`, `timeout`, axum's handler) would otherwise copy all of it, several
/// times per request (callgrind showed a tenth of a small query's instructions in
/// `memcpy`).
pub(crate) fn catch_panic<F: std::future::Future>(
    future: F,
) -> impl std::future::Future<Output = Result<F::Output, String>> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(Box::pin(future))
        .catch_unwind()
        .map(|caught| caught.map_err(|payload| panic_message(payload.as_ref())))
}

/// The message of a panic payload (`panic!("..")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the three members, `data: null` included: the gateway's
    /// writer and serde_json agree byte for byte.
    #[test]
    fn a_response_is_written_as_serde_json_writes_it() {
        let error = GraphQLError::new(ErrorCode::NullValueInNonNullField, "a \"quoted\"\nline")
            .with_path(vec![PathElem::Key("me".into()), PathElem::Index(2)]);
        let data: crate::execute::Val =
            serde_json::json!({"me": {"name": "é\u{1}", "n": [1, 2.5]}}).into();
        let mut extensions = Map::new();
        extensions.insert("cost".into(), serde_json::json!({"estimated": 3.0}));
        for errors in [vec![], vec![error.clone(), error]] {
            for data in [None, Some(crate::execute::Val::Null), Some(data.clone())] {
                for extensions in [Map::new(), extensions.clone()] {
                    let response = GraphQLResponse {
                        errors: errors.clone(),
                        data: data.clone(),
                        extensions,
                    };
                    let mut out = Vec::new();
                    response.write_json(&mut out).expect("write");
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        serde_json::to_string(&response).expect("ser")
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_future_becomes_its_message_and_a_normal_one_its_output() {
        let id = 7;
        let panicked = catch_panic(async move {
            if id == 7 {
                panic!("bad state for {id}");
            }
            id
        })
        .await;
        assert_eq!(panicked, Err("bad state for 7".to_string()));
        assert_eq!(catch_panic(async { 3 }).await, Ok(3));
        let opaque = catch_panic(async move {
            if id == 7 {
                std::panic::panic_any(42_u8);
            }
            id
        })
        .await;
        assert_eq!(opaque, Err("a panic without a message".to_string()));
    }

    #[test]
    fn codes_are_unique_and_screaming_snake() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL_CODES {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!(
                c.as_str()
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch == '_')
            );
            assert_eq!(code_status(c.as_str()), Some(c.http_status()));
        }
    }
}
