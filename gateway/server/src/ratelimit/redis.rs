//! Redis buckets: one atomic Lua script per request (GCRA on the server's clock, so all
//! replicas agree), one key per client holding its `tat` with a TTL of the time until
//! its bucket is full again (an idle client costs nothing). The connection is a
//! `ConnectionManager` created lazily (a gateway starts without Redis), with bounded
//! connection and response timeouts; every call is bounded by the same timeout. After a
//! failure, calls fail at once for `retry_interval`, then one call tries again: a
//! gateway without Redis never waits on it per request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Limiter, LimiterError, Quota};

/// GCRA, the same arithmetic as `super::gcra`, in microseconds of the server's clock.
/// KEYS[1] = bucket; ARGV = cost, budget, window (µs).
/// Returns {allowed (0/1), remaining, reset (µs), retry_after (µs)}.
const SCRIPT: &str = r"
local cost = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
local base = math.max(tat, now)
local new_tat = base + math.floor(cost * window / budget)
local horizon = now + window
if new_tat <= horizon then
  local ttl_ms = math.max(1, math.ceil((new_tat - now) / 1000))
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
  return {1, math.floor((horizon - new_tat) * budget / window), new_tat - now, 0}
end
return {0, math.floor((horizon - base) * budget / window), base - now, new_tat - horizon}
";

/// The Redis backend (one budget shared by every gateway using the same Redis and
/// key prefix).
pub struct RedisLimiter {
    client: redis::Client,
    manager: OnceLock<Result<ConnectionManager, String>>,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    retry_interval: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` before which calls fail at once.
    down_until_ms: AtomicU64,
}

impl RedisLimiter {
    /// Checks the URL; connects on first use.
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        retry_interval: Duration,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            manager: OnceLock::new(),
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_string(),
            timeout,
            retry_interval,
            epoch: Instant::now(),
            down_until_ms: AtomicU64::new(0),
        })
    }

    fn connection(&self) -> Result<ConnectionManager, LimiterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.timeout);
        self.manager
            .get_or_init(|| {
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(LimiterError::Unavailable)
    }

    async fn call(&self, key: &str, cost: u64, quota: Quota) -> Result<Decision, LimiterError> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if now_ms < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(LimiterError::Unavailable(
                "Redis failed recently; the next attempt waits for redis_retry_interval_ms".into(),
            ));
        }
        let mut connection = self.connection()?;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}{key}", self.prefix))
            .arg(cost)
            .arg(quota.budget.max(1))
            .arg(quota.window.as_micros() as u64);
        let result = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<Vec<i64>>(&mut connection),
        )
        .await;
        let fail = |message: String| {
            let until = self.epoch.elapsed() + self.retry_interval;
            self.down_until_ms
                .store(until.as_millis() as u64, Ordering::Relaxed);
            LimiterError::Unavailable(message)
        };
        let reply = match result {
            Err(_) => {
                return Err(fail(format!(
                    "Redis did not answer within {:?}",
                    self.timeout
                )));
            }
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Ok(Ok(reply)) => reply,
        };
        let &[allowed, remaining, reset, retry_after] = reply.as_slice() else {
            return Err(fail(format!(
                "unexpected reply from the rate-limit script: {reply:?}"
            )));
        };
        let micros = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.budget,
            remaining: remaining.max(0) as u64,
            reset: micros(reset),
            retry_after: micros(retry_after),
        })
    }
}

impl Limiter for RedisLimiter {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        cost: u64,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        Box::pin(self.call(key, cost, quota))
    }
}
