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

mod apq;
pub mod auth;
pub mod authz;
pub mod cache_control;
pub mod config;
mod cost;
mod defer;
pub mod error;
pub mod execute;
pub mod headers;
mod http;
mod inflight;
pub mod limits;
pub mod plan;
pub mod ratelimit;
mod redis_conn;
pub mod reload;
mod subscription;
mod telemetry;
pub mod trusted;
pub mod usage;

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
    #[error(transparent)]
    TrustedDocuments(#[from] trusted::ManifestError),
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
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) authz: authz::Authorizer,
    pub(crate) documents: DocumentCache,
    /// Automatic persisted queries: query text by SHA-256 (`[apq]`).
    pub(crate) persisted: apq::ApqStore,
    /// The trusted documents manifest (`[trusted_documents]`).
    pub(crate) trusted: Arc<trusted::TrustedDocuments>,
    /// Open subscriptions (kept across reloads).
    pub(crate) subscriptions: Arc<subscription::Registry>,
    /// Usage recording (`[usage]`), when a file or Redis is configured.
    pub(crate) usage: Option<Arc<usage::UsageRecorder>>,
    pub(crate) plans: PlanStage,
    pub(crate) override_labels: BTreeSet<String>,
    pub(crate) percent_labels: Vec<(String, f64)>,
    pub(crate) metrics: Arc<http::metrics::Metrics>,
    pub(crate) cost: cost::CostStage,
    pub(crate) rate_limiter: Arc<ratelimit::RateLimiter>,
    /// `[cors]`, applied by a middleware so that it reloads with the rest.
    pub(crate) cors: Option<tower_http::cors::CorsLayer>,
    /// Client queries in flight that identical ones join (`[deduplication] requests`;
    /// `None` when off). Not for plans that fetch from a subgraph with `respond` rules.
    pub(crate) shared_requests: Option<inflight::InFlightTable<http::SharedKey, http::Shared>>,
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

/// The gateway: config, supergraph, signer, HTTP client and caches. The supergraph can
/// be replaced while serving ([`Gateway::reload`]): requests in flight finish
/// on the one they started with, new ones get the new one.
#[derive(Clone)]
pub struct Gateway {
    live: Arc<Live>,
}

/// What survives a supergraph reload, and the current [`Inner`].
pub(crate) struct Live {
    current: parking_lot::RwLock<Arc<Inner>>,
    signer: TrustSigner,
    /// The config in force (start-up, then [`Gateway::reload`]).
    config: parking_lot::RwLock<GatewayConfig>,
    evaluator: parking_lot::RwLock<Option<Arc<dyn authz::PolicyEvaluator>>>,
    reloads_ok: std::sync::atomic::AtomicU64,
    reloads_failed: std::sync::atomic::AtomicU64,
    /// Set when shutdown starts: `/ready` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
    /// Places for client requests in flight (`[overload]`; `None`: no limit).
    admission: Option<Arc<tokio::sync::Semaphore>>,
    /// Requests refused by [`Live::admit`].
    pub(crate) shed: std::sync::atomic::AtomicU64,
}

impl Live {
    /// The gateway state requests use now.
    pub(crate) fn current(&self) -> Arc<Inner> {
        self.current.read().clone()
    }

    /// A place for one client request, held until it is answered: `Ok(None)` when
    /// there is no limit, `Err(())` when none freed up within the queue timeout (the
    /// request is refused).
    pub(crate) async fn admit(
        &self,
        queue_timeout: Duration,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ()> {
        let Some(places) = &self.admission else {
            return Ok(None);
        };
        if let Ok(permit) = places.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        match tokio::time::timeout(queue_timeout, places.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => {
                self.shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(())
            }
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn reloads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed),
        )
    }
}

/// Parts of [`Inner`] carried over a reload instead of built anew (`None`: build).
#[derive(Default)]
struct Kept {
    /// Counters: always kept.
    metrics: Option<Arc<http::metrics::Metrics>>,
    /// The buckets: always kept (the limits are reloaded in place).
    rate_limiter: Option<Arc<ratelimit::RateLimiter>>,
    /// Kept (with its counter) while the manifest it holds is replaced in place.
    trusted: Option<Arc<trusted::TrustedDocuments>>,
    /// The JWKS cache: kept unless `[jwt]` changed or the reload re-reads files.
    auth: Option<Arc<Authenticator>>,
    /// Kept unless `[usage]` changed.
    usage: Option<Option<Arc<usage::UsageRecorder>>>,
    /// Open subscriptions: always kept.
    subscriptions: Option<Arc<subscription::Registry>>,
}

/// A reload ([`Gateway::reload`]): the whole config, and a new supergraph or none.
#[derive(Debug, Clone)]
pub struct Reload<'a> {
    /// The config to serve with from now on (all of it; see [`Reloaded::needs_restart`]).
    pub config: GatewayConfig,
    /// A new supergraph SDL; `None` keeps the one in force (its parsed model is reused).
    pub supergraph: Option<&'a str>,
    /// Re-read the files the config names (JWT key or JWKS file, trusted-documents
    /// manifest, TLS files) even when their settings did not change: an explicit
    /// reload (SIGHUP). TLS files are always re-read.
    pub reread_files: bool,
}

/// What a [`Gateway::reload`] could not apply while serving.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Config keys whose value changed but takes effect only after a restart (the
    /// listeners, `[shutdown]`, `[overload]`, `[telemetry]`, the trust signing key).
    pub needs_restart: Vec<&'static str>,
}

impl Gateway {
    /// Build a gateway for a supergraph SDL.
    pub fn new(
        config: GatewayConfig,
        supergraph_sdl: &str,
        signer: TrustSigner,
    ) -> Result<Gateway, GatewayError> {
        let planner = plan::federation::FederationPlanner::parse(supergraph_sdl)?;
        let cost = cost::CostStage::new(&config.cost, planner.supergraph())?;
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
        let inner = build_inner(
            config.clone(),
            planner,
            cost,
            signer.clone(),
            Kept::default(),
        )?;
        let places = config
            .overload
            .max_in_flight_requests
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Ok(Gateway {
            live: Arc::new(Live {
                current: parking_lot::RwLock::new(Arc::new(inner)),
                signer,
                config: parking_lot::RwLock::new(config),
                evaluator: parking_lot::RwLock::new(None),
                reloads_ok: Default::default(),
                reloads_failed: Default::default(),
                draining: Default::default(),
                admission: (places > 0).then(|| Arc::new(tokio::sync::Semaphore::new(places))),
                shed: Default::default(),
            }),
        })
    }

    fn inner(&self) -> Arc<Inner> {
        self.live.current()
    }

    /// Serve `supergraph_sdl` from now on, with the config in force: see
    /// [`Gateway::reload`].
    pub fn reload_supergraph(&self, supergraph_sdl: &str) -> Result<(), GatewayError> {
        self.reload(Reload {
            config: self.config(),
            supergraph: Some(supergraph_sdl),
            reread_files: false,
        })
        .map(drop)
    }

    /// Serve with `reload.config` (and `reload.supergraph`, when given) from now on.
    ///
    /// Everything that depends on them is built before anything changes: planner, API
    /// schema, cost model (weights from `@cost`/`@listSize` and `[cost]`), plan and
    /// document caches, subgraph endpoints and HTTP clients (URLs, timeouts, limits,
    /// TLS, breakers, retries), header and error rules, authorization, CORS, request
    /// limits. Then new requests get the new state while requests in flight finish on
    /// the one they started with. Carried over: counters, the rate limiter's buckets
    /// (its limits reload in place; buckets survive unless the backend settings
    /// change), the JWKS cache (unless `[jwt]` changed or `reread_files`), the usage
    /// recorder (unless `[usage]` changed). Keys that need a restart are listed in the
    /// answer and logged. When anything fails (a supergraph that does not load, an
    /// invalid config, a `[subgraphs.<name>]` not in the supergraph, an unreadable file)
    /// nothing changes: the error says why, and it is counted and logged.
    pub fn reload(&self, reload: Reload<'_>) -> Result<Reloaded, GatewayError> {
        use std::sync::atomic::Ordering::Relaxed;
        let result = self.try_reload(reload);
        match &result {
            Ok(done) => {
                self.live.reloads_ok.fetch_add(1, Relaxed);
                tracing::info!("reloaded");
                if !done.needs_restart.is_empty() {
                    tracing::warn!(
                        keys = %done.needs_restart.join(", "),
                        "changed in the config, but applied only after a restart"
                    );
                }
            }
            Err(e) => {
                self.live.reloads_failed.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "reload failed; still serving the previous config and supergraph");
            }
        }
        result
    }

    fn try_reload(&self, reload: Reload<'_>) -> Result<Reloaded, GatewayError> {
        let Reload {
            config,
            supergraph,
            reread_files,
        } = reload;
        config.validate()?;
        let old = self.inner();
        let previous = self.live.config.read().clone();
        let planner: Arc<dyn QueryPlanner> = match supergraph {
            Some(sdl) => Arc::new(plan::federation::FederationPlanner::parse(sdl)?),
            None => old.planner.clone(),
        };
        let cost =
            cost::CostStage::new(&config.cost, planner.supergraph())?.counting_with(&old.cost);
        // The manifest is read before anything changes; it replaces the old one in place.
        let manifest = (reread_files || config.trusted_documents != previous.trusted_documents)
            .then(|| trusted_manifest(&config.trusted_documents))
            .transpose()?;
        let kept = Kept {
            metrics: Some(old.metrics.clone()),
            rate_limiter: Some(old.rate_limiter.clone()),
            trusted: Some(old.trusted.clone()),
            auth: (!reread_files && config.jwt == previous.jwt).then(|| old.auth.clone()),
            usage: (config.usage == previous.usage).then(|| old.usage.clone()),
            subscriptions: Some(old.subscriptions.clone()),
        };
        let inner = build_inner(
            config.clone(),
            planner,
            cost,
            self.live.signer.clone(),
            kept,
        )?;
        if let Some(evaluator) = self.live.evaluator.read().clone() {
            inner.authz.set_evaluator(evaluator);
        }
        // Counters continue where the old state's are (a request still in flight on the
        // old state adds to the old ones after this: a handful at most).
        let old_endpoints = old.subgraphs.endpoints();
        for endpoint in inner.subgraphs.endpoints() {
            if let Some(previous) = old_endpoints.iter().find(|e| e.name == endpoint.name) {
                endpoint.count_on_from(previous);
            }
        }
        inner.plans.count_on_from(&old.plans);
        inner.documents.count_on_from(&old.documents);
        // The last step that can fail, and it changes nothing when it does.
        inner.rate_limiter.reload(config.rate_limit.clone())?;
        if let Some(manifest) = manifest {
            inner.trusted.reload(manifest);
        }
        if config.usage != previous.usage
            && let Some(recorder) = &old.usage
            && let Err(e) = recorder.flush()
        {
            tracing::error!(error = %e, "usage not written");
        }
        // A new supergraph: open subscriptions were planned against the old one.
        if supergraph.is_some() {
            old.subscriptions
                .end_all("the gateway's supergraph changed: subscribe again");
        }
        let needs_restart = restart_only_changes(&previous, &config);
        *self.live.current.write() = Arc::new(inner);
        *self.live.config.write() = config;
        Ok(Reloaded { needs_restart })
    }

    /// Writes the recorded usage to its file and/or Redis now (`[usage]`; also done
    /// periodically).
    pub fn flush_usage(&self) -> Result<(), usage::UsageError> {
        match &self.inner().usage {
            Some(recorder) => recorder.flush(),
            None => Ok(()),
        }
    }

    /// Re-read the trusted documents manifest (`[trusted_documents] manifest`); its
    /// number of operations. Nothing changes when it does not load.
    pub fn reload_trusted_documents(&self) -> Result<usize, GatewayError> {
        let config = self.live.config.read().clone();
        let manifest = trusted_manifest(&config.trusted_documents)?;
        let n = manifest.len();
        self.inner().trusted.reload(manifest);
        Ok(n)
    }

    /// Decide `@policy` with `evaluator` instead of `[authorization.policies]`. Applies
    /// to every clone of this gateway and to requests from now on.
    pub fn with_policy_evaluator(self, evaluator: Arc<dyn authz::PolicyEvaluator>) -> Self {
        self.inner().authz.set_evaluator(evaluator.clone());
        *self.live.evaluator.write() = Some(evaluator);
        self
    }

    /// The axum router (`/graphql`, `/health`, `/ready`, `/metrics`, playground assets).
    pub fn router(&self) -> axum::Router {
        http::router(self.live.clone())
    }

    /// The admin endpoints (`/health`, `/ready`, `/metrics`), which [`serve_until`]
    /// serves on `admin_listen` when it is set (and then only there).
    pub fn admin_router(&self) -> axum::Router {
        http::admin_router(self.live.clone())
    }

    /// Requests sent to subgraph `name` since start.
    pub fn subgraph_request_count(&self, name: &str) -> u64 {
        self.inner().subgraphs.request_count(name)
    }

    /// (hits, misses) of the plan cache.
    pub fn plan_cache_stats(&self) -> (u64, u64) {
        self.inner().plans.stats()
    }

    /// The configuration in force (start-up, then [`Gateway::reload`]).
    pub fn config(&self) -> GatewayConfig {
        self.live.config.read().clone()
    }

    /// Apply `config` without restarting, with the supergraph in force: see
    /// [`Gateway::reload`].
    pub fn reload_config(&self, config: GatewayConfig) -> Result<Reloaded, GatewayError> {
        self.reload(Reload {
            config,
            supergraph: None,
            reread_files: false,
        })
    }

    /// The rate-limit configuration in force (after reloads).
    pub fn rate_limit_config(&self) -> config::RateLimitConfig {
        self.inner().rate_limiter.config()
    }
}

/// Everything a supergraph needs, built from `config` (`kept`: parts carried over a
/// reload instead of built anew).
fn build_inner(
    config: GatewayConfig,
    planner: Arc<dyn QueryPlanner>,
    cost: cost::CostStage,
    signer: TrustSigner,
    kept: Kept,
) -> Result<Inner, GatewayError> {
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
    let client = subgraph_client(max_in_flight, &config.subgraph_tls, "subgraph_tls")?;
    // TLS of subscriptions' WebSockets (`wss://`), from the same settings.
    let ws_tls = websocket_tls(&config.subgraph_tls, "subgraph_tls")?;
    let endpoints = known
        .into_iter()
        .map(|s| {
            let own = config.subgraphs.get(&s.name);
            let endpoint = Endpoint::new(
                s.name.clone(),
                own.and_then(|c| c.url.clone()).unwrap_or(s.url),
                config.subgraph_timeout(&s.name),
                config.subgraph_max_response_bytes(&s.name),
                config.subgraph_max_concurrent_requests(&s.name),
            );
            // A subgraph with TLS settings of its own gets a client of its own.
            match own.and_then(|c| c.tls.as_ref()) {
                Some(tls) => {
                    let key = format!("subgraphs.{}.tls", s.name);
                    Ok(endpoint
                        .with_client(subgraph_client(
                            config.subgraph_max_concurrent_requests(&s.name),
                            tls,
                            &key,
                        )?)
                        .with_websocket_tls(websocket_tls(tls, &key)?))
                }
                None => Ok(endpoint.with_websocket_tls(ws_tls.clone())),
            }
        })
        .collect::<Result<_, GatewayError>>()?;
    let subgraphs = Subgraphs::new(
        client.clone(),
        endpoints,
        signer,
        Duration::from_secs(config.trust.token_ttl_secs),
    );
    let subgraphs = subgraphs
        .with_header_rules(headers::HeaderRules::new(&config.headers))
        .with_error_policy(
            execute::SubgraphErrorPolicy::new(&config.subgraph_errors, config.dev)
                .with_subgraph_rules(&config.subgraphs),
        )
        .with_resilience(execute::Resilience {
            retries: config.retries.clone(),
            breaker: config.circuit_breaker.clone(),
            dedupe: config.deduplication.enabled,
        });
    let auth = match kept.auth {
        Some(auth) => auth,
        None => Arc::new(Authenticator::from_config(&config.jwt, client)?),
    };
    let trusted = match kept.trusted {
        Some(trusted) => trusted,
        None => Arc::new(trusted::TrustedDocuments::new(trusted_manifest(
            &config.trusted_documents,
        )?)),
    };
    let rate_limiter = match kept.rate_limiter {
        Some(limiter) => limiter,
        None => Arc::new(ratelimit::RateLimiter::new(config.rate_limit.clone())?),
    };
    let cors = http::cors_layer(&config.cors);
    // Last: a new recorder starts a flusher thread (which ends with the recorder).
    let usage = match kept.usage {
        Some(kept) => kept,
        None => usage_recorder(&config.usage)?,
    };
    let shared_requests = config
        .deduplication
        .requests
        .then(inflight::InFlightTable::default);
    Ok(Inner {
        shared_requests,
        implementers: planner.api_schema().implementers_map(),
        subgraphs,
        auth,
        authz: authz::Authorizer::new(
            &config.authorization,
            planner.api_schema(),
            planner.authorization_schema(),
        )?,
        documents: DocumentCache::new(config.cache.documents),
        persisted: apq::ApqStore::new(&config.apq).map_err(|message| ConfigError::Invalid {
            key: "apq.redis_url".into(),
            message,
        })?,
        trusted,
        usage,
        subscriptions: kept.subscriptions.unwrap_or_default(),
        plans: PlanStage::new(
            config.cache.plans,
            Duration::from_secs(config.cache.plan_failure_ttl_secs),
        ),
        override_labels: config.override_labels.iter().cloned().collect(),
        percent_labels: planner.percent_override_labels(),
        planner,
        metrics: kept.metrics.unwrap_or_default(),
        cost,
        rate_limiter,
        cors,
        config,
    })
}

/// The trusted-documents manifest `config` names (empty when off or unset).
fn trusted_manifest(
    config: &config::TrustedDocumentsConfig,
) -> Result<trusted::Manifest, GatewayError> {
    Ok(match (&config.manifest, config.mode) {
        (Some(path), mode) if mode != config::TrustedDocumentsMode::Off => trusted::load(path)?,
        _ => trusted::Manifest::default(),
    })
}

/// The config keys that differ between `old` and `new` but are read only at start-up.
fn restart_only_changes(old: &GatewayConfig, new: &GatewayConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(old.listen != new.listen, "listen");
    check(old.admin_listen != new.admin_listen, "admin_listen");
    check(
        old.trust.signing_key != new.trust.signing_key,
        "trust.signing_key",
    );
    check(old.telemetry != new.telemetry, "telemetry");
    check(old.shutdown != new.shutdown, "shutdown");
    check(old.overload != new.overload, "overload");
    keys
}

/// The TLS settings of WebSockets to `wss://` subgraphs (subscriptions): the public
/// roots plus `tls.ca_file`, and `tls`' client certificate when set.
fn websocket_tls(
    tls: &config::SubgraphTlsConfig,
    key: &str,
) -> Result<Arc<rustls::ClientConfig>, GatewayError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, message: String| ConfigError::Invalid {
        key: format!("{key}.{what}"),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = &tls.ca_file {
        for cert in CertificateDer::pem_file_iter(file)
            .map_err(|e| invalid("ca_file", format!("{}: {e}", file.display())))?
        {
            let cert = cert.map_err(|e| invalid("ca_file", format!("{}: {e}", file.display())))?;
            roots
                .add(cert)
                .map_err(|e| invalid("ca_file", format!("{}: {e}", file.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::HttpClient(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(private)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid("client_cert_file", format!("{}: {e}", cert.display())))?;
            let private = PrivateKeyDer::from_pem_file(private)
                .map_err(|e| invalid("client_key_file", format!("{}: {e}", private.display())))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| invalid("client_cert_file", e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The HTTP client to subgraphs: pooled, and with `tls` (CA bundle, client identity)
/// for `https://` subgraphs; `key` names the config section in errors.
fn subgraph_client(
    max_idle: usize,
    tls: &config::SubgraphTlsConfig,
    key: &str,
) -> Result<reqwest::Client, GatewayError> {
    let read = |file: &std::path::Path, what: &str| {
        std::fs::read(file).map_err(|e| ConfigError::Invalid {
            key: format!("{key}.{what}"),
            message: format!("cannot read {}: {e}", file.display()),
        })
    };
    let mut builder = reqwest::Client::builder()
        // A subgraph's redirect is never followed: the request would carry its trust
        // token and identity headers to wherever it points (and a redirect is not a
        // GraphQL answer). It is an HTTP error of that fetch.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(max_idle)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    if let Some(file) = &tls.ca_file {
        let bundle =
            reqwest::Certificate::from_pem_bundle(&read(file, "ca_file")?).map_err(|e| {
                ConfigError::Invalid {
                    key: format!("{key}.ca_file"),
                    message: format!("{} is not a PEM certificate bundle: {e}", file.display()),
                }
            })?;
        if bundle.is_empty() {
            return Err(ConfigError::Invalid {
                key: format!("{key}.ca_file"),
                message: format!("{} holds no certificate", file.display()),
            }
            .into());
        }
        for ca in bundle {
            builder = builder.add_root_certificate(ca);
        }
    }
    if let (Some(cert), Some(private)) = (&tls.client_cert_file, &tls.client_key_file) {
        let mut pem = read(cert, "client_cert_file")?;
        pem.push(b'\n');
        pem.extend(read(private, "client_key_file")?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| ConfigError::Invalid {
            key: format!("{key}.client_cert_file"),
            message: format!("not a PEM certificate and key: {e}"),
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| GatewayError::HttpClient(e.to_string()))
}

/// The recorder of `[usage]` (none unless a file or Redis is set), with its flusher
/// thread (which ends with the recorder).
fn usage_recorder(
    config: &config::UsageConfig,
) -> Result<Option<Arc<usage::UsageRecorder>>, ConfigError> {
    if config.file.is_none() && config.redis_url.is_none() {
        return Ok(None);
    }
    let redis = match &config.redis_url {
        Some(url) => Some(
            usage::RedisSink::new(
                url,
                &config.redis_key_prefix,
                Duration::from_millis(config.redis_timeout_ms.max(1)),
            )
            .map_err(|e| ConfigError::Invalid {
                key: "usage.redis_url".into(),
                message: e.to_string(),
            })?,
        ),
        None => None,
    };
    let recorder = Arc::new(usage::UsageRecorder::with_sinks(
        config.file.clone(),
        redis,
        config.max_operations,
    ));
    spawn_usage_flusher(&recorder, Duration::from_secs(config.flush_secs.max(1)));
    Ok(Some(recorder))
}

/// Writes `recorder`'s operations to its file and/or Redis every `every`, on a thread of its own
/// (file I/O, never on the request path), for as long as the recorder lives.
fn spawn_usage_flusher(recorder: &Arc<usage::UsageRecorder>, every: Duration) {
    let weak = Arc::downgrade(recorder);
    let spawned = std::thread::Builder::new()
        .name("portico-usage".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(recorder) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = recorder.flush() {
                    tracing::error!(error = %e, "usage not written (kept for the next flush when Redis failed)");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "usage recording: no flusher thread");
    }
}

/// Aborts the task when dropped (the admin listener ends with the public one).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Binds the gateway's listener (port 0: a free port, see `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, GatewayError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Serve { addr, source })
}

/// Serves on `addr` until SIGTERM or SIGINT, then shuts down as [`serve_until`] does.
pub async fn serve(gateway: Gateway, addr: SocketAddr) -> Result<(), GatewayError> {
    serve_until(gateway, bind(addr).await?, termination()).await
}

/// Resolves on the first SIGTERM (what Kubernetes and docker send) or SIGINT (ctrl-c).
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; shutting down on ctrl-c only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves on `listener` until `stop` resolves, then shuts down gracefully:
/// 1. `/ready` answers 503 at once (load balancers and Kubernetes stop sending);
/// 2. requests are still accepted for `[shutdown] drain_delay_ms` (for those that were
///    already on their way);
/// 3. the listener closes, idle connections are closed, and requests in flight finish,
///    for at most `[shutdown] grace_ms` more; whatever is still running then is cut
///    (logged) and the function returns `Ok`, so the process exits 0.
pub async fn serve_until(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tracing::info!(%addr, "gateway listening");
    let settings = gateway.live.config.read().shutdown.clone();
    // The admin endpoints on a listener of their own, until the public one is done.
    let admin_addr = gateway.live.config.read().admin_listen;
    let admin = match admin_addr {
        Some(at) => {
            let listener = bind(at).await?;
            let bound = listener.local_addr().unwrap_or(at);
            tracing::info!(addr = %bound, "admin endpoints (/health, /ready, /metrics) listening");
            let app = gateway.admin_router();
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "the admin listener stopped");
                }
            }))
        }
        None => None,
    };
    let _stop_admin = AbortOnDrop(admin);
    let drain = Duration::from_millis(settings.drain_delay_ms);
    let grace = Duration::from_millis(settings.grace_ms);
    let live = gateway.live.clone();
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signalled = stopping.clone();
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        live.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Subscriptions would hold their connections until the grace deadline.
        live.current()
            .subscriptions
            .end_all("the gateway is shutting down: subscribe again (to another replica)");
        signalled.notify_one();
        tracing::info!(
            drain_delay_ms = drain.as_millis() as u64,
            grace_ms = grace.as_millis() as u64,
            "shutting down: not ready; finishing requests in flight"
        );
        tokio::time::sleep(drain).await;
    });
    let deadline = async {
        stopping.notified().await;
        tokio::time::sleep(drain + grace).await;
    };
    tokio::select! {
        served = server => {
            served.map_err(|source| GatewayError::Serve { addr, source })?;
            tracing::info!("shut down: every request finished");
            Ok(())
        }
        () = deadline => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "shut down at the deadline: requests still in flight were cut"
            );
            Ok(())
        }
    }
}
