//! One Redis connection with bounded waits, for the gateway's Redis users (the rate
//! limiter, the APQ store, the usage recorder). The `ConnectionManager` is created
//! lazily (a gateway starts without Redis), with bounded connection and response
//! timeouts, and every call is bounded by the same timeout. After a failure, calls fail
//! at once for `retry_interval`, then one call tries again: a gateway without Redis
//! never waits on it per request.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub(crate) struct RedisConn {
    client: redis::Client,
    manager: OnceLock<Result<ConnectionManager, String>>,
    timeout: Duration,
    retry_interval: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` before which calls fail at once.
    down_until_ms: AtomicU64,
}

impl RedisConn {
    /// Checks the URL; connects on first use.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        retry_interval: Duration,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            manager: OnceLock::new(),
            timeout,
            retry_interval,
            epoch: Instant::now(),
            down_until_ms: AtomicU64::new(0),
        })
    }

    fn connection(&self) -> Result<ConnectionManager, String> {
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
    }

    /// Calls fail at once for `retry_interval` from now (also for a reply the caller
    /// found malformed). Returns `message`.
    pub(crate) fn mark_down(&self, message: String) -> String {
        let until = self.epoch.elapsed() + self.retry_interval;
        self.down_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        message
    }

    /// Runs `call` on the connection within the timeout. The error is a message fit
    /// for logs (no keys, no values).
    pub(crate) async fn run<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if now_ms < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(
                "Redis failed recently; the next attempt waits for the retry interval".into(),
            );
        }
        let connection = self.connection()?;
        match tokio::time::timeout(self.timeout, call(connection)).await {
            Err(_) => {
                Err(self.mark_down(format!("Redis did not answer within {:?}", self.timeout)))
            }
            Ok(Err(e)) => Err(self.mark_down(e.to_string())),
            Ok(Ok(reply)) => Ok(reply),
        }
    }
}
