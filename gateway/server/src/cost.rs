//! Cost and rate-limit stage: prices the operation with the supergraph's cost model
//! (built once at start-up from `[cost]`), refuses it above `cost.max_cost` before any
//! subgraph is called (`COST_ESTIMATED_TOO_EXPENSIVE`, 400, the estimate in
//! `extensions.cost`), then charges the estimate (at least 1 point) to the client's
//! budget (`RATE_LIMITED`, 429). After execution it prices the response actually
//! returned, for `extensions.cost` and the estimated-vs-actual metrics.
//!
//! A gateway built over a planner without a supergraph (`Gateway::with_planner`) has no
//! cost model: every operation is estimated at 1 point (request counting).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::validation::Valid;
use http::HeaderMap;
use parking_lot::Mutex;
use portico_federation::cost::{CostError, CostModel, actual_cost};
use portico_federation::supergraph::Supergraph;
use portico_trust::Identity;
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::config::{ConfigError, CostConfig};
use crate::error::{ErrorCode, GraphQLError, GraphQLResponse, RequestFailure};
use crate::ratelimit::{Decision, Outcome};

/// The reloadable part of `[cost]`.
#[derive(Debug, Clone, Copy)]
struct CostLimits {
    max_cost: f64,
    expose_in_extensions: bool,
    measure_actual: bool,
}

impl From<&CostConfig> for CostLimits {
    fn from(c: &CostConfig) -> Self {
        Self {
            max_cost: c.max_cost,
            expose_in_extensions: c.expose_in_extensions,
            measure_actual: c.measure_actual,
        }
    }
}

/// The cost model and limits, built with the rest of the state (a reload builds a new one).
pub(crate) struct CostStage {
    model: Option<CostModel>,
    limits: CostLimits,
    counters: Arc<Counters>,
}

/// What the cost stage counts (carried over reloads).
#[derive(Default)]
struct Counters {
    estimated: Histogram,
    actual: Histogram,
    refused: std::sync::atomic::AtomicU64,
}

/// The estimate of an admitted operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted {
    pub(crate) estimated: f64,
}

impl CostStage {
    pub(crate) fn new(
        config: &CostConfig,
        supergraph: Option<&Supergraph>,
    ) -> Result<Self, ConfigError> {
        let model = supergraph
            .map(|s| CostModel::new(s, &config.model))
            .transpose()
            .map_err(|e| match e {
                CostError::Settings { key, message } => ConfigError::Invalid {
                    key: format!("cost.{key}"),
                    message,
                },
                other => ConfigError::Invalid {
                    key: "cost".into(),
                    message: other.to_string(),
                },
            })?;
        Ok(Self {
            model,
            limits: config.into(),
            counters: Arc::default(),
        })
    }

    /// This stage, counting on where `previous` counted (a reload keeps the counters).
    pub(crate) fn counting_with(mut self, previous: &CostStage) -> Self {
        self.counters = previous.counters.clone();
        self
    }

    fn estimate(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
    ) -> Result<f64, RequestFailure> {
        let Some(model) = &self.model else {
            return Ok(1.0);
        };
        model
            .estimate_total(document, operation_name, variables)
            .map_err(|e| {
                let code = match &e {
                    CostError::SlicingArguments { .. } => ErrorCode::GraphqlValidationFailed,
                    CostError::Operation(_) => ErrorCode::GraphqlUnknownOperationName,
                    _ => ErrorCode::InternalServerError,
                };
                RequestFailure::new(code, e.to_string())
            })
    }

    /// After execution: `extensions.cost` and the estimated/actual metrics. Returns the
    /// actual cost when it was measured (always with `want_actual`).
    pub(crate) fn finish(
        &self,
        admitted: Admitted,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
        response: &mut GraphQLResponse,
        want_actual: bool,
    ) -> Option<f64> {
        let limits = self.limits;
        let actual = match (&self.model, &response.data) {
            (Some(model), Some(data))
                if want_actual || limits.measure_actual || limits.expose_in_extensions =>
            {
                actual_cost(model, document, operation_name, variables, data).ok()
            }
            _ => None,
        };
        if let Some(actual) = actual {
            self.counters.actual.observe(actual);
        }
        if limits.expose_in_extensions {
            response.extensions.insert(
                "cost".into(),
                json!({ "estimated": admitted.estimated, "actual": actual, "max": limits.max_cost }),
            );
        }
        actual
    }

    /// The explain panel's cost: the estimate with its per-field breakdown (priced
    /// again, only for explained requests), the actual cost and the limit.
    pub(crate) fn explain(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
        admitted: Admitted,
        actual: Option<f64>,
    ) -> Value {
        let estimate = self
            .model
            .as_ref()
            .and_then(|model| model.estimate(document, operation_name, variables).ok());
        let (breakdown, truncated) = match estimate {
            Some(e) => (
                serde_json::to_value(&e.breakdown).unwrap_or(Value::Null),
                e.breakdown_truncated,
            ),
            None => (Value::Array(Vec::new()), false),
        };
        json!({
            "estimated": admitted.estimated,
            "actual": actual,
            "max": self.limits.max_cost,
            "breakdown": breakdown,
            "breakdownTruncated": truncated,
        })
    }
}

/// The stage: estimate, refuse above `max_cost`, charge the client's budget. `quota`
/// receives the limiter's decision (for the `RateLimit-*` headers), also when refused.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, the pipeline's locals"
)]
pub(crate) async fn admit(
    gw: &Inner,
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
    identity: &Identity,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    quota: &mut Option<Decision>,
) -> Result<Admitted, RequestFailure> {
    let stage = &gw.cost;
    let estimated = stage.estimate(document, operation_name, variables)?;
    stage.counters.estimated.observe(estimated);
    let max_cost = stage.limits.max_cost;
    if estimated > max_cost {
        stage
            .counters
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The operator's side: which setting refused it (no identity, no document).
        tracing::info!(
            operation = operation_name.unwrap_or(""),
            estimated,
            max_cost,
            "operation refused: estimated cost above `[cost] max_cost`; raise that key in \
             the gateway config, or give the schema @listSize/@cost hints if the estimate \
             is too high"
        );
        let error = GraphQLError::new(
            ErrorCode::CostEstimatedTooExpensive,
            format!(
                "the operation's estimated cost {estimated} exceeds the maximum of {max_cost} \
                 (the gateway's `[cost] max_cost` setting)"
            ),
        )
        .with_extension("cost", json!({ "estimated": estimated, "max": max_cost }));
        return Err(error.into());
    }
    let points = (estimated.ceil() as u64).max(1);
    match gw.rate_limiter.check(identity, peer, headers, points).await {
        Outcome::Disabled
        | Outcome::Unavailable {
            fail_open: true, ..
        } => {}
        Outcome::Decided(decision) => {
            *quota = Some(decision);
            if !decision.allowed {
                let retry = decision.retry_after.as_micros().div_ceil(1_000_000).max(1);
                let message = if points > decision.limit {
                    format!(
                        "the operation costs {points} points, more than the whole budget of {} per window",
                        decision.limit
                    )
                } else {
                    format!(
                        "rate limit exceeded: the operation costs {points} points, {} remain; retry in {retry}s",
                        decision.remaining
                    )
                };
                let error = GraphQLError::new(ErrorCode::RateLimited, message).with_extension(
                    "rateLimit",
                    json!({
                        "cost": points,
                        "limit": decision.limit,
                        "remaining": decision.remaining,
                        "retryAfterSeconds": retry,
                    }),
                );
                return Err(error.into());
            }
        }
        Outcome::Unavailable {
            fail_open: false,
            error,
        } => {
            return Err(RequestFailure::new(
                ErrorCode::RateLimiterUnavailable,
                format!("{error}; requests are refused until it is back"),
            ));
        }
    }
    Ok(Admitted { estimated })
}

/// A Prometheus histogram of costs.
struct Histogram {
    inner: Mutex<(Vec<u64>, f64, u64)>,
}

const BUCKETS: [f64; 10] = [
    1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0, 100000.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Self {
            inner: Mutex::new((vec![0; BUCKETS.len()], 0.0, 0)),
        }
    }
}

impl Histogram {
    fn observe(&self, value: f64) {
        let mut h = self.inner.lock();
        if let Some(i) = BUCKETS.iter().position(|b| value <= *b) {
            h.0[i] += 1;
        }
        h.1 += value;
        h.2 += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let h = self.inner.lock();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&h.0) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.2);
        let _ = writeln!(out, "{name}_sum {}", h.1);
        let _ = writeln!(out, "{name}_count {}", h.2);
    }
}

/// Cost and rate-limit metrics for `/metrics`.
pub(crate) fn render_metrics(gw: &Inner, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    gw.cost.counters.estimated.render(
        "portico_cost_estimated",
        "Estimated cost of each priced operation.",
        out,
    );
    gw.cost.counters.actual.render(
        "portico_cost_actual",
        "Cost of each response with the list sizes actually returned (compare with portico_cost_estimated to tune assumedSize).",
        out,
    );
    let _ = writeln!(
        out,
        "# HELP portico_cost_refused_total Operations refused above cost.max_cost."
    );
    let _ = writeln!(out, "# TYPE portico_cost_refused_total counter");
    let _ = writeln!(
        out,
        "portico_cost_refused_total {}",
        gw.cost.counters.refused.load(Relaxed)
    );
    let stats = gw.rate_limiter.stats();
    let _ = writeln!(
        out,
        "# HELP portico_rate_limit_decisions_total Rate-limit decisions: allowed, limited, failed_open and failed_closed (backend unavailable)."
    );
    let _ = writeln!(out, "# TYPE portico_rate_limit_decisions_total counter");
    for (decision, n) in [
        ("allowed", &stats.allowed),
        ("limited", &stats.limited),
        ("failed_open", &stats.failed_open),
        ("failed_closed", &stats.failed_closed),
    ] {
        let _ = writeln!(
            out,
            "portico_rate_limit_decisions_total{{decision=\"{decision}\"}} {}",
            n.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{GatewayConfig, RateLimitBackend};

    #[test]
    fn cost_and_rate_limit_sections_parse_and_errors_name_the_key() {
        let c = GatewayConfig::from_toml(
            r#"
            [cost]
            max_cost = 800
            expose_in_extensions = true
            default_list_size = 20
            [cost.fields."User.posts"]
            slicing_arguments = ["first"]
            sized_fields = ["edges", "nodes"]
            assumed_size = 10
            [rate_limit]
            backend = "redis"
            redis_url = "redis://127.0.0.1:6379"
            trusted_proxy_header = "x-forwarded-for"
            tiers = [{ scope = "premium", budget = 100000 }]
            "#,
        )
        .expect("valid");
        assert_eq!(c.cost.max_cost, 800.0);
        assert_eq!(c.cost.model.default_list_size, 20);
        assert_eq!(
            c.cost.model.fields["User.posts"].sized_fields,
            ["edges", "nodes"]
        );
        assert_eq!(c.rate_limit.backend, RateLimitBackend::Redis);
        assert_eq!(c.rate_limit.tiers[0].budget, 100_000);
        let defaults = GatewayConfig::default();
        assert_eq!(defaults.cost.max_cost, 5000.0);
        assert_eq!(defaults.rate_limit.authenticated_budget, 20_000);
        assert_eq!(defaults.rate_limit.anonymous_budget, 5_000);
        assert!(defaults.rate_limit.enabled && defaults.rate_limit.fail_open);

        for (text, key) in [
            ("[cost]\nmax_cots = 3\n", "max_cots"),
            ("[cost.fields.\"User.posts\"]\nsize = 3\n", "size"),
            ("[cost]\nmax_cost = 0\n", "cost.max_cost"),
            ("[rate_limit]\nwindow_secs = 0\n", "rate_limit.window_secs"),
            (
                "[rate_limit]\nbackend = \"redis\"\n",
                "rate_limit.redis_url",
            ),
            ("[rate_limit]\nbackend = \"disk\"\n", "disk"),
            (
                "[rate_limit]\ntiers = [{ scope = \"x\", budget = 0 }]\n",
                "rate_limit.tiers[0].budget",
            ),
            (
                "[rate_limit]\ntrusted_proxy_header = \"bad header\"\n",
                "rate_limit.trusted_proxy_header",
            ),
        ] {
            let e = GatewayConfig::from_toml(text).expect_err(text);
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }
}
