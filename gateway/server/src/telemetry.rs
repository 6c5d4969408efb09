//! Trace spans of a request, for OpenTelemetry.
//!
//! Every span here has the target `portico::otel`. The gateway itself exports nothing:
//! the binary (`portico`, `src/telemetry.rs`) installs the OpenTelemetry layer and the
//! W3C trace-context propagator when an OTLP endpoint is configured. Without it no
//! subscriber layer is interested in `portico::otel`, every span is disabled at its
//! call site (one cached interest check, no field evaluated) and nothing is injected.
//!
//! The spans of one request: `graphql request` (server kind, continuing a client's
//! `traceparent`) → `parse`, `validate` (document cache misses only), `authenticate`,
//! `cost`, `plan`, `execute` → one `fetch` per subgraph request (client kind, named by
//! the plan's fetch name `<Operation>__<subgraph>__<n>`), whose context travels to the
//! subgraph in `traceparent`/`tracestate`.

use http::HeaderMap;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of one client request, a child of the client's trace when its headers
/// carry one (`traceparent`); fields are recorded by [`finish_request`].
pub(crate) fn request_span(headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: "portico::otel",
        "graphql request",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        graphql.operation.name = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        portico.request_id = tracing::field::Empty,
    );
    continue_trace(&span, headers);
    span
}

/// Names the request span after its operation (`query Feed`) and records the outcome.
pub(crate) fn finish_request(
    span: &Span,
    operation_type: &str,
    operation_name: &str,
    status: u16,
    request_id: &str,
) {
    if span.is_disabled() {
        return;
    }
    let name = if operation_name.is_empty() {
        operation_type.to_string()
    } else {
        format!("{operation_type} {operation_name}")
    };
    // The span has started (the layer ignores `otel.name` recorded after that).
    opentelemetry::trace::TraceContextExt::span(&span.context()).update_name(name);
    span.record("graphql.operation.type", operation_type);
    if !operation_name.is_empty() {
        span.record("graphql.operation.name", operation_name);
    }
    span.record("http.response.status_code", status);
    span.record("portico.request_id", request_id);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Makes `span` a child of the trace context in `headers` (W3C `traceparent`), if any.
pub(crate) fn continue_trace(span: &Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // Fails only when the span is already started elsewhere (not the case here).
    let _ = span.set_parent(parent);
}

/// Adds the current span's trace context (`traceparent`, `tracestate`) to `headers`,
/// when tracing is on.
pub(crate) fn inject_current(headers: &mut HeaderMap) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(headers));
    });
}
