//! The load generator: a fixed number of keep-alive connections on loopback, each sending
//! one request after another for a fixed time, after a warm-up that is not counted. Every
//! response is checked: HTTP 200 and a body equal to the expected JSON (byte-equal to a
//! body already checked, or parsed and compared with key order). A fast wrong answer is an
//! error, never a request per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

/// What one "request" of a run is.
#[derive(Clone)]
pub enum Workload {
    /// One POST to a gateway, checked against the expected response.
    Gateway {
        url: String,
        body: Bytes,
        expected: Arc<Checker>,
        /// `Authorization` values, one per request in turn (cycled); none: no header.
        tokens: Option<Arc<Vec<HeaderValue>>>,
    },
    /// The floor: the subgraph requests a gateway made for one client request, sent
    /// directly and in order, each checked against the recorded response bytes.
    Floor { calls: Arc<Vec<FloorCall>> },
}

/// One subgraph request of the floor.
pub struct FloorCall {
    pub url: String,
    pub body: Bytes,
    pub expected: Bytes,
}

/// Checks response bodies against one expected JSON value.
pub struct Checker {
    canonical: Bytes,
    /// Bodies already proved equal (each gateway prints JSON its own way).
    accepted: RwLock<Vec<Bytes>>,
}

impl Checker {
    pub fn new(expected: &serde_json::Value) -> Self {
        Checker {
            canonical: crate::subgraphs::canonical(expected),
            accepted: RwLock::new(Vec::new()),
        }
    }

    /// `Ok` when `body` is the expected response; `Err` says what differs.
    pub fn check(&self, body: &Bytes) -> Result<(), String> {
        if self.accepted.read().iter().any(|b| b == body) {
            return Ok(());
        }
        let parsed: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("response is not JSON ({e}): {}", preview(body)))?;
        if crate::subgraphs::canonical(&parsed) != self.canonical {
            return Err(format!("unexpected response: {}", preview(body)));
        }
        let mut accepted = self.accepted.write();
        if accepted.len() < 8 {
            accepted.push(body.clone());
        }
        Ok(())
    }
}

fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(400).collect()
}

/// Result of one measured run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadResult {
    /// Requests answered (correctly) within the window.
    pub requests: u64,
    /// Requests answered (correctly) in all, those finishing after the window included:
    /// what CPU and subgraph requests, measured until every connection is idle, are
    /// divided by.
    pub completed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// A client with `connections` keep-alive connections to loopback.
pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .http1_only()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

async fn one(client: &reqwest::Client, w: &Workload, n: usize) -> Result<(), String> {
    match w {
        Workload::Gateway {
            url,
            body,
            expected,
            tokens,
        } => {
            let mut req = client
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(t) = tokens
                && !t.is_empty()
            {
                req = req.header(AUTHORIZATION, t[n % t.len()].clone());
            }
            let resp = req.send().await.map_err(|e| format!("send: {e}"))?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
            if !status.is_success() {
                return Err(format!("HTTP {status}: {}", preview(&bytes)));
            }
            expected.check(&bytes)
        }
        Workload::Floor { calls } => {
            for c in calls.iter() {
                let resp = client
                    .post(&c.url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(c.body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
                if bytes != c.expected {
                    return Err(format!("subgraph answered {}", preview(&bytes)));
                }
            }
            Ok(())
        }
    }
}

/// Runs `w` on `connections` concurrent connections for `duration`; returns the counts
/// and latency percentiles of the requests that completed within it.
pub async fn run(
    client: &reqwest::Client,
    w: &Workload,
    connections: usize,
    duration: Duration,
) -> LoadResult {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (client, w, stop, counter) = (client.clone(), w.clone(), stop.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut first_error = None;
            let mut late = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let r = one(&client, &w, n).await;
                if stop.load(Ordering::Relaxed) {
                    // Finished after the window: no latency, no req/s, but its work counts.
                    late += u64::from(r.is_ok());
                    break;
                }
                match r {
                    Ok(()) => lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error, late)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut result = LoadResult {
        seconds,
        ..LoadResult::default()
    };
    for t in tasks {
        if let Ok((lat, errors, first, late)) = t.await {
            result.completed += lat.len() as u64 + late;
            all.extend(lat);
            result.errors += errors;
            if result.first_error.is_none() {
                result.first_error = first;
            }
        }
    }
    all.sort_unstable();
    result.requests = all.len() as u64;
    result.rps = all.len() as f64 / seconds;
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        u64::from(all[i])
    };
    result.p50_us = pct(0.50);
    result.p95_us = pct(0.95);
    result.p99_us = pct(0.99);
    result.max_us = all.last().copied().map(u64::from).unwrap_or(0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_accepts_other_formatting_and_refuses_other_data() {
        let expected = serde_json::json!({ "data": { "a": 1, "b": [true] } });
        let c = Checker::new(&expected);
        assert!(
            c.check(&Bytes::from_static(br#"{"data":{"a":1,"b":[true]}}"#))
                .is_ok()
        );
        assert!(
            c.check(&Bytes::from_static(
                b"{ \"data\": { \"a\": 1, \"b\": [ true ] } }"
            ))
            .is_ok()
        );
        // Field order is part of the answer.
        assert!(
            c.check(&Bytes::from_static(br#"{"data":{"b":[true],"a":1}}"#))
                .is_err()
        );
        assert!(
            c.check(&Bytes::from_static(br#"{"data":{"a":2,"b":[true]}}"#))
                .is_err()
        );
        assert!(
            c.check(&Bytes::from_static(
                br#"{"data":{"a":1,"b":[true]},"errors":[{"message":"x"}]}"#
            ))
            .is_err()
        );
        assert!(c.check(&Bytes::from_static(b"not json")).is_err());
    }
}
