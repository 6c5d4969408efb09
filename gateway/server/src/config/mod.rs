//! Typed gateway configuration: one struct per feature, every field documented, read
//! from a TOML file and then overridden by `PORTICO_*` environment variables.
//!
//! Environment overrides use `__` between path segments:
//! `PORTICO_LISTEN=0.0.0.0:4000`, `PORTICO_DEV=true`, `PORTICO_LIMITS__MAX_DEPTH=20`,
//! `PORTICO_SUBGRAPHS__USERS__URL=http://users:4001/graphql`. Only variables whose first
//! segment is a known top-level key are applied (others belong to the CLI). Values are
//! read as TOML scalars (`true`, `12`, `1.5`) and fall back to strings.
//!
//! Unknown keys are refused, and every error names the key (and the file line or the
//! environment variable) that caused it. At start-up `Gateway::new` compiles this into
//! runtime objects; the hot path never reads the config again.

pub mod schema;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value in environment variable {var} (key `{key}`): {message}")]
    Env {
        var: String,
        key: String,
        message: String,
    },
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// A second address for `/ready` and `/metrics` (and `/health`), e.g.
    /// `127.0.0.1:9090` or a cluster-internal port: when set, the public `listen` port
    /// no longer serves `/ready` and `/metrics` (it keeps `/health`). Unset: all on
    /// `listen`. Read at start-up.
    pub admin_listen: Option<SocketAddr>,
    /// Path of the supergraph SDL (used by the CLI; `Gateway::new` takes the SDL text).
    pub supergraph: Option<PathBuf>,
    /// Development mode: introspection, playground and the query-plan extension are on.
    /// When false (production), introspection and the playground are off unless
    /// `introspection` / `playground` enable them explicitly.
    pub dev: bool,
    /// Serve schema introspection (`__schema`, `__type`). Default: same as `dev`.
    pub introspection: Option<bool>,
    /// Serve the GraphiQL playground on browser `GET /graphql`. Default: same as `dev`.
    pub playground: Option<bool>,
    /// Honour the `portico-include-plan: true` request header by adding
    /// `extensions.queryPlan` to the response. Only ever effective in dev mode.
    pub include_plan: bool,
    /// The playground's explain panel: the query plan and the cost breakdown of the
    /// operation just run, for requests with `portico-explain: true`.
    pub explain: ExplainConfig,
    /// The playground's sign-in helper (a form calling a login mutation; the token goes
    /// into the Headers tab). Off unless set.
    pub playground_sign_in: Option<PlaygroundSignInConfig>,
    /// Per-subgraph settings, keyed by subgraph name as in the supergraph.
    pub subgraphs: BTreeMap<String, SubgraphConfig>,
    /// TLS to `https://` subgraphs (unless `[subgraphs.<name>.tls]` says otherwise).
    pub subgraph_tls: SubgraphTlsConfig,
    /// Timeout for a subgraph request when the subgraph has no `timeout_ms` of its own.
    pub subgraph_timeout_ms: u64,
    /// Largest subgraph response body the gateway reads, in bytes, when the subgraph has
    /// no `max_response_bytes` of its own. A larger body (announced by `Content-Length`
    /// or found while reading) fails that fetch with `SUBREQUEST_RESPONSE_TOO_LARGE`;
    /// reading stops as soon as the limit is passed.
    pub subgraph_max_response_bytes: usize,
    /// Most requests in flight to one subgraph at a time, when the subgraph has no
    /// `max_concurrent_requests` of its own. A fetch beyond it waits for a slot, and the
    /// wait counts against the subgraph's timeout (`SUBREQUEST_TIMEOUT`). Bounds the
    /// connections the gateway opens to a subgraph.
    pub subgraph_max_concurrent_requests: usize,
    /// Deadline of a whole client request, in milliseconds: past it the request is
    /// answered `GATEWAY_TIMEOUT` (HTTP 504) and its remaining subgraph calls are dropped.
    pub request_timeout_ms: u64,
    /// Override labels (`@override(label:)`) that are active for every request.
    pub override_labels: Vec<String>,
    /// How subgraphs are told the request came through the gateway.
    pub trust: TrustConfig,
    /// Verification of client access tokens (`Authorization: Bearer <JWT>`).
    pub jwt: JwtConfig,
    /// Cheap limits checked before authentication and planning.
    pub limits: LimitsConfig,
    pub batching: BatchingConfig,
    pub apq: ApqConfig,
    pub trusted_documents: TrustedDocumentsConfig,
    pub usage: UsageConfig,
    pub cache_control: CacheControlConfig,
    pub retries: RetryConfig,
    pub circuit_breaker: CircuitBreakerConfig,
    pub deduplication: DeduplicationConfig,
    /// CSRF prevention for requests a browser could send without a preflight.
    pub csrf: CsrfConfig,
    /// Caches for parsed documents and query plans.
    pub cache: CacheConfig,
    /// Static cost analysis: the most an operation may cost, and the cost model.
    pub cost: CostConfig,
    /// Per-client budgets of cost points per window.
    pub rate_limit: RateLimitConfig,
    /// Authorization: `@authenticated`/`@requiresScopes` plus rules by coordinate.
    pub authorization: AuthorizationConfig,
    /// Client headers propagated to subgraphs, renamed or inserted.
    pub headers: HeadersConfig,
    /// What clients see of the errors subgraphs return (outside dev mode).
    pub subgraph_errors: SubgraphErrorsConfig,
    /// Cross-origin requests from browsers (default: same-origin only).
    pub cors: CorsConfig,
    /// OpenTelemetry traces (OTLP over HTTP). Off unless an endpoint is set here or in
    /// the standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub telemetry: TelemetryConfig,
    /// Graceful shutdown on SIGTERM or SIGINT.
    pub shutdown: ShutdownConfig,
    /// Load shedding: how many client requests are served at once.
    pub overload: OverloadConfig,
    /// Subscriptions: transports, buffers, limits.
    pub subscriptions: SubscriptionsConfig,
}

/// Admission of client requests (`/graphql`; health, readiness and metrics are never
/// refused). Read at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OverloadConfig {
    /// Most `/graphql` requests served at once by this gateway process (0: no limit).
    /// Beyond it a request waits up to `queue_timeout_ms` for one to finish, then is
    /// refused at once with `GATEWAY_OVERLOADED` (HTTP 503, `Retry-After`), rather
    /// than queueing for seconds behind requests the gateway cannot serve in time.
    pub max_in_flight_requests: usize,
    /// Milliseconds a request beyond the limit waits for a free place.
    pub queue_timeout_ms: u64,
    /// `Retry-After` of the refusal, in seconds.
    pub retry_after_secs: u64,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self {
            max_in_flight_requests: 1024,
            queue_timeout_ms: 50,
            retry_after_secs: 1,
        }
    }
}

/// Subscriptions (`subscription` operations): over a WebSocket (`graphql-transport-ws`)
/// or Server-Sent Events from clients, over a WebSocket to the subgraph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsConfig {
    /// Serve subscriptions (off: they are refused like any unsupported operation).
    pub enabled: bool,
    /// A client that reads none of its events for this many milliseconds loses the
    /// subscription (`SUBSCRIPTION_SLOW_CONSUMER`): the gateway buffers a few events per
    /// subscription, never more.
    pub slow_consumer_timeout_ms: u64,
    /// Most subscriptions one WebSocket connection may hold at once.
    pub max_per_connection: usize,
    /// Most subscriptions one client (a user, or an address for anonymous callers) may
    /// hold at once across connections and transports (`SUBSCRIPTION_LIMIT_EXCEEDED`).
    pub max_per_client: usize,
    /// Milliseconds a WebSocket client has to send `connection_init`.
    pub connection_init_timeout_ms: u64,
    /// Also take the operation's estimated cost from the client's rate-limit budget for
    /// every event (it is always charged once, when the subscription starts); an event
    /// the budget cannot cover ends the subscription with `RATE_LIMITED`.
    pub charge_per_event: bool,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            slow_consumer_timeout_ms: 5_000,
            max_per_connection: 32,
            max_per_client: 64,
            connection_init_timeout_ms: 10_000,
            charge_per_event: false,
        }
    }
}

/// What the gateway does between SIGTERM (or SIGINT) and exiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Milliseconds the gateway keeps accepting requests after the signal while `/ready`
    /// already answers 503, so that load balancers stop routing to it first (a few
    /// seconds behind a Kubernetes Service).
    pub drain_delay_ms: u64,
    /// Milliseconds requests in flight get to finish once the listener is closed; past
    /// it they are cut and the process exits (status 0 either way).
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay_ms: 0,
            grace_ms: 30_000,
        }
    }
}

/// OpenTelemetry trace export (read by the `portico` binary when it starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector (`http://otel-collector:4318`); spans are sent
    /// as protobuf to `<otlp_endpoint>/v1/traces`. Unset: the `OTEL_EXPORTER_OTLP_*`
    /// environment variables decide, and without them nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the gateway's spans.
    pub service_name: String,
    /// Share of new traces recorded, 0.0 to 1.0. A request that arrives with a
    /// `traceparent` follows its caller's sampling decision. Unset: the standard
    /// `OTEL_TRACES_SAMPLER` variables decide (default: every trace).
    pub sample_ratio: Option<f64>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "portico-gateway".into(),
            sample_ratio: None,
        }
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("telemetry.{key}"),
            message: message.into(),
        };
        if let Some(r) = self.sample_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(invalid("sample_ratio", "must be between 0.0 and 1.0"));
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "otlp_endpoint",
                "must be an http:// or https:// URL (OTLP over HTTP)",
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(invalid("service_name", "must not be empty"));
        }
        Ok(())
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            admin_listen: None,
            supergraph: None,
            dev: false,
            introspection: None,
            playground: None,
            include_plan: true,
            explain: ExplainConfig::default(),
            playground_sign_in: None,
            subgraphs: BTreeMap::new(),
            subgraph_tls: SubgraphTlsConfig::default(),
            subgraph_timeout_ms: 30_000,
            subgraph_max_response_bytes: 16 * 1024 * 1024,
            subgraph_max_concurrent_requests: 128,
            request_timeout_ms: 60_000,
            override_labels: Vec::new(),
            trust: TrustConfig::default(),
            jwt: JwtConfig::default(),
            limits: LimitsConfig::default(),
            batching: BatchingConfig::default(),
            apq: ApqConfig::default(),
            trusted_documents: TrustedDocumentsConfig::default(),
            usage: UsageConfig::default(),
            cache_control: CacheControlConfig::default(),
            retries: RetryConfig::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
            deduplication: DeduplicationConfig::default(),
            csrf: CsrfConfig::default(),
            cache: CacheConfig::default(),
            cost: CostConfig::default(),
            rate_limit: RateLimitConfig::default(),
            authorization: AuthorizationConfig::default(),
            headers: HeadersConfig::default(),
            subgraph_errors: SubgraphErrorsConfig::default(),
            cors: CorsConfig::default(),
            telemetry: TelemetryConfig::default(),
            shutdown: ShutdownConfig::default(),
            overload: OverloadConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
        }
    }
}

/// Settings of one subgraph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SubgraphConfig {
    /// URL replacing the one in the supergraph's `@join__graph(url:)`.
    pub url: Option<String>,
    /// Request timeout in milliseconds (default: `subgraph_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Largest response body read from this subgraph, in bytes (default:
    /// `subgraph_max_response_bytes`).
    pub max_response_bytes: Option<usize>,
    /// Most requests in flight to this subgraph at a time (default:
    /// `subgraph_max_concurrent_requests`).
    pub max_concurrent_requests: Option<usize>,
    /// TLS to this subgraph, replacing `[subgraph_tls]` for it.
    pub tls: Option<SubgraphTlsConfig>,
    /// Keys of this subgraph's error `extensions` passed to clients outside dev mode,
    /// replacing `[subgraph_errors] allow_extensions` for it (`["*"]`: every key).
    pub allow_error_extensions: Option<Vec<String>>,
}

/// TLS to `https://` subgraphs: extra trusted CAs and a client certificate (mutual
/// TLS). Files are read at start-up and on supergraph reloads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SubgraphTlsConfig {
    /// PEM bundle of CA certificates trusted beside the built-in public roots (a private
    /// CA that signed the subgraphs' certificates).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain the gateway presents to subgraphs that require client
    /// certificates; with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl SubgraphTlsConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(ConfigError::Invalid {
                key: format!("{key}.client_cert_file"),
                message: "set client_cert_file and client_key_file together".into(),
            });
        }
        Ok(())
    }
}

/// What clients see of the errors subgraphs return. In dev mode every message and every
/// extension passes; outside it these rules apply. `serviceName` is always set by the
/// gateway and `locations` (which point into the subgraph's operation) are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SubgraphErrorsConfig {
    /// Keys of a subgraph error's `extensions` passed to clients; `["*"]` passes every
    /// key. Subgraphs put internal detail there (stack traces, SQL, host names).
    pub allow_extensions: Vec<String>,
    /// Replace every subgraph error message with `subgraph error (redacted)` (path
    /// and allowed extensions stay).
    pub redact_message: bool,
    /// Add `extensions.serviceName` (the subgraph's name) to the errors subgraphs
    /// return, outside dev mode too (in dev mode it is always added). The gateway's own
    /// errors about a subgraph request (`SUBREQUEST_*`) always name the subgraph.
    pub expose_service_name: bool,
}

impl Default for SubgraphErrorsConfig {
    fn default() -> Self {
        Self {
            allow_extensions: vec!["code".into()],
            redact_message: false,
            expose_service_name: false,
        }
    }
}

/// Who gets `extensions.explain` (the plan as JSON and text, and the estimated cost
/// with its per-field breakdown beside the actual cost) by sending the request header
/// `portico-explain: true`. The explanation names subgraphs and shows the requests sent
/// to them: in production give it only to tokens with `required_scope`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExplainConfig {
    /// Honour the header. Default: same as `dev`.
    pub enabled: Option<bool>,
    /// Only requests whose token carries this scope are explained (any caller when
    /// unset). Requests without it get no explanation and no error.
    pub required_scope: Option<String>,
}

/// The playground's sign-in form: `mutation` runs with the variables `$username` and
/// `$password`; the string at `token_path` in its `data` becomes the `Authorization:
/// Bearer` header of the Headers tab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaygroundSignInConfig {
    /// A GraphQL mutation using `$username` and `$password`, e.g. `mutation($username:
    /// String!, $password: String!) { login(usernameOrEmail: $username, password:
    /// $password) { accessToken } }`.
    pub mutation: String,
    /// Dotted path of the token in the mutation's `data`, e.g. `login.accessToken`.
    pub token_path: String,
}

impl PlaygroundSignInConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("playground_sign_in.{key}"),
            message: message.to_string(),
        };
        if !self.mutation.contains("$username") || !self.mutation.contains("$password") {
            return Err(invalid(
                "mutation",
                "must be a mutation using the variables $username and $password",
            ));
        }
        if self.token_path.split('.').any(str::is_empty) {
            return Err(invalid(
                "token_path",
                "must be a dotted path of field names, e.g. `login.accessToken`",
            ));
        }
        Ok(())
    }
}

/// Trust tokens minted for subgraphs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// PKCS#8 PEM file of the gateway's Ed25519 signing key (read by the CLI, which
    /// passes a `TrustSigner` to `Gateway::new`; in dev a generated key is passed in).
    pub signing_key: Option<PathBuf>,
    /// Lifetime of a minted trust token in seconds (at most 60).
    pub token_ttl_secs: u64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            token_ttl_secs: 60,
        }
    }
}

impl TrustConfig {
    /// The gateway's signer read from `signing_key`; `None` when no path is set (the CLI
    /// then generates one in dev mode, and refuses to start in production).
    pub fn load_signer(&self) -> Result<Option<portico_trust::TrustSigner>, ConfigError> {
        let Some(path) = &self.signing_key else {
            return Ok(None);
        };
        let invalid = |message: String| ConfigError::Invalid {
            key: "trust.signing_key".into(),
            message,
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        portico_trust::TrustSigner::from_pkcs8_pem(&pem)
            .map(Some)
            .map_err(|e| invalid(e.to_string()))
    }
}

/// Client access-token verification. With neither `public_key` nor `jwks_url`, bearer
/// tokens are refused (there is nothing to verify them with) and requests without one
/// are anonymous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// PEM file of the RSA public key that signs access tokens (RS256).
    pub public_key: Option<PathBuf>,
    /// URL of a JWKS document (e.g. the auth service's `/.well-known/jwks.json`).
    pub jwks_url: Option<String>,
    /// Path of a JWKS document on disk (re-read every `jwks_max_age_secs`).
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim (one of), when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Re-fetch the JWKS when the cached copy is older than this, in seconds.
    pub jwks_max_age_secs: u64,
    /// Minimum interval between two JWKS fetches triggered by an unknown `kid`, in
    /// seconds, so a flood of random `kid`s cannot hammer the key server.
    pub jwks_min_refresh_secs: u64,
    /// Tokens longer than this many bytes are refused without parsing.
    pub max_token_bytes: usize,
    /// Verified tokens remembered (by SHA-256 of the token, until they expire) so a
    /// repeated token skips the signature check; 0 disables the cache.
    pub verified_cache_size: usize,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            public_key: None,
            jwks_url: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            jwks_max_age_secs: 300,
            jwks_min_refresh_secs: 10,
            max_token_bytes: 8192,
            verified_cache_size: 10_000,
        }
    }
}

/// Cheap request and operation limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest accepted query text, in bytes.
    pub max_query_length: usize,
    /// Deepest accepted selection nesting (fragments expanded).
    pub max_depth: usize,
    /// Most aliases accepted in one operation.
    pub max_aliases: usize,
    /// Most root fields accepted in one operation.
    pub max_root_fields: usize,
    /// Most lexical tokens the parser reads before giving up (`MAX_TOKENS_EXCEEDED`).
    pub max_tokens: usize,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives_per_field: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_query_length: 256 * 1024,
            max_depth: 32,
            max_aliases: 64,
            max_root_fields: 64,
            max_tokens: 15_000,
            max_directives_per_field: 16,
        }
    }
}

/// Request batching: a JSON array of GraphQL requests answered by a JSON array of
/// responses, in order, each request limited, authorized, costed and rate-limited on its
/// own. Off by default (a batch multiplies what one HTTP request costs; clients that
/// want it, like Apollo Client's `BatchHttpLink`, opt in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Accept JSON arrays of requests (POST only).
    pub enabled: bool,
    /// Most requests in one batch (`BATCH_LIMIT_EXCEEDED` above it).
    pub max_size: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_size: 16,
        }
    }
}

/// `Cache-Control` on successful GET query responses, from max-age hints by type and by
/// field (`@cacheControl`-style; see `cache_control.rs` for how they combine). With no
/// hints and `default_max_age_secs = 0` nothing is cacheable and no header is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CacheControlConfig {
    /// Max-age of root fields and composite fields without a hint (leaf fields inherit
    /// their parent's).
    pub default_max_age_secs: u64,
    /// Max-age by type name (`Post = 60`), for fields returning it.
    pub types: BTreeMap<String, u64>,
    /// Max-age by field coordinate (`"Query.topPosts" = 30`), over its type's.
    pub fields: BTreeMap<String, u64>,
}

/// Usage recording: the operations served (SHA-256, document, clients, count, first and
/// last seen), written to a JSON file that `portico check --usage` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// The file (off when unset). Merged with what it holds, so replicas sharing a
    /// volume, or restarts, add up.
    pub file: Option<PathBuf>,
    /// Most operations kept (the most recently seen).
    pub max_operations: usize,
    /// Seconds between writes of the file (and to Redis).
    pub flush_secs: u64,
    /// Also (or instead) record in Redis, where every replica adds to the same records
    /// (`redis://host:6379/0`); `portico check --usage redis://…` reads them.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`<prefix>ops`, `<prefix>op:<sha256>`,
    /// `<prefix>op:<sha256>:clients`).
    pub redis_key_prefix: String,
    /// Redis: connection and response timeout of a flush, in milliseconds (flushes run
    /// on their own thread, never in a request).
    pub redis_timeout_ms: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            file: None,
            max_operations: 10_000,
            flush_secs: 10,
            redis_url: None,
            redis_key_prefix: "portico:usage:".into(),
            redis_timeout_ms: 2_000,
        }
    }
}

/// What to do with operations that are not in the trusted documents manifest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TrustedDocumentsMode {
    /// No manifest: every valid operation is served.
    #[default]
    Off,
    /// Serve every operation; count and log those not in the manifest.
    Log,
    /// Refuse operations not in the manifest (`PERSISTED_QUERY_NOT_IN_LIST`).
    Enforce,
}

/// Trusted documents: the operations clients may send, from a manifest file (Apollo's
/// persisted-query manifest JSON, or Relay's `{ id: document }` map). Clients may send
/// only the id (`documentId`, or `extensions.persistedQuery.sha256Hash`). Reloaded with
/// SIGHUP (`portico gateway`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrustedDocumentsConfig {
    pub mode: TrustedDocumentsMode,
    /// The manifest file (required unless `mode = "off"`).
    pub manifest: Option<PathBuf>,
}

/// Automatic persisted queries (Apollo's APQ protocol): a client sends
/// `extensions.persistedQuery { version: 1, sha256Hash }` without the query; an unknown
/// hash is answered `PERSISTED_QUERY_NOT_FOUND` and the client retries with the query
/// text, which registers it (after checking that it hashes to the hash sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApqConfig {
    /// Accept hash-only requests (off: `PERSISTED_QUERY_NOT_SUPPORTED`, and clients fall
    /// back to sending the query every time).
    pub enabled: bool,
    /// Most query texts kept, in this process's memory (least recently used evicted).
    pub max_entries: usize,
    /// Also keep registered queries in Redis (`redis://host:6379/0`, `rediss://` for
    /// TLS), shared by every replica using the same Redis and prefix; memory stays the
    /// first level. Unset: this process's memory only.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`<prefix><sha256 hex>`).
    pub redis_key_prefix: String,
    /// How long Redis keeps a registered query, in seconds.
    pub redis_ttl_secs: u64,
    /// Redis: connection and response timeout, in milliseconds. A lookup past it is a
    /// miss (the client sends the text again), a registration stays in memory.
    pub redis_timeout_ms: u64,
    /// Redis: after a failure, skip Redis for this many milliseconds.
    pub redis_retry_interval_ms: u64,
}

impl Default for ApqConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 4096,
            redis_url: None,
            redis_key_prefix: "portico:apq:".into(),
            redis_ttl_secs: 86_400,
            redis_timeout_ms: 200,
            redis_retry_interval_ms: 5_000,
        }
    }
}

/// Retries of failed subgraph requests: only queries (a subgraph operation that is not a
/// mutation), only when the subgraph could not have acted (the connection failed, or it
/// answered 502, 503 or 504), within the subgraph's timeout, and within a budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Most retries of one request.
    pub max_retries: u32,
    /// Backoff before retry n (from 1): a random wait up to `backoff_ms × 2^(n-1)`.
    pub backoff_ms: u64,
    /// Retries allowed per subgraph, as a share of its requests (a token bucket: each
    /// request adds this much, a retry takes one, at most 10 saved up), so retries never
    /// multiply the load on a subgraph that is failing for everyone.
    pub budget_ratio: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_retries: 2,
            backoff_ms: 20,
            budget_ratio: 0.2,
        }
    }
}

/// Deduplication of subgraph queries: a query to a subgraph identical to one already in
/// flight (same subgraph, same body — document and variables —, same identity and same
/// forwarded headers) is not sent again; it waits for the response of the one in flight.
/// Only client queries share: every request of a client mutation (root fields and the
/// entity fetches after them, so it reads its own writes), and every request to a
/// subgraph with `respond` header rules (its response headers are meant for one client),
/// is sent on its own.
///
/// `requests`: whole client queries too. A client query identical to one in flight (same
/// operation and plan, same variables, same identity, same values of every client header
/// a `[headers]` rule propagates) is not executed again: it waits for that execution's
/// response and gets a copy. Each client is still authenticated, authorized, priced and
/// charged on its own. Never for mutations and subscriptions, nor for a plan that
/// fetches from a subgraph with `respond` rules (its response headers are one client's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeduplicationConfig {
    pub enabled: bool,
    pub requests: bool,
}

impl Default for DeduplicationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            requests: true,
        }
    }
}

/// A circuit breaker per subgraph: after `failure_threshold` consecutive failures (no
/// GraphQL response: connection failed, timeout, HTTP error, not GraphQL) the subgraph
/// is not called for `cooldown_ms`; its fetches fail at once, saying so. Then one request
/// probes it: success closes the circuit, failure opens it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub cooldown_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            cooldown_ms: 10_000,
        }
    }
}

/// CSRF prevention (Apollo-compatible rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsrfConfig {
    /// Refuse GET and simple-content-type POST requests that carry none of
    /// `required_headers`.
    pub enabled: bool,
    /// Any one of these request headers marks a request as not forgeable.
    pub required_headers: Vec<String>,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            required_headers: vec!["portico-csrf".into(), "apollo-require-preflight".into()],
        }
    }
}

/// Authorization rules. `@authenticated`, `@requiresScopes` and `@policy` in the
/// supergraph apply as well; rules here add to them (both must hold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationConfig {
    /// Refuse every request without a valid token (`UNAUTHENTICATED`, 401).
    pub require_authentication: bool,
    /// Refuse the whole request when it selects an unauthorized field (401 anonymous,
    /// 403 authenticated) instead of answering those fields with `null`.
    pub reject_unauthorized: bool,
    /// Rules by schema coordinate: `"Query.me" = "authenticated"`,
    /// `"User.notifications" = { scopes = [["read"]] }` (inner lists are AND, the outer
    /// list OR), or a type name (`"Notification" = "authenticated"`) for every field
    /// returning the type. Unknown coordinates are refused at start-up.
    pub rules: BTreeMap<String, RuleConfig>,
    /// What grants each `@policy` policy (the default evaluator; an embedding
    /// application may plug its own): `"read_profile" = "authenticated"`,
    /// `"admin" = { scopes = [["admin"]] }`. A policy not listed is denied.
    pub policies: BTreeMap<String, RuleConfig>,
}

/// One authorization rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum RuleConfig {
    /// `"authenticated"`.
    Keyword(String),
    /// `{ scopes = [["a", "b"], ["c"]] }`: a AND b, OR c.
    Scopes { scopes: Vec<Vec<String>> },
}

/// Header propagation to subgraphs. Nothing a client sends is forwarded unless a rule
/// says so; `portico-*` headers are never forwarded nor inserted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    /// Rules by subgraph name; `"*"` applies to every subgraph (before its own rules).
    pub subgraphs: BTreeMap<String, HeaderRules>,
}

/// The header rules of one subgraph (or `"*"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderRules {
    /// Client headers to forward: `{ named = "accept-language" }`, optionally
    /// `rename = "x-lang"` and `default = "en"` (sent when the client sent none).
    pub propagate: Vec<PropagateRule>,
    /// Static headers: `{ name = "x-from", value = "portico" }`.
    pub insert: Vec<InsertRule>,
    /// Headers of this subgraph's responses passed on to the client (every value, e.g.
    /// each `Set-Cookie`): `respond = ["set-cookie"]`. Never framing, hop-by-hop, CORS
    /// or `portico-*` headers.
    pub respond: Vec<String>,
}

/// Forward one client header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropagateRule {
    pub named: String,
    #[serde(default)]
    pub rename: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
}

/// Insert one static header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertRule {
    pub name: String,
    pub value: String,
}

impl HeadersConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (subgraph, rules) in &self.subgraphs {
            let names = rules
                .propagate
                .iter()
                .flat_map(|p| [Some(&p.named), p.rename.as_ref()])
                .flatten()
                .chain(rules.insert.iter().map(|i| &i.name));
            for name in names {
                if let Some(message) = crate::headers::refused_header(name) {
                    return Err(ConfigError::Invalid {
                        key: format!("headers.subgraphs.\"{subgraph}\""),
                        message: format!("header `{name}`: {message}"),
                    });
                }
            }
            for name in &rules.respond {
                let lower = name.to_ascii_lowercase();
                let refused = crate::headers::refused_header(name).or_else(|| {
                    lower
                        .starts_with("access-control-")
                        .then_some("CORS headers are the gateway's")
                });
                if let Some(message) = refused {
                    return Err(ConfigError::Invalid {
                        key: format!("headers.subgraphs.\"{subgraph}\".respond"),
                        message: format!("header `{name}`: {message}"),
                    });
                }
            }
            for i in &rules.insert {
                if http::HeaderValue::from_str(&i.value).is_err() {
                    return Err(ConfigError::Invalid {
                        key: format!("headers.subgraphs.\"{subgraph}\".insert"),
                        message: format!("`{}`: not a valid header value", i.name),
                    });
                }
            }
        }
        Ok(())
    }
}

/// CORS for browsers on other origins. With no `allow_origins` no CORS header is
/// ever sent, so only same-origin pages (the playground) can read responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins allowed (`https://app.example.com`), or `["*"]` for any origin
    /// (then `allow_credentials` must be false).
    pub allow_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (cookies, `Authorization`).
    pub allow_credentials: bool,
    /// Request headers a browser may send.
    pub allow_headers: Vec<String>,
    /// Response headers a browser script may read.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_credentials: false,
            allow_headers: vec![
                "content-type".into(),
                "authorization".into(),
                "portico-csrf".into(),
                "apollo-require-preflight".into(),
            ],
            expose_headers: Vec::new(),
            max_age_secs: 600,
        }
    }
}

impl CorsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("cors.{key}"),
            message,
        };
        let any = self.allow_origins.iter().any(|o| o == "*");
        if any && self.allow_credentials {
            return Err(invalid(
                "allow_credentials",
                "cannot be true when `allow_origins` is [\"*\"]".into(),
            ));
        }
        for origin in self.allow_origins.iter().filter(|o| *o != "*") {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.trim_end_matches('/').contains(['?', '#'])
                && http::HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(invalid(
                    "allow_origins",
                    format!("`{origin}` is not an origin (scheme://host[:port])"),
                ));
            }
        }
        for h in self.allow_headers.iter().chain(&self.expose_headers) {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    "allow_headers",
                    format!("`{h}` is not a header name"),
                ));
            }
        }
        Ok(())
    }
}

/// Cache sizes, and how long planning failures are remembered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most query plans kept (keyed by operation hash, operation name, override labels).
    /// As many planning failures are kept apart, so they never evict plans.
    pub plans: usize,
    /// Most parsed and validated documents kept (keyed by query text hash).
    pub documents: usize,
    /// Seconds a planning failure (`QUERY_PLAN_TOO_COMPLEX`, `QUERY_PLANNING_FAILED`, a
    /// panicking planner, ...) is answered from the cache instead of planning again, so a
    /// client repeating an unplannable operation costs a lookup. 0 caches no failure.
    pub plan_failure_ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            plans: 4096,
            documents: 4096,
            plan_failure_ttl_secs: 5,
        }
    }
}

/// Static cost analysis (IBM GraphQL Cost Directive rules, see
/// `portico_federation::cost`). The cost model keys (`default_list_size`,
/// `mutation_base`, `introspection_weight`, `fields`, `types`) sit directly in this
/// section.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CostConfig {
    /// Most an operation may cost (estimated before execution). Above it the request is
    /// refused with `COST_ESTIMATED_TOO_EXPENSIVE` (HTTP 400) before any subgraph is
    /// called.
    pub max_cost: f64,
    /// Add `extensions.cost { estimated, actual }` to every response.
    pub expose_in_extensions: bool,
    /// Price every response with the list sizes actually returned, for the
    /// `portico_cost_actual` metric (always on when `expose_in_extensions` is).
    pub measure_actual: bool,
    /// `@cost`/`@listSize` equivalents by schema coordinate, and the defaults.
    #[serde(flatten)]
    pub model: portico_federation::cost::CostSettings,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            max_cost: 5000.0,
            expose_in_extensions: false,
            measure_actual: true,
            model: portico_federation::cost::CostSettings::default(),
        }
    }
}

/// By hand because `#[serde(flatten)]` would accept unknown keys: the section's own
/// keys are taken out, the rest must be cost model keys.
impl<'de> Deserialize<'de> for CostConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut config = CostConfig::default();
        let mut take = |key: &str| table.remove(key);
        let field = |key: &str, v: serde_json::Value| {
            D::Error::custom(format!("`cost.{key}`: invalid value {v}"))
        };
        if let Some(v) = take("max_cost") {
            config.max_cost = v.as_f64().ok_or_else(|| field("max_cost", v))?;
        }
        if let Some(v) = take("expose_in_extensions") {
            config.expose_in_extensions = v
                .as_bool()
                .ok_or_else(|| field("expose_in_extensions", v))?;
        }
        if let Some(v) = take("measure_actual") {
            config.measure_actual = v.as_bool().ok_or_else(|| field("measure_actual", v))?;
        }
        config.model = serde_json::from_value(serde_json::Value::Object(table))
            .map_err(|e| D::Error::custom(format!("in [cost]: {e}")))?;
        Ok(config)
    }
}

impl CostConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.max_cost.is_finite() && self.max_cost > 0.0) {
            return Err(ConfigError::Invalid {
                key: "cost.max_cost".into(),
                message: "must be a positive number".into(),
            });
        }
        Ok(())
    }
}

/// Rate limiting by query cost: each client has a budget of cost points per window,
/// enforced as GCRA (a token bucket refilling continuously; bursts up to the whole
/// budget). A request is charged its estimated cost (at least 1 point).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Enforce budgets (and send the `RateLimit-*` headers).
    pub enabled: bool,
    /// Where budgets live: `memory` (this process) or `redis` (shared by replicas).
    pub backend: RateLimitBackend,
    /// Redis URL (`redis://host:6379/0`, `rediss://` for TLS) when `backend = "redis"`.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`<prefix><client>`).
    pub key_prefix: String,
    /// Window in seconds: a client's budget refills completely over one window.
    pub window_secs: u64,
    /// Points per window for an authenticated user (keyed by user id).
    pub authenticated_budget: u64,
    /// Points per window for an anonymous client (keyed by client address).
    pub anonymous_budget: u64,
    /// Budgets by token scope for authenticated users; the largest matching one wins
    /// over `authenticated_budget`.
    pub tiers: Vec<RateLimitTier>,
    /// Header set by a trusted reverse proxy holding the client address
    /// (`x-forwarded-for`: its last entry is used). Unset: the TCP peer address. Only
    /// set it when every request comes through that proxy, or clients can spoof it.
    pub trusted_proxy_header: Option<String>,
    /// When the backend is unreachable: serve the request (`true`, logged at most once
    /// per interval and counted) or refuse it with `RATE_LIMITER_UNAVAILABLE` (HTTP 503).
    pub fail_open: bool,
    /// Redis: connection and response timeout, in milliseconds (a request never waits
    /// longer than this for the limiter).
    pub redis_timeout_ms: u64,
    /// Redis: after a failure, requests skip Redis (fail open/closed at once) for this
    /// many milliseconds before trying again.
    pub redis_retry_interval_ms: u64,
    /// Memory backend: most clients tracked. Clients whose bucket is full again are
    /// forgotten first; beyond this, those closest to a full bucket, whose state is
    /// kept in a fixed sketch (32 bytes per client place) so that a forgotten client
    /// never comes back to a fuller bucket.
    pub memory_max_clients: usize,
}

/// Rate-limit storage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In this process (one budget per replica).
    #[default]
    Memory,
    /// In Redis, one atomic script per request (one budget shared by all replicas).
    Redis,
}

/// A budget for users whose token carries `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitTier {
    /// Token scope (`scope`/`scp` claim) that selects this tier.
    pub scope: String,
    /// Points per window.
    pub budget: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: RateLimitBackend::Memory,
            redis_url: None,
            key_prefix: "portico:rl:".into(),
            window_secs: 60,
            authenticated_budget: 20_000,
            anonymous_budget: 5_000,
            tiers: Vec::new(),
            trusted_proxy_header: None,
            fail_open: true,
            redis_timeout_ms: 250,
            redis_retry_interval_ms: 1000,
            memory_max_clients: 100_000,
        }
    }
}

impl RateLimitConfig {
    /// Checks every key; errors name it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("rate_limit.{key}"),
            message: message.into(),
        };
        if self.window_secs == 0 || self.window_secs > 86_400 {
            return Err(invalid("window_secs", "must be between 1 and 86400"));
        }
        if self.authenticated_budget == 0 {
            return Err(invalid("authenticated_budget", "must be positive"));
        }
        if self.anonymous_budget == 0 {
            return Err(invalid("anonymous_budget", "must be positive"));
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            if tier.scope.is_empty() {
                return Err(invalid(&format!("tiers[{i}].scope"), "must not be empty"));
            }
            if tier.budget == 0 {
                return Err(invalid(&format!("tiers[{i}].budget"), "must be positive"));
            }
        }
        if let Some(h) = &self.trusted_proxy_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(invalid(
                "trusted_proxy_header",
                "is not a valid header name",
            ));
        }
        if self.redis_timeout_ms == 0 {
            return Err(invalid("redis_timeout_ms", "must be positive"));
        }
        if self.memory_max_clients < 1024 {
            return Err(invalid("memory_max_clients", "must be at least 1024"));
        }
        match (&self.backend, &self.redis_url) {
            (RateLimitBackend::Redis, None) => {
                return Err(invalid("redis_url", "is required when backend = \"redis\""));
            }
            (_, Some(url)) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
                return Err(invalid("redis_url", "must be a redis:// or rediss:// URL"));
            }
            _ => {}
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// Read a TOML file, then apply `PORTICO_*` environment overrides.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_file_text(&text, path)
    }

    /// Parse the text of the file at `path` as [`from_file`](Self::from_file) would
    /// (YAML when named `*.yaml`/`*.yml`, TOML otherwise; `PORTICO_*` overrides).
    pub fn from_file_text(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if yaml {
            return Self::from_yaml_with_env(text, path, std::env::vars());
        }
        Self::from_toml_with_env(text, path, std::env::vars())
    }

    /// Parse YAML text (the same keys as TOML) and apply `PORTICO_*` overrides.
    pub fn from_yaml_with_env(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        // Validate the file alone first, so its errors carry its YAML line numbers.
        let _: GatewayConfig =
            serde_yaml_ng::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        // Then the one code path for overrides and validation: YAML → TOML table.
        let table: toml::Table = if text.trim().is_empty() {
            toml::Table::new()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| parse_err(e.to_string()))?
        };
        let toml_text = toml::to_string(&table).map_err(|e| parse_err(e.to_string()))?;
        Self::from_toml_with_env(&toml_text, path, env)
    }

    /// Parse TOML text (no environment overrides).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(text, Path::new("<inline>"), std::iter::empty())
    }

    /// Defaults plus `PORTICO_*` environment overrides (no file).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_toml_with_env("", Path::new("<env>"), std::env::vars())
    }

    /// Parse TOML text and apply the given `(name, value)` environment overrides.
    pub fn from_toml_with_env(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        // Validate the file alone first, so its errors carry its line numbers.
        let _: GatewayConfig = toml::from_str(text).map_err(parse_err)?;
        let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        let mut applied = Vec::new();
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix("PORTICO_") else {
                continue;
            };
            let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if segments.iter().any(String::is_empty)
                || !TOP_LEVEL_KEYS.contains(&segments[0].as_str())
            {
                continue;
            }
            insert_path(&mut table, &segments, scalar(&raw));
            applied.push((var, segments.join(".")));
        }
        let config: GatewayConfig =
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    // Name the first environment override whose key the message mentions,
                    // else the last one applied.
                    let message = e.to_string();
                    let (var, key) = applied
                        .iter()
                        .find(|(_, key)| {
                            key.rsplit('.')
                                .next()
                                .is_some_and(|leaf| message.contains(leaf))
                        })
                        .or(applied.last())
                        .cloned()
                        .unwrap_or_default();
                    ConfigError::Env { var, key, message }
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values serde cannot (ranges, combinations); errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if self.trust.token_ttl_secs == 0 || self.trust.token_ttl_secs > 60 {
            return Err(invalid("trust.token_ttl_secs", "must be between 1 and 60"));
        }
        if let Some(sign_in) = &self.playground_sign_in {
            sign_in.validate()?;
        }
        if self.jwt.public_key.is_some() && self.jwt.jwks_url.is_some() {
            return Err(invalid(
                "jwt",
                "set either `public_key` or `jwks_url`, not both",
            ));
        }
        if self.jwt.jwks_file.is_some()
            && (self.jwt.public_key.is_some() || self.jwt.jwks_url.is_some())
        {
            return Err(invalid(
                "jwt",
                "set one of `public_key`, `jwks_url` and `jwks_file`",
            ));
        }
        self.headers.validate()?;
        self.cors.validate()?;
        self.telemetry.validate()?;
        self.subgraph_tls.validate("subgraph_tls")?;
        for (name, subgraph) in &self.subgraphs {
            if let Some(tls) = &subgraph.tls {
                tls.validate(&format!("subgraphs.{name}.tls"))?;
            }
        }
        if self.limits.max_body_bytes == 0 {
            return Err(invalid("limits.max_body_bytes", "must be positive"));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("request_timeout_ms", "must be positive"));
        }
        self.cost.validate()?;
        self.rate_limit.validate()?;
        if self.subgraph_max_response_bytes == 0 {
            return Err(invalid("subgraph_max_response_bytes", "must be positive"));
        }
        if self.trusted_documents.mode != TrustedDocumentsMode::Off
            && self.trusted_documents.manifest.is_none()
        {
            return Err(invalid(
                "trusted_documents.manifest",
                "a manifest file is required unless mode = \"off\"",
            ));
        }
        if !(0.0..=1.0).contains(&self.retries.budget_ratio) {
            return Err(invalid("retries.budget_ratio", "must be between 0 and 1"));
        }
        if self.retries.max_retries > 10 {
            return Err(invalid("retries.max_retries", "must be at most 10"));
        }
        if self.circuit_breaker.failure_threshold == 0 {
            return Err(invalid(
                "circuit_breaker.failure_threshold",
                "must be positive",
            ));
        }
        let concurrency_ok = |n: usize| (1..=MAX_CONCURRENT_REQUESTS).contains(&n);
        if !concurrency_ok(self.subgraph_max_concurrent_requests) {
            return Err(invalid(
                "subgraph_max_concurrent_requests",
                &format!("must be between 1 and {MAX_CONCURRENT_REQUESTS}"),
            ));
        }
        for (name, sg) in &self.subgraphs {
            if sg
                .max_concurrent_requests
                .is_some_and(|n| !concurrency_ok(n))
            {
                return Err(invalid(
                    &format!("subgraphs.{name}.max_concurrent_requests"),
                    &format!("must be between 1 and {MAX_CONCURRENT_REQUESTS}"),
                ));
            }
            if sg.max_response_bytes == Some(0) {
                return Err(invalid(
                    &format!("subgraphs.{name}.max_response_bytes"),
                    "must be positive",
                ));
            }
            if let Some(url) = &sg.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(invalid(
                    &format!("subgraphs.{name}.url"),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        Ok(())
    }

    /// Whether introspection is served.
    pub fn introspection_enabled(&self) -> bool {
        self.introspection.unwrap_or(self.dev)
    }

    /// Whether the playground is served.
    pub fn playground_enabled(&self) -> bool {
        self.playground.unwrap_or(self.dev)
    }

    /// Whether `[explain]` is on (default: in dev mode).
    pub fn explain_enabled(&self) -> bool {
        self.explain.enabled.unwrap_or(self.dev)
    }

    /// Whether a request with `portico-explain: true` from `identity` is explained.
    pub fn explain_allowed(&self, identity: &portico_trust::Identity) -> bool {
        self.explain_enabled()
            && self
                .explain
                .required_scope
                .as_ref()
                .is_none_or(|scope| identity.scopes.iter().any(|s| s == scope))
    }

    /// Whether `portico-include-plan` is honoured.
    pub fn plan_extension_enabled(&self) -> bool {
        self.dev && self.include_plan
    }

    /// The timeout of subgraph `name`.
    pub fn subgraph_timeout(&self, name: &str) -> Duration {
        let ms = self
            .subgraphs
            .get(name)
            .and_then(|s| s.timeout_ms)
            .unwrap_or(self.subgraph_timeout_ms);
        Duration::from_millis(ms)
    }

    /// The most requests in flight to subgraph `name` at a time.
    pub fn subgraph_max_concurrent_requests(&self, name: &str) -> usize {
        self.subgraphs
            .get(name)
            .and_then(|s| s.max_concurrent_requests)
            .unwrap_or(self.subgraph_max_concurrent_requests)
    }

    /// The response size limit of subgraph `name`, in bytes.
    pub fn subgraph_max_response_bytes(&self, name: &str) -> usize {
        self.subgraphs
            .get(name)
            .and_then(|s| s.max_response_bytes)
            .unwrap_or(self.subgraph_max_response_bytes)
    }
}

/// Upper bound of `subgraph_max_concurrent_requests` (a typo guard, far above any sane
/// value).
const MAX_CONCURRENT_REQUESTS: usize = 100_000;

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "supergraph",
    "dev",
    "introspection",
    "playground",
    "include_plan",
    "explain",
    "playground_sign_in",
    "subgraphs",
    "subgraph_timeout_ms",
    "subgraph_max_response_bytes",
    "subgraph_max_concurrent_requests",
    "request_timeout_ms",
    "override_labels",
    "trust",
    "jwt",
    "limits",
    "csrf",
    "cache",
    "cost",
    "rate_limit",
    "authorization",
    "headers",
    "subgraph_errors",
    "cors",
    "subscriptions",
];

/// An environment value as a TOML scalar, else a string.
fn scalar(raw: &str) -> toml::Value {
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
        && !raw.contains(':')
    {
        return toml::Value::Float(f);
    }
    if raw.starts_with('[')
        && let Ok(v) = format!("v = {raw}").parse::<toml::Table>()
        && let Some(v) = v.get("v")
    {
        return v.clone();
    }
    toml::Value::String(raw.to_string())
}

fn insert_path(table: &mut toml::Table, segments: &[String], value: toml::Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut cur = table;
    for seg in parents {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else {
            return;
        };
        cur = t;
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn yaml_files_read_like_toml_with_the_same_overrides_and_checks() {
        let yaml = "listen: 127.0.0.1:5000\nlimits:\n  max_depth: 7\nsubgraphs:\n  users:\n    url: http://users:4001/graphql\nbatching:\n  enabled: true\n";
        let c = GatewayConfig::from_yaml_with_env(
            yaml,
            Path::new("gateway.yaml"),
            env(&[("PORTICO_LIMITS__MAX_ALIASES", "3")]),
        )
        .expect("valid YAML config");
        assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(c.limits.max_depth, 7);
        assert_eq!(c.limits.max_aliases, 3);
        assert!(c.batching.enabled);
        assert_eq!(
            c.subgraphs["users"].url.as_deref(),
            Some("http://users:4001/graphql")
        );
        // The same as the TOML equivalent.
        let toml = GatewayConfig::from_toml_with_env(
            "listen = \"127.0.0.1:5000\"\n[limits]\nmax_depth = 7\nmax_aliases = 3\n[subgraphs.users]\nurl = \"http://users:4001/graphql\"\n[batching]\nenabled = true\n",
            Path::new("gateway.toml"),
            std::iter::empty(),
        )
        .expect("valid TOML config");
        assert_eq!(c, toml);
        // Unknown keys, wrong types and invalid values are refused, naming the problem.
        let e = GatewayConfig::from_yaml_with_env(
            "limits:\n  max_dpth: 7\n",
            Path::new("g.yaml"),
            std::iter::empty(),
        )
        .expect_err("unknown key");
        assert!(e.to_string().contains("max_dpth"), "{e}");
        let e = GatewayConfig::from_yaml_with_env(
            "trust:\n  token_ttl_secs: 600\n",
            Path::new("g.yaml"),
            std::iter::empty(),
        )
        .expect_err("out of range");
        assert!(e.to_string().contains("trust.token_ttl_secs"), "{e}");
        // An empty file is the defaults.
        assert_eq!(
            GatewayConfig::from_yaml_with_env("", Path::new("g.yaml"), std::iter::empty())
                .expect("empty"),
            GatewayConfig::default()
        );
    }

    #[test]
    fn defaults_are_production_safe() {
        let c = GatewayConfig::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:4000");
        assert!(!c.introspection_enabled());
        assert!(!c.playground_enabled());
        assert!(!c.plan_extension_enabled());
        assert_eq!(c.limits.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(c.subgraph_timeout("any"), Duration::from_secs(30));
        assert_eq!(c.subgraph_max_response_bytes("any"), 16 * 1024 * 1024);
        assert_eq!(c.subgraph_max_concurrent_requests("any"), 128);
        assert!(c.csrf.enabled);
    }

    #[test]
    fn file_and_env_overrides_are_applied() {
        let text = r#"
            dev = true
            [subgraphs.users]
            url = "http://localhost:4001/graphql"
            timeout_ms = 500
            max_response_bytes = 1024
            max_concurrent_requests = 8
            [limits]
            max_depth = 10
        "#;
        let c = GatewayConfig::from_toml_with_env(
            text,
            Path::new("gw.toml"),
            env(&[
                ("PORTICO_LIMITS__MAX_DEPTH", "12"),
                ("PORTICO_LISTEN", "0.0.0.0:8080"),
                ("PORTICO_SUBGRAPHS__POSTS__URL", "http://posts/graphql"),
                ("PORTICO_SUBGRAPH_MAX_RESPONSE_BYTES", "4096"),
                (
                    "PORTICO_SUBGRAPH_ERRORS__ALLOW_EXTENSIONS",
                    r#"["code", "reason"]"#,
                ),
                ("PORTICO_LOG", "debug"),
                ("HOME", "/root"),
            ]),
        )
        .expect("valid");
        assert!(c.introspection_enabled());
        assert_eq!(c.limits.max_depth, 12);
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.subgraph_timeout("users"), Duration::from_millis(500));
        assert_eq!(c.subgraph_max_response_bytes("users"), 1024);
        assert_eq!(c.subgraph_max_response_bytes("posts"), 4096);
        assert_eq!(c.subgraph_max_concurrent_requests("users"), 8);
        assert_eq!(c.subgraph_max_concurrent_requests("posts"), 128);
        assert_eq!(c.subgraph_errors.allow_extensions, ["code", "reason"]);
        assert!(!c.subgraph_errors.redact_message);
        assert_eq!(
            c.subgraphs["posts"].url.as_deref(),
            Some("http://posts/graphql")
        );
    }

    #[test]
    fn the_trust_signing_key_is_loaded_from_its_pem() {
        let signer = portico_trust::TrustSigner::generate();
        let path = std::env::temp_dir().join(format!("portico-trust-{}.pem", std::process::id()));
        std::fs::write(&path, signer.to_pkcs8_pem().expect("pem")).expect("write");
        let config = TrustConfig {
            signing_key: Some(path.clone()),
            ..TrustConfig::default()
        };
        let loaded = config.load_signer().expect("loads").expect("some");
        assert_eq!(loaded.kid(), signer.kid());
        std::fs::write(&path, "nope").expect("write");
        let e = config.load_signer().expect_err("bad pem");
        assert!(e.to_string().contains("trust.signing_key"), "{e}");
        assert!(
            TrustConfig::default()
                .load_signer()
                .expect("none")
                .is_none()
        );
    }

    #[test]
    fn the_example_file_lists_the_defaults() {
        let example = include_str!("../../gateway.example.toml");
        assert_eq!(
            GatewayConfig::from_toml(example).expect("example parses"),
            GatewayConfig::default()
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = GatewayConfig::from_toml("[limits]\nmax_detph = 3\n").expect_err("unknown key");
        assert!(e.to_string().contains("max_detph"), "{e}");
        let e = GatewayConfig::from_toml("listen = 12\n").expect_err("bad type");
        assert!(e.to_string().contains("listen"), "{e}");
        let e = GatewayConfig::from_toml_with_env(
            "",
            Path::new("x"),
            env(&[("PORTICO_LIMITS__MAX_DEPTH", "deep")]),
        )
        .expect_err("bad env");
        assert!(e.to_string().contains("PORTICO_LIMITS__MAX_DEPTH"), "{e}");
        let e = GatewayConfig::from_toml("[trust]\ntoken_ttl_secs = 600\n").expect_err("ttl");
        assert!(e.to_string().contains("trust.token_ttl_secs"), "{e}");
        let e = GatewayConfig::from_toml(
            "[playground_sign_in]\nmutation = \"mutation { login { t } }\"\ntoken_path = \"login.t\"\n",
        )
        .expect_err("no variables");
        assert!(e.to_string().contains("playground_sign_in.mutation"), "{e}");
        let e = GatewayConfig::from_toml(
            "[playground_sign_in]\nmutation = \"mutation($username: String!, $password: String!) { x }\"\ntoken_path = \"login..t\"\n",
        )
        .expect_err("bad path");
        assert!(
            e.to_string().contains("playground_sign_in.token_path"),
            "{e}"
        );
        let e = GatewayConfig::from_toml("[explain]\nenabled = \"yes\"\n").expect_err("type");
        assert!(e.to_string().contains("enabled"), "{e}");
        let e = GatewayConfig::from_toml("subgraph_max_response_bytes = 0\n").expect_err("zero");
        assert!(e.to_string().contains("subgraph_max_response_bytes"), "{e}");
        let e = GatewayConfig::from_toml("[subgraphs.users]\nmax_response_bytes = 0\n")
            .expect_err("zero");
        assert!(
            e.to_string().contains("subgraphs.users.max_response_bytes"),
            "{e}"
        );
        let e =
            GatewayConfig::from_toml("subgraph_max_concurrent_requests = 0\n").expect_err("zero");
        assert!(
            e.to_string().contains("subgraph_max_concurrent_requests"),
            "{e}"
        );
        let e = GatewayConfig::from_toml("[subgraphs.users]\nmax_concurrent_requests = 0\n")
            .expect_err("zero");
        assert!(
            e.to_string()
                .contains("subgraphs.users.max_concurrent_requests"),
            "{e}"
        );
        for (toml, key) in [
            (
                "[telemetry]\nsample_ratio = 1.5\n",
                "telemetry.sample_ratio",
            ),
            (
                "[telemetry]\notlp_endpoint = \"collector:4317\"\n",
                "telemetry.otlp_endpoint",
            ),
            (
                "[telemetry]\nservice_name = \" \"\n",
                "telemetry.service_name",
            ),
        ] {
            let e = GatewayConfig::from_toml(toml).expect_err(key);
            assert!(e.to_string().contains(key), "{e}");
        }
        let ok = GatewayConfig::from_toml(
            "[telemetry]\notlp_endpoint = \"http://collector:4318\"\nsample_ratio = 0.25\n",
        )
        .expect("valid telemetry");
        assert_eq!(ok.telemetry.sample_ratio, Some(0.25));
    }
}
