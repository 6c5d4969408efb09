//! Redis buckets: one atomic Lua script per request (GCRA on the server's clock, so all
//! replicas agree), one key per client holding its `tat` with a TTL of the time until
//! its bucket is full again (an idle client costs nothing). The connection is a
//! [`RedisConn`]: lazy, every call bounded by the timeout, skipped for
//! `retry_interval` after a failure.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::redis_conn::RedisConn;

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
    conn: RedisConn,
    script: redis::Script,
    prefix: String,
}

impl RedisLimiter {
    /// Checks the URL; connects on first use.
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        retry_interval: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            conn: RedisConn::new(url, timeout, retry_interval)?,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_string(),
        })
    }

    async fn call(&self, key: &str, cost: u64, quota: Quota) -> Result<Decision, LimiterError> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}{key}", self.prefix))
            .arg(cost)
            .arg(quota.budget.max(1))
            .arg(quota.window.as_micros() as u64);
        let reply = self
            .conn
            .run(|mut connection| async move {
                invocation.invoke_async::<Vec<i64>>(&mut connection).await
            })
            .await
            .map_err(LimiterError::Unavailable)?;
        let &[allowed, remaining, reset, retry_after] = reply.as_slice() else {
            return Err(LimiterError::Unavailable(self.conn.mark_down(format!(
                "unexpected reply from the rate-limit script: {reply:?}"
            ))));
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
