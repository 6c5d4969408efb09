//! Counters for `/metrics` (Prometheus text format): HTTP responses by status, subgraph
//! requests and failures, cache hits and misses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::Inner;

#[derive(Default)]
pub struct Metrics {
    responses: Mutex<BTreeMap<u16, u64>>,
}

impl Metrics {
    pub fn record_response(&self, status: u16) {
        *self.responses.lock().entry(status).or_default() += 1;
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
    for (name, cache) in [
        ("plan", gw.plans.stats()),
        ("document", gw.documents.stats()),
    ] {
        let _ = writeln!(out, "# TYPE portico_{name}_cache_hits_total counter");
        let _ = writeln!(out, "portico_{name}_cache_hits_total {}", cache.0);
        let _ = writeln!(out, "# TYPE portico_{name}_cache_misses_total counter");
        let _ = writeln!(out, "portico_{name}_cache_misses_total {}", cache.1);
    }
    crate::cost::render_metrics(gw, &mut out);
    out
}
