//! Logs and traces of the `portico` binary.
//!
//! Logs: text or JSON lines on stdout, filtered by `RUST_LOG`. Traces: when an OTLP
//! endpoint is configured (the gateway's `[telemetry] otlp_endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), the spans of
//! target `portico::otel` (the gateway's request, stage and fetch spans; the subgraphs'
//! request spans) are exported as OTLP/HTTP protobuf by a batch processor, and W3C trace
//! context is propagated to and from subgraphs. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn export off whatever the configuration says.

use std::fmt;

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What to export traces as, and where.
#[derive(Debug, Clone, Default)]
pub struct TraceSettings {
    /// `service.name` of the spans.
    pub service_name: String,
    /// Base URL of an OTLP/HTTP collector (spans go to `<base>/v1/traces`); `None`:
    /// the `OTEL_EXPORTER_OTLP_*` environment variables decide.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded; `None`: `OTEL_TRACES_SAMPLER` decides.
    pub sample_ratio: Option<f64>,
}

/// Holds the trace exporter; [`Telemetry::shutdown`] flushes what is buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter (off the async workers:
    /// the SDK blocks while it flushes).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = flushed {
                eprintln!("flushing traces at shutdown: {e}");
            }
        }
    }
}

/// Installs the global log subscriber and, when configured, the trace exporter. Call
/// once, inside the tokio runtime.
pub fn init(default_json: bool, traces: TraceSettings) -> Result<Telemetry> {
    // The access log (one line per request) is for services; the `dev` console keeps
    // the start-up lines readable (the demo seeding alone is some 70 requests).
    let default = if default_json {
        "info,sqlx=warn,sea_orm=warn"
    } else {
        "info,sqlx=warn,sea_orm=warn,portico::access=warn"
    };
    let logs_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = match std::env::var("PORTICO_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => default_json,
    };
    let provider = tracer_provider(&traces)?;
    subscriber(logs_filter, json, provider.as_ref())
        .try_init()
        .context("installing the log subscriber")?;
    if let Some(p) = &provider {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing::info!(
            service = traces.service_name.as_str(),
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

/// The log layer (`logs_filter`, text or JSON lines on stdout) and, with a tracer
/// provider, the trace layer for the `portico::otel` spans.
fn subscriber(
    mut logs_filter: EnvFilter,
    json: bool,
    provider: Option<&SdkTracerProvider>,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    // Trace spans are for the exporter, not for log lines (which stay as they were).
    if let Ok(off) = "portico::otel=off".parse() {
        logs_filter = logs_filter.add_directive(off);
    }
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let registry = tracing_subscriber::registry().with(logs.with_filter(logs_filter));
    // Without an exporter there is no trace layer at all: an absent (`None`) layer would
    // enable every span (`Interest::always`), and the registry would build and drop the
    // request's stage and fetch spans for nobody (about 3% of a small query's gateway
    // CPU, seen with perf).
    match provider {
        Some(p) => {
            // The request spans, and warnings and errors as events on them.
            let spans = Targets::new()
                .with_target("portico::otel", LevelFilter::TRACE)
                .with_default(LevelFilter::WARN);
            let otel = tracing_opentelemetry::layer()
                .with_tracer(p.tracer("portico"))
                .with_filter(spans);
            Box::new(registry.with(otel))
        }
        None => Box::new(registry),
    }
}

/// Off unless an endpoint is configured; the standard variables can turn it off.
fn tracer_provider(settings: &TraceSettings) -> Result<Option<SdkTracerProvider>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    let from_env = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    if settings.otlp_endpoint.is_none() && !from_env {
        return Ok(None);
    }
    let client = ExportClient {
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the OTLP HTTP client")?,
        runtime: tokio::runtime::Handle::try_current()
            .context("the trace exporter starts inside the tokio runtime")?,
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client);
    if let Some(base) = &settings.otlp_endpoint {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = exporter
        .build()
        .context("configuring the OTLP trace exporter")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource);
    if let Some(ratio) = settings.sample_ratio {
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))));
    }
    Ok(Some(builder.build()))
}

/// The exporter's HTTP client: the workspace's reqwest, run on the tokio runtime (the
/// SDK's batch processor exports from a thread of its own, outside the runtime).
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportClient")
    }
}

/// Largest collector answer read (answers are a few bytes of protobuf).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, HttpError>(answer.body(bytes::Bytes::from(body))?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_trace_spans_are_never_built_and_log_spans_are() {
        let sub = subscriber(EnvFilter::new("info"), true, None);
        tracing::subscriber::with_default(sub, || {
            let trace = tracing::info_span!(target: "portico::otel", "graphql request");
            assert!(
                trace.is_disabled(),
                "no exporter: the request span costs nothing"
            );
            let logged = tracing::info_span!(target: "portico::gateway", "something logged");
            assert!(!logged.is_disabled());
        });
    }

    #[tokio::test]
    async fn with_an_exporter_trace_spans_are_built() {
        let provider = SdkTracerProvider::builder().build();
        let sub = subscriber(EnvFilter::new("info"), true, Some(&provider));
        tracing::subscriber::with_default(sub, || {
            let trace = tracing::info_span!(target: "portico::otel", "graphql request");
            assert!(!trace.is_disabled());
        });
    }
}
