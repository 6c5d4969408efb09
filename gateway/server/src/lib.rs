//! `portico-gateway`: the gateway runtime — HTTP, authentication, limits, planning
//! (cached) and plan execution against the subgraphs.
//!
//! Modules follow the request flow, one folder per stage: `http/` (router, the request
//! pipeline, playground, metrics), `limits/` (cheap operation limits), `auth/` (JWT →
//! identity), `plan/` (document and plan caches over a [`QueryPlanner`]), `execute/`
//! (fetches, batched entity fetches, merging, response shaping), `config/`. The
//! pipeline itself is one function: `http/graphql.rs::pipeline`.
//!
//! Invariants: only `execute::subgraph` talks to subgraphs; every subgraph request
//! carries a trust token minted for that subgraph and nothing the client sent except
//! the operation's variables; a refused request (parse, validation, limits,
//! authentication) never reaches a subgraph; planning never runs on the async workers;
//! a panic while handling a request costs that request (a 500), never the process.

pub mod auth;
pub mod authz;
pub mod config;
mod cost;
pub mod error;
pub mod execute;
pub mod headers;
mod http;
pub mod limits;
pub mod plan;
pub mod ratelimit;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apollo_compiler::Name;
use apollo_compiler::collections::HashMap;
use apollo_compiler::schema::Implementers;
use portico_trust::TrustSigner;

use auth::{AuthSetupError, Authenticator};
pub use authz::PolicyEvaluator;
use config::ConfigError;
pub use config::GatewayConfig;
pub use error::{ErrorCode, GraphQLError, GraphQLResponse};
use execute::{Endpoint, Subgraphs};
use plan::{DocumentCache, PlanStage};
pub use plan::{PlanningError, QueryPlanner, SubgraphInfo};

/// How long an idle pooled connection to a subgraph is kept: long enough that steady
/// traffic never reconnects, short enough that a burst's extra connections do not linger
/// (reqwest's default is 90 s).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid supergraph: {0}")]
    Supergraph(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("server error on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Everything built once at start-up and shared by all requests.
pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) planner: Arc<dyn QueryPlanner>,
    pub(crate) implementers: HashMap<Name, Implementers>,
    pub(crate) subgraphs: Subgraphs,
    pub(crate) auth: Authenticator,
    pub(crate) authz: authz::Authorizer,
    pub(crate) documents: DocumentCache,
    /// Automatic persisted queries: query text by SHA-256 (`[apq]`).
    pub(crate) persisted: plan::BoundedCache<plan::QueryHash, Arc<str>>,
    pub(crate) plans: PlanStage,
    pub(crate) override_labels: BTreeSet<String>,
    pub(crate) percent_labels: Vec<(String, f64)>,
    pub(crate) metrics: http::metrics::Metrics,
    pub(crate) cost: cost::CostStage,
    pub(crate) rate_limiter: ratelimit::RateLimiter,
}

impl Inner {
    /// The override labels of one request: those the config enables, plus each
    /// `percent(x)` label of the supergraph with probability x/100.
    pub(crate) fn override_labels_for_request(&self) -> BTreeSet<String> {
        let mut labels = self.override_labels.clone();
        for (label, percent) in &self.percent_labels {
            // 53 random bits → a uniform number in [0, 100).
            let draw = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64 * 100.0;
            if draw < *percent {
                labels.insert(label.clone());
            }
        }
        labels
    }
}

/// The gateway: config, supergraph, signer, HTTP client and caches, built once.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Build a gateway for a supergraph SDL.
    pub fn new(
        config: GatewayConfig,
        supergraph_sdl: &str,
        signer: TrustSigner,
    ) -> Result<Gateway, GatewayError> {
        let planner = plan::federation::FederationPlanner::parse(supergraph_sdl)?;
        let cost = cost::CostStage::new(&config.cost, Some(planner.supergraph()))?;
        Self::build(config, Arc::new(planner), cost, signer)
    }

    /// Build a gateway over any [`QueryPlanner`] (tests use hand-written plans).
    /// Without a supergraph there is no cost model: every operation costs 1 point.
    pub fn with_planner(
        config: GatewayConfig,
        planner: Arc<dyn QueryPlanner>,
        signer: TrustSigner,
    ) -> Result<Gateway, GatewayError> {
        let cost = cost::CostStage::new(&config.cost, None)?;
        Self::build(config, planner, cost, signer)
    }

    fn build(
        config: GatewayConfig,
        planner: Arc<dyn QueryPlanner>,
        cost: cost::CostStage,
        signer: TrustSigner,
    ) -> Result<Gateway, GatewayError> {
        let known = planner.subgraphs();
        for name in config.subgraphs.keys() {
            if !known.iter().any(|s| &s.name == name) {
                return Err(ConfigError::Invalid {
                    key: format!("subgraphs.{name}"),
                    message: "no subgraph of this name in the supergraph".into(),
                }
                .into());
            }
        }
        // Every connection a subgraph's slots allow may stay idle, so a busy subgraph's
        // connections are reused rather than closed and reopened (the slots already bound
        // how many exist); idle ones are closed after `POOL_IDLE_TIMEOUT`.
        let max_in_flight = known.iter().fold(0usize, |sum, s| {
            sum.saturating_add(config.subgraph_max_concurrent_requests(&s.name))
        });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(max_in_flight)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| GatewayError::HttpClient(e.to_string()))?;
        let endpoints = known
            .into_iter()
            .map(|s| {
                Endpoint::new(
                    s.name.clone(),
                    config
                        .subgraphs
                        .get(&s.name)
                        .and_then(|c| c.url.clone())
                        .unwrap_or(s.url),
                    config.subgraph_timeout(&s.name),
                    config.subgraph_max_response_bytes(&s.name),
                    config.subgraph_max_concurrent_requests(&s.name),
                )
            })
            .collect();
        let subgraphs = Subgraphs::new(
            client.clone(),
            endpoints,
            signer,
            Duration::from_secs(config.trust.token_ttl_secs),
        );
        let subgraphs = subgraphs
            .with_header_rules(headers::HeaderRules::new(&config.headers))
            .with_error_policy(execute::SubgraphErrorPolicy::new(
                &config.subgraph_errors,
                config.dev,
            ))
            .with_resilience(execute::Resilience {
                retries: config.retries.clone(),
                breaker: config.circuit_breaker.clone(),
            });
        let auth = Authenticator::from_config(&config.jwt, client)?;
        let inner = Inner {
            implementers: planner.api_schema().implementers_map(),
            subgraphs,
            auth,
            authz: authz::Authorizer::new(
                &config.authorization,
                planner.api_schema(),
                planner.authorization_schema(),
            )?,
            documents: DocumentCache::new(config.cache.documents),
            persisted: plan::BoundedCache::new(config.apq.max_entries),
            plans: PlanStage::new(
                config.cache.plans,
                Duration::from_secs(config.cache.plan_failure_ttl_secs),
            ),
            override_labels: config.override_labels.iter().cloned().collect(),
            percent_labels: planner.percent_override_labels(),
            planner,
            metrics: Default::default(),
            cost,
            rate_limiter: ratelimit::RateLimiter::new(config.rate_limit.clone())?,
            config,
        };
        Ok(Gateway {
            inner: Arc::new(inner),
        })
    }

    /// Decide `@policy` with `evaluator` instead of `[authorization.policies]`. Applies
    /// to every clone of this gateway and to requests from now on.
    pub fn with_policy_evaluator(self, evaluator: Arc<dyn authz::PolicyEvaluator>) -> Self {
        self.inner.authz.set_evaluator(evaluator);
        self
    }

    /// The axum router (`/graphql`, `/health`, `/ready`, `/metrics`, playground assets).
    pub fn router(&self) -> axum::Router {
        http::router(self.inner.clone())
    }

    /// Requests sent to subgraph `name` since start.
    pub fn subgraph_request_count(&self, name: &str) -> u64 {
        self.inner.subgraphs.request_count(name)
    }

    /// (hits, misses) of the plan cache.
    pub fn plan_cache_stats(&self) -> (u64, u64) {
        self.inner.plans.stats()
    }

    /// The configuration the gateway started with (see [`Gateway::reload_limits`]).
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Apply new limits without restarting: `[rate_limit]` entirely (budgets, tiers,
    /// window, fail_open, backend — buckets are kept unless the backend settings
    /// change) and `cost.max_cost`, `cost.expose_in_extensions`, `cost.measure_actual`.
    /// The cost model's weights and list sizes stay those of start-up. Nothing changes
    /// when the new values are invalid.
    pub fn reload_limits(&self, config: &GatewayConfig) -> Result<(), GatewayError> {
        config.validate()?;
        self.inner.rate_limiter.reload(config.rate_limit.clone())?;
        self.inner.cost.reload(&config.cost);
        Ok(())
    }

    /// The rate-limit configuration in force (after reloads).
    pub fn rate_limit_config(&self) -> config::RateLimitConfig {
        self.inner.rate_limiter.config()
    }
}

/// Serve until ctrl-c, then finish in-flight requests.
pub async fn serve(gateway: Gateway, addr: SocketAddr) -> Result<(), GatewayError> {
    let serve_err = |source| GatewayError::Serve { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(serve_err)?;
    tracing::info!(%addr, "gateway listening");
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await
        .map_err(serve_err)
}
