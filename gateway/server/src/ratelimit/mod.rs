//! Rate limiting by query cost: each client (user id when authenticated, else client
//! address) has a budget of cost points per window, enforced with GCRA.
//!
//! GCRA ("generic cell rate algorithm", a token bucket without a refill timer) keeps one
//! number per client, its theoretical arrival time `tat`. A request costing `c` points
//! moves it to `max(tat, now) + c × window / budget` and is admitted when that is at
//! most `now + window`: a client that was idle for a window may spend its whole budget
//! at once (the burst), then refills continuously at `budget / window`. A refused
//! request does not move `tat`. A client whose `tat` is in the past has a full bucket,
//! so its entry can be forgotten at any time: that is what bounds memory.
//!
//! Backends sit behind the small [`Limiter`] trait: [`MemoryLimiter`] (in-process,
//! sharded) and [`RedisLimiter`] (one atomic Lua script per request, shared by every
//! replica). [`RateLimiter`] is the runtime object compiled from
//! [`RateLimitConfig`]: client key, budget selection (anonymous, authenticated, scope
//! tiers), backend failures (fail open or closed, logged at most once per interval and
//! counted), and reloading without restart.

mod memory;
mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::RwLock;
use portico_trust::Identity;

use crate::config::{ConfigError, RateLimitBackend, RateLimitConfig};
pub use memory::MemoryLimiter;
pub use redis::RedisLimiter;

/// A budget: `budget` points per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub budget: u64,
    pub window: Duration,
}

/// The outcome of charging a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request was admitted (and its cost taken from the budget).
    pub allowed: bool,
    /// The client's budget per window (`RateLimit-Limit`).
    pub limit: u64,
    /// Points left right now (`RateLimit-Remaining`).
    pub remaining: u64,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When refused: until enough points are back for this request (`Retry-After`).
    pub retry_after: Duration,
}

/// The backend could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    #[error("rate limiter backend unavailable: {0}")]
    Unavailable(String),
}

/// Storage of the buckets: charge `cost` points to `key` under `quota`.
pub trait Limiter: Send + Sync + 'static {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        cost: u64,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>>;
}

/// GCRA in microseconds, shared by the memory backend (the Lua script is the same
/// arithmetic). Returns the decision and, when admitted, the new `tat`.
pub(crate) fn gcra(tat: u64, now: u64, cost: u64, quota: Quota) -> (Decision, Option<u64>) {
    let window = quota.window.as_micros() as u64;
    let budget = quota.budget.max(1);
    let base = tat.max(now);
    let increment = (u128::from(cost) * u128::from(window) / u128::from(budget)) as u64;
    let new_tat = base.saturating_add(increment);
    let horizon = now + window;
    let points = |until: u64| {
        (u128::from(horizon.saturating_sub(until)) * u128::from(budget) / u128::from(window)) as u64
    };
    if new_tat <= horizon {
        let decision = Decision {
            allowed: true,
            limit: budget,
            remaining: points(new_tat),
            reset: Duration::from_micros(new_tat - now),
            retry_after: Duration::ZERO,
        };
        (decision, Some(new_tat))
    } else {
        let decision = Decision {
            allowed: false,
            limit: budget,
            remaining: points(base),
            reset: Duration::from_micros(base - now),
            retry_after: Duration::from_micros(new_tat - horizon),
        };
        (decision, None)
    }
}

/// What the rate-limit stage decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rate limiting is off.
    Disabled,
    /// Admitted or refused by the budget.
    Decided(Decision),
    /// The backend failed; `fail_open` says whether the request is served anyway.
    Unavailable {
        fail_open: bool,
        error: LimiterError,
    },
}

/// Limiter decisions since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct RateLimitStats {
    pub allowed: AtomicU64,
    pub limited: AtomicU64,
    pub failed_open: AtomicU64,
    pub failed_closed: AtomicU64,
}

struct Compiled {
    config: RateLimitConfig,
    backend: Arc<dyn Limiter>,
    proxy_header: Option<HeaderName>,
}

/// The rate limiter compiled from [`RateLimitConfig`]; reloadable without restart.
pub struct RateLimiter {
    state: RwLock<Arc<Compiled>>,
    stats: RateLimitStats,
    last_failure_log_secs: AtomicU64,
}

/// Failures are logged at most once per this many seconds.
const FAILURE_LOG_INTERVAL_SECS: u64 = 10;

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        let compiled = compile(config, None)?;
        Ok(Self {
            state: RwLock::new(Arc::new(compiled)),
            stats: RateLimitStats::default(),
            last_failure_log_secs: AtomicU64::new(0),
        })
    }

    /// Replace the limits. The backend (and the buckets it holds) is kept when
    /// `backend`, `redis_url`, `key_prefix`, the Redis timeouts and
    /// `memory_max_clients` are unchanged.
    pub fn reload(&self, config: RateLimitConfig) -> Result<(), ConfigError> {
        let current = self.state.read().clone();
        let compiled = compile(config, Some(&current))?;
        *self.state.write() = Arc::new(compiled);
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> RateLimitConfig {
        self.state.read().config.clone()
    }

    pub fn stats(&self) -> &RateLimitStats {
        &self.stats
    }

    /// Charge `cost` points to the client of this request.
    /// Who a request counts as: `user:<id>` when authenticated, else `addr:<client
    /// address>` (the same key as the budgets').
    pub(crate) fn client_key(
        &self,
        identity: &Identity,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> String {
        match &identity.user_id {
            Some(id) => format!("user:{id}"),
            None => {
                let state = self.state.read();
                format!(
                    "addr:{}",
                    client_address(state.proxy_header.as_ref(), headers, peer)
                )
            }
        }
    }

    pub async fn check(
        &self,
        identity: &Identity,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        cost: u64,
    ) -> Outcome {
        let state = self.state.read().clone();
        if !state.config.enabled {
            return Outcome::Disabled;
        }
        let config = &state.config;
        let (key, budget) = match &identity.user_id {
            Some(id) => {
                let tier = config
                    .tiers
                    .iter()
                    .filter(|t| identity.scopes.iter().any(|s| s == &t.scope))
                    .map(|t| t.budget)
                    .max();
                (
                    format!("user:{id}"),
                    tier.unwrap_or(config.authenticated_budget),
                )
            }
            None => {
                let address = client_address(state.proxy_header.as_ref(), headers, peer);
                (format!("addr:{address}"), config.anonymous_budget)
            }
        };
        let quota = Quota {
            budget,
            window: Duration::from_secs(config.window_secs),
        };
        match state.backend.acquire(&key, cost, quota).await {
            Ok(decision) => {
                let counter = if decision.allowed {
                    &self.stats.allowed
                } else {
                    &self.stats.limited
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Outcome::Decided(decision)
            }
            Err(error) => {
                let counter = if config.fail_open {
                    &self.stats.failed_open
                } else {
                    &self.stats.failed_closed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.log_failure(&error, config.fail_open);
                Outcome::Unavailable {
                    fail_open: config.fail_open,
                    error,
                }
            }
        }
    }

    fn log_failure(&self, error: &LimiterError, fail_open: bool) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_failure_log_secs.load(Ordering::Relaxed);
        if now >= last + FAILURE_LOG_INTERVAL_SECS
            && self
                .last_failure_log_secs
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let failures = self.stats.failed_open.load(Ordering::Relaxed)
                + self.stats.failed_closed.load(Ordering::Relaxed);
            if fail_open {
                tracing::warn!(%error, failures, "rate limiter unavailable: serving requests without limits (fail_open)");
            } else {
                tracing::error!(%error, failures, "rate limiter unavailable: refusing requests (fail_open = false)");
            }
        }
    }
}

fn compile(config: RateLimitConfig, previous: Option<&Compiled>) -> Result<Compiled, ConfigError> {
    config.validate()?;
    let same_backend = |p: &RateLimitConfig| {
        p.backend == config.backend
            && p.redis_url == config.redis_url
            && p.key_prefix == config.key_prefix
            && p.redis_timeout_ms == config.redis_timeout_ms
            && p.redis_retry_interval_ms == config.redis_retry_interval_ms
            && p.memory_max_clients == config.memory_max_clients
    };
    let backend: Arc<dyn Limiter> = match previous {
        Some(p) if same_backend(&p.config) => p.backend.clone(),
        _ => match config.backend {
            RateLimitBackend::Memory => Arc::new(MemoryLimiter::new(config.memory_max_clients)),
            RateLimitBackend::Redis => Arc::new(
                RedisLimiter::new(
                    config.redis_url.as_deref().unwrap_or_default(),
                    &config.key_prefix,
                    Duration::from_millis(config.redis_timeout_ms),
                    Duration::from_millis(config.redis_retry_interval_ms),
                )
                .map_err(|message| ConfigError::Invalid {
                    key: "rate_limit.redis_url".into(),
                    message,
                })?,
            ),
        },
    };
    let proxy_header = config
        .trusted_proxy_header
        .as_deref()
        .map(|h| HeaderName::from_bytes(h.as_bytes()))
        .transpose()
        .map_err(|e| ConfigError::Invalid {
            key: "rate_limit.trusted_proxy_header".into(),
            message: e.to_string(),
        })?;
    Ok(Compiled {
        config,
        backend,
        proxy_header,
    })
}

/// The client address: the last entry of the trusted proxy header (the address the
/// proxy saw; earlier entries are the client's own claims), else the TCP peer. An IPv6
/// address stands for its /64 (`2001:db8:1:2::/64`): one host usually holds a whole /64
/// and could otherwise take a fresh budget per address.
fn client_address(
    proxy_header: Option<&HeaderName>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> String {
    if let Some(name) = proxy_header
        && let Some(last) = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
    {
        return match last.parse::<IpAddr>() {
            Ok(ip) => address_key(ip),
            Err(_) => last.to_string(),
        };
    }
    peer.map_or_else(|| "unknown".to_string(), address_key)
}

/// `ip` as a budget key: IPv4 as is, IPv6 as its /64 (an IPv4-mapped IPv6 address as
/// the IPv4 address).
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds, rounded up) and,
/// when refused, `Retry-After` (seconds, rounded up).
pub fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    let secs = |d: Duration| d.as_micros().div_ceil(1_000_000).to_string();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("ratelimit-limit", decision.limit.to_string());
    set("ratelimit-remaining", decision.remaining.to_string());
    set("ratelimit-reset", secs(decision.reset));
    if !decision.allowed {
        set("retry-after", secs(decision.retry_after).max("1".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Quota = Quota {
        budget: 100,
        window: Duration::from_secs(60),
    };

    #[test]
    fn gcra_admits_the_whole_budget_as_a_burst_then_refills_continuously() {
        let mut tat = 0;
        let now = 1_000_000;
        for i in 0..10 {
            let (d, next) = gcra(tat, now, 10, MINUTE);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 100 - 10 * (i + 1));
            tat = next.expect("admitted");
        }
        let (d, next) = gcra(tat, now, 1, MINUTE);
        assert!(!d.allowed && next.is_none());
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset, Duration::from_secs(60));
        assert_eq!(d.retry_after, Duration::from_millis(600));
        // 6 seconds later, 10 points are back.
        let later = now + 6_000_000;
        let (d, _) = gcra(tat, later, 10, MINUTE);
        assert!(d.allowed);
        let (d, _) = gcra(tat, later, 11, MINUTE);
        assert!(!d.allowed);
    }

    #[test]
    fn a_request_costing_more_than_the_budget_is_never_admitted() {
        let (d, _) = gcra(0, 5, 101, MINUTE);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 100);
    }

    #[test]
    fn the_client_address_is_the_last_entry_of_the_trusted_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 10.0.0.7"),
        );
        let name = HeaderName::from_static("x-forwarded-for");
        let peer = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(client_address(Some(&name), &headers, peer), "10.0.0.7");
        assert_eq!(client_address(None, &headers, peer), "127.0.0.1");
        assert_eq!(
            client_address(Some(&name), &HeaderMap::new(), peer),
            "127.0.0.1"
        );
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        let peer = |s: &str| s.parse::<IpAddr>().ok();
        let a = client_address(None, &HeaderMap::new(), peer("2001:db8:1:2:aaaa::1"));
        let b = client_address(None, &HeaderMap::new(), peer("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        let other = client_address(None, &HeaderMap::new(), peer("2001:db8:1:3::1"));
        assert_ne!(a, other);
        assert_eq!(
            client_address(None, &HeaderMap::new(), peer("::ffff:192.0.2.7")),
            "192.0.2.7"
        );
        // From the trusted proxy header too.
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("2001:db8:9:9::42"),
        );
        let name = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            client_address(Some(&name), &headers, None),
            "2001:db8:9:9::/64"
        );
    }
}
