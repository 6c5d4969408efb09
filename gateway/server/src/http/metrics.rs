//! Counters for `/metrics` (Prometheus text format): HTTP responses by status, request
//! duration histograms by operation type and status class, requests in flight, subgraph
//! requests and failures, subgraph requests in flight and waiting for a slot, cache hits
//! and misses, planning time and failures, panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::Inner;
use crate::execute::Endpoint;

#[derive(Default)]
pub struct Metrics {
    responses: Mutex<BTreeMap<u16, u64>>,
    execute_panics: AtomicU64,
    request_panics: AtomicU64,
    /// Client queries answered with a copy of an identical one's execution.
    pub(crate) shared_requests: AtomicU64,
    /// Request duration by (operation type, status class).
    durations: [[DurationHistogram; STATUS_CLASSES.len()]; OperationKind::ALL.len()],
    in_flight: AtomicU64,
    /// Requests by (client name, client version), at most [`MAX_CLIENT_SERIES`] pairs.
    clients: Mutex<BTreeMap<(String, String), u64>>,
}

/// Most (client name, version) pairs counted apart; later new pairs count as `other`,
/// so clients cannot grow `/metrics` without bound.
const MAX_CLIENT_SERIES: usize = 100;

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The operation type of a GraphQL request, as far as the gateway got (`Unknown` when it
/// was refused before an operation was selected: bad JSON, parse or validation errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperationKind {
    Query,
    Mutation,
    Subscription,
    Unknown,
}

impl OperationKind {
    const ALL: [OperationKind; 4] = [
        OperationKind::Query,
        OperationKind::Mutation,
        OperationKind::Subscription,
        OperationKind::Unknown,
    ];

    pub(crate) fn of(t: apollo_compiler::executable::OperationType) -> Self {
        use apollo_compiler::executable::OperationType;
        match t {
            OperationType::Query => OperationKind::Query,
            OperationType::Mutation => OperationKind::Mutation,
            OperationType::Subscription => OperationKind::Subscription,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
            OperationKind::Unknown => "unknown",
        }
    }
}

/// Status classes of the duration histograms (fixed label values: bounded cardinality).
const STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "other"];

fn status_class(status: u16) -> usize {
    match status {
        200..=299 => 0,
        400..=499 => 1,
        500..=599 => 2,
        _ => 3,
    }
}

/// Counts a request in flight until dropped (see [`Metrics::in_flight`]).
pub(crate) struct InFlight<'m>(&'m AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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

    /// Counts a request of client `name`/`version` (empty: the client sent none).
    pub(crate) fn record_client(&self, name: &str, version: &str) {
        let mut clients = self.clients.lock();
        let key = (name.to_string(), version.to_string());
        if let Some(n) = clients.get_mut(&key) {
            *n += 1;
        } else if clients.len() < MAX_CLIENT_SERIES {
            clients.insert(key, 1);
        } else {
            *clients
                .entry(("other".to_string(), "other".to_string()))
                .or_default() += 1;
        }
    }

    /// Counts one GraphQL request in flight for as long as the guard lives.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn record_duration(&self, kind: OperationKind, status: u16, elapsed: Duration) {
        let k = OperationKind::ALL
            .iter()
            .position(|x| *x == kind)
            .unwrap_or(OperationKind::ALL.len() - 1);
        self.durations[k][status_class(status)].observe(elapsed);
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
    /// Adds what `other` counted (a reload carries the series over).
    pub(crate) fn add_from(&self, other: &DurationHistogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add(other.sum_nanos.load(Ordering::Relaxed), Ordering::Relaxed);
        self.count
            .fetch_add(other.count.load(Ordering::Relaxed), Ordering::Relaxed);
    }

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
        self.render_series(name, "", out);
    }

    /// The series of one label set (`labels` like `a="x",b="y"`, or empty), without
    /// the HELP/TYPE header.
    pub(crate) fn render_series(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            count.max(cumulative)
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
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
    let name = "portico_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} GraphQL HTTP request duration (receipt to response), by operation \
         type (unknown: refused before an operation was selected) and status class."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (k, kind) in OperationKind::ALL.iter().enumerate() {
        for (c, class) in STATUS_CLASSES.iter().enumerate() {
            let h = &gw.metrics.durations[k][c];
            if h.count.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let labels = format!("operation_type=\"{}\",status=\"{class}\"", kind.label());
            h.render_series(name, &labels, &mut out);
        }
    }
    out.push_str(
        "# HELP portico_client_requests_total GraphQL requests by client (graphql-client-name / \
         -version headers; empty when not sent; at most 100 pairs, then \"other\").\n",
    );
    out.push_str("# TYPE portico_client_requests_total counter\n");
    for ((name, version), n) in gw.metrics.clients.lock().iter() {
        let _ = writeln!(
            out,
            "portico_client_requests_total{{client_name=\"{}\",client_version=\"{}\"}} {n}",
            label_value(name),
            label_value(version)
        );
    }
    out.push_str(
        "# HELP portico_trusted_documents_unknown_total Operations not in the trusted documents \
         manifest (served in mode log, refused in mode enforce).\n# TYPE portico_trusted_documents_unknown_total counter\n",
    );
    let _ = writeln!(
        out,
        "portico_trusted_documents_unknown_total {}",
        gw.trusted.unknown.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP portico_subscriptions_open Subscriptions open now.\n# TYPE portico_subscriptions_open gauge\nportico_subscriptions_open {}",
        gw.subscriptions.open()
    );
    let _ = writeln!(
        out,
        "# HELP portico_subscriptions_slow_consumers_total Subscriptions ended because the client did not read its events.\n# TYPE portico_subscriptions_slow_consumers_total counter\nportico_subscriptions_slow_consumers_total {}",
        gw.subscriptions.ended_slow.load(Ordering::Relaxed)
    );
    let apq = &gw.persisted.counters;
    for (name, help, value) in [
        (
            "portico_apq_redis_hits_total",
            "Persisted queries found in Redis after a miss in this process's memory.",
            &apq.redis_hits,
        ),
        (
            "portico_apq_redis_failures_total",
            "Redis calls of the APQ store that failed or timed out (a lookup was a miss).",
            &apq.redis_failures,
        ),
        (
            "portico_apq_redis_mismatches_total",
            "Texts read from Redis that did not hash to their key (ignored).",
            &apq.redis_mismatches,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    out.push_str("# HELP portico_http_requests_in_flight GraphQL HTTP requests being served.\n");
    out.push_str("# TYPE portico_http_requests_in_flight gauge\n");
    let _ = writeln!(
        out,
        "portico_http_requests_in_flight {}",
        gw.metrics.in_flight.load(Ordering::Relaxed)
    );
    let endpoints = gw.subgraphs.endpoints();
    let per_subgraph =
        |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&Endpoint) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for e in &endpoints {
                let _ = writeln!(out, "{name}{{subgraph=\"{}\"}} {}", e.name, value(e));
            }
        };
    per_subgraph(
        &mut out,
        "portico_subgraph_requests_total",
        "counter",
        "Requests sent to each subgraph.",
        &|e| e.requests.load(Ordering::Relaxed),
    );
    per_subgraph(
        &mut out,
        "portico_subgraph_failures_total",
        "counter",
        "Subgraph requests that got no GraphQL response.",
        &|e| e.failures.load(Ordering::Relaxed),
    );
    per_subgraph(
        &mut out,
        "portico_subgraph_requests_in_flight",
        "gauge",
        "Requests in flight to each subgraph (at most its max_concurrent_requests).",
        &|e| e.in_flight() as u64,
    );
    per_subgraph(
        &mut out,
        "portico_subgraph_requests_waiting",
        "gauge",
        "Requests waiting for a free slot to each subgraph.",
        &|e| e.waiting(),
    );
    let name = "portico_subgraph_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Subgraph request duration (sent to body read; a retry is its own sample)."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for e in &endpoints {
        e.latency
            .render_series(name, &format!("subgraph=\"{}\"", e.name), &mut out);
    }
    per_subgraph(
        &mut out,
        "portico_subgraph_circuit_open",
        "gauge",
        "1 while a subgraph's circuit is open (it is not called).",
        &|e| u64::from(e.circuit_open()),
    );
    per_subgraph(
        &mut out,
        "portico_subgraph_retries_total",
        "counter",
        "Retries sent to each subgraph.",
        &|e| e.retries.load(Ordering::Relaxed),
    );
    per_subgraph(
        &mut out,
        "portico_subgraph_deduplicated_total",
        "counter",
        "Subgraph queries answered by an identical query already in flight instead of a request.",
        &|e| e.deduplicated.load(Ordering::Relaxed),
    );
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
    out.push_str(
        "# HELP portico_requests_deduplicated_total Client queries answered with a copy of an \
         identical query's execution in flight ([deduplication] requests).\n",
    );
    out.push_str("# TYPE portico_requests_deduplicated_total counter\n");
    let _ = writeln!(
        out,
        "portico_requests_deduplicated_total {}",
        gw.metrics.shared_requests.load(Ordering::Relaxed)
    );
    crate::cost::render_metrics(gw, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_series_are_bounded_and_their_labels_escaped() {
        let m = Metrics::default();
        for i in 0..150 {
            m.record_client(&format!("app-{i}"), "1.0");
        }
        m.record_client("app-0", "1.0");
        let clients = m.clients.lock();
        assert_eq!(clients.len(), MAX_CLIENT_SERIES + 1);
        assert_eq!(clients[&("app-0".to_string(), "1.0".to_string())], 2);
        assert_eq!(clients[&("other".to_string(), "other".to_string())], 50);
        assert_eq!(label_value("a\"b\\c"), "a\\\"b\\\\c");
    }
}
