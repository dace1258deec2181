//! Traces (`[telemetry]`, docs/operations.md "Traces"): one span per ingest
//! request and one per delivery attempt, exported with the OpenTelemetry SDK
//! over OTLP/HTTP (protobuf) to a collector.
//!
//! Spans are made when their work is over, from what is known then (start
//! time, duration, status), so nothing is held across an await and a
//! gateway without `[telemetry]` pays one `Option` check. The SDK's batch
//! processor keeps at most [`QUEUE`] finished spans (more are dropped, never
//! waited for) and sends them from its own thread; the HTTP request itself
//! runs on the gateway's runtime with its own pooled client. No payloads,
//! secrets, signature headers or error texts go into spans.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};

use crate::config::OtlpConfig;

/// Finished spans waiting to be sent at most.
const QUEUE: usize = 8192;
/// One export request may take this long.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collector's answer is read up to this size.
const MAX_ANSWER: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("the HTTP client for OTLP")]
    Client(#[source] reqwest::Error),
}

/// The trace pipeline; dropped or [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// What an ingest request came to.
#[derive(Debug, Default)]
pub struct IngestSpan<'a> {
    pub status: u16,
    pub event_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub deliveries: Option<usize>,
    /// An `Idempotency-Key` repeat answered from the first request.
    pub replayed: bool,
}

/// What one delivery attempt came to.
#[derive(Debug)]
pub struct AttemptSpan<'a> {
    pub webhook_id: &'a str,
    pub webhook_name: &'a str,
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub attempt: u32,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// The attempt's class: `success`, `http_4xx`, `http_5xx`, `timeout`,
    /// `connect_error`, `plugin_error` (as in the metrics), or `filtered`.
    pub result: &'a str,
    /// What happens next: `succeeded`, `retry`, `dead`, `filtered`.
    pub outcome: &'a str,
    /// Time spent in the webhook's plugins, if it has any.
    pub plugin_time: Option<Duration>,
}

impl Telemetry {
    /// Starts the exporter (must run on the gateway's runtime).
    pub fn start(cfg: &OtlpConfig) -> Result<Self, TelemetryError> {
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(TelemetryError::Client)?;
        let headers: HashMap<String, String> = cfg
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OnRuntime {
                client,
                runtime: tokio::runtime::Handle::current(),
                last_warning: Arc::new(AtomicU64::new(0)),
            })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.traces_url.as_str())
            .with_headers(headers)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(TelemetryError::Exporter)?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE)
                    .with_scheduled_delay(cfg.export_every)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_sampler(Sampler::TraceIdRatioBased(cfg.sample_ratio))
            .with_resource(Resource::builder().with_service_name(cfg.service_name.clone()).build())
            .build();
        let tracer = provider.tracer("hookgate");
        Ok(Telemetry { provider, tracer })
    }

    /// Records `POST /api/events` that started at `started`.
    pub fn ingest(&self, started: SystemTime, s: &IngestSpan<'_>) {
        let mut attrs = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", "/api/events"),
            KeyValue::new("http.response.status_code", i64::from(s.status)),
        ];
        if let Some(id) = s.event_id {
            attrs.push(KeyValue::new("hookgate.event.id", id.to_owned()));
        }
        if let Some(t) = s.event_type {
            attrs.push(KeyValue::new("hookgate.event.type", t.to_owned()));
        }
        if let Some(n) = s.deliveries {
            attrs.push(KeyValue::new("hookgate.event.deliveries", n as i64));
        }
        if s.replayed {
            attrs.push(KeyValue::new("hookgate.idempotent_replay", true));
        }
        let mut span = self
            .tracer
            .span_builder("POST /api/events")
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(attrs)
            .start(&self.tracer);
        if s.status >= 500 {
            span.set_status(Status::error(format!("answered {}", s.status)));
        }
        span.end();
    }

    /// Records one attempt that started at `started` and took `took`.
    pub fn attempt(&self, started: SystemTime, took: Duration, s: &AttemptSpan<'_>) {
        let mut attrs = vec![
            KeyValue::new("hookgate.webhook.id", s.webhook_id.to_owned()),
            KeyValue::new("hookgate.webhook.name", s.webhook_name.to_owned()),
            KeyValue::new("hookgate.delivery.id", s.delivery_id.to_owned()),
            KeyValue::new("hookgate.event.id", s.event_id.to_owned()),
            KeyValue::new("hookgate.event.type", s.event_type.to_owned()),
            KeyValue::new("hookgate.attempt", i64::from(s.attempt)),
            KeyValue::new("hookgate.attempt.result", s.result.to_owned()),
            KeyValue::new("hookgate.delivery.outcome", s.outcome.to_owned()),
            KeyValue::new("hookgate.attempt.duration_ms", took.as_secs_f64() * 1000.0),
        ];
        if let Some(code) = s.status_code {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
        }
        if let Some(p) = s.plugin_time {
            attrs.push(KeyValue::new("hookgate.plugin.duration_ms", p.as_secs_f64() * 1000.0));
        }
        let mut span = self
            .tracer
            .span_builder("deliver")
            .with_kind(SpanKind::Client)
            .with_start_time(started)
            .with_attributes(attrs)
            .start(&self.tracer);
        if !matches!(s.result, "success" | "filtered") {
            span.set_status(Status::error(s.result.to_owned()));
        }
        span.end_with_timestamp(started + took);
    }

    /// Sends what is queued and stops (off the async threads: the SDK
    /// waits for its export thread).
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(EXPORT_TIMEOUT)).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "could not send the last traces");
        }
    }
}

/// The exporter's HTTP client: the SDK's export thread has no async
/// runtime, so each request runs on the gateway's and is awaited there.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// When a failed export was last logged (unix ms), to log at most one
    /// warning per [`WARN_EVERY`].
    last_warning: Arc<AtomicU64>,
}

/// Failed exports are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

fn warn_export_failed(last: &AtomicU64, problem: &str) {
    let now = crate::ids::now_ms();
    let before = last.load(Ordering::Relaxed);
    if now.saturating_sub(before) >= WARN_EVERY.as_millis() as u64
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            problem,
            "could not send traces to the OTLP endpoint; those spans are dropped (logged at most once a minute)"
        );
    }
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let last_warning = self.last_warning.clone();
        let task = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut answer = match client.execute(request).await {
                Ok(a) => a,
                Err(e) => {
                    // Without the URL: it may carry credentials.
                    let e = e.without_url();
                    warn_export_failed(&last_warning, &crate::report::error_chain(&e));
                    return Err(e.into());
                }
            };
            let status = answer.status();
            if !status.is_success() {
                warn_export_failed(&last_warning, &format!("the endpoint answered {status}"));
            }
            let headers = std::mem::take(answer.headers_mut());
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = answer.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            let mut response = Response::builder().status(status).body(body.freeze())?;
            *response.headers_mut() = headers;
            Ok::<_, HttpError>(response)
        });
        task.await?
    }
}
