//! Counters for `/metrics` (Prometheus text format): HTTP responses by status, subgraph
//! requests and failures, subgraph requests in flight and waiting for a slot, cache hits
//! and misses, planning time and failures, panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::Inner;

#[derive(Default)]
pub struct Metrics {
    responses: Mutex<BTreeMap<u16, u64>>,
    execute_panics: AtomicU64,
    request_panics: AtomicU64,
}

/// Where a caught panic happened (planning counts its own, see `plan/stage.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PanicSite {
    /// Running the plan and shaping the response.
    Execute,
    /// Anywhere else in the request pipeline (the last-resort catch).
    Request,
}

impl Metrics {
    pub fn record_response(&self, status: u16) {
        *self.responses.lock().entry(status).or_default() += 1;
    }

    pub(crate) fn record_panic(&self, site: PanicSite) {
        let counter = match site {
            PanicSite::Execute => &self.execute_panics,
            PanicSite::Request => &self.request_panics,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Upper bounds (seconds) of [`DurationHistogram`]'s buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus histogram of durations in seconds, lock-free.
#[derive(Default)]
pub(crate) struct DurationHistogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl DurationHistogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            count.max(cumulative)
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Render every metric as Prometheus text.
pub fn render(gw: &Inner) -> String {
    let mut out = String::new();
    out.push_str("# HELP portico_http_requests_total GraphQL HTTP requests by response status.\n");
    out.push_str("# TYPE portico_http_requests_total counter\n");
    for (status, n) in gw.metrics.responses.lock().iter() {
        let _ = writeln!(
            out,
            "portico_http_requests_total{{status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP portico_subgraph_requests_total Requests sent to each subgraph.\n");
    out.push_str("# TYPE portico_subgraph_requests_total counter\n");
    let endpoints = gw.subgraphs.endpoints();
    for e in &endpoints {
        let _ = writeln!(
            out,
            "portico_subgraph_requests_total{{subgraph=\"{}\"}} {}",
            e.name,
            e.requests.load(Ordering::Relaxed)
        );
    }
    out.push_str(
        "# HELP portico_subgraph_failures_total Subgraph requests that got no GraphQL response.\n",
    );
    out.push_str("# TYPE portico_subgraph_failures_total counter\n");
    for e in &endpoints {
        let _ = writeln!(
            out,
            "portico_subgraph_failures_total{{subgraph=\"{}\"}} {}",
            e.name,
            e.failures.load(Ordering::Relaxed)
        );
    }
    out.push_str(
        "# HELP portico_subgraph_requests_in_flight Requests in flight to each subgraph (at most its max_concurrent_requests).\n",
    );
    out.push_str("# TYPE portico_subgraph_requests_in_flight gauge\n");
    for e in &endpoints {
        let _ = writeln!(
            out,
            "portico_subgraph_requests_in_flight{{subgraph=\"{}\"}} {}",
            e.name,
            e.in_flight()
        );
    }
    out.push_str(
        "# HELP portico_subgraph_requests_waiting Requests waiting for a free slot to each subgraph.\n",
    );
    out.push_str("# TYPE portico_subgraph_requests_waiting gauge\n");
    for e in &endpoints {
        let _ = writeln!(
            out,
            "portico_subgraph_requests_waiting{{subgraph=\"{}\"}} {}",
            e.name,
            e.waiting()
        );
    }
    for (name, cache) in [
        ("plan", gw.plans.stats()),
        ("document", gw.documents.stats()),
    ] {
        let _ = writeln!(out, "# TYPE portico_{name}_cache_hits_total counter");
        let _ = writeln!(out, "portico_{name}_cache_hits_total {}", cache.0);
        let _ = writeln!(out, "# TYPE portico_{name}_cache_misses_total counter");
        let _ = writeln!(out, "portico_{name}_cache_misses_total {}", cache.1);
    }
    gw.plans.render_metrics(&mut out);
    out.push_str(
        "# HELP portico_panics_total Panics caught, by stage; each cost its request (for plan, \
         the requests waiting for that plan), never the process.\n",
    );
    out.push_str("# TYPE portico_panics_total counter\n");
    for (stage, n) in [
        ("plan", gw.plans.panics()),
        ("execute", gw.metrics.execute_panics.load(Ordering::Relaxed)),
        ("request", gw.metrics.request_panics.load(Ordering::Relaxed)),
    ] {
        let _ = writeln!(out, "portico_panics_total{{stage=\"{stage}\"}} {n}");
    }
    crate::cost::render_metrics(gw, &mut out);
    out
}
