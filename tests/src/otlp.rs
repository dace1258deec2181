//! A small OTLP/HTTP trace endpoint (a stand-in for an OpenTelemetry
//! collector): takes `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`, keeps every span with its attributes and the
//! request's headers, answers 200 with an empty export response.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// One span as received.
#[derive(Debug, Clone)]
pub struct SpanSeen {
    pub name: String,
    /// Attribute values as strings (ints and doubles printed, bools "true"/"false").
    pub attributes: BTreeMap<String, String>,
    /// `service.name` of the resource that sent it.
    pub service: String,
    /// The status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl SpanSeen {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    /// Headers of every export request.
    headers: Vec<HeaderMap>,
}

/// The endpoint; stops when dropped.
pub struct OtlpCollector {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

async fn traces(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, b"not an ExportTraceServiceRequest".to_vec());
    };
    let mut seen = seen.lock().unwrap();
    seen.headers.push(headers);
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref().and_then(|v| v.value.as_ref()))))
                    .collect();
                seen.spans.push(SpanSeen {
                    name: span.name,
                    attributes,
                    service: service.clone(),
                    status: span.status.map_or(0, |s| s.code),
                    kind: span.kind,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                });
            }
        }
    }
    (StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
}

impl OtlpCollector {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP endpoint");
        let addr = listener.local_addr().expect("OTLP endpoint address");
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(traces))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpCollector { addr, seen, task }
    }

    /// The base URL (`[telemetry] otlp_endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<SpanSeen> {
        self.seen.lock().unwrap().spans.clone()
    }

    /// Headers of every export request so far.
    pub fn request_headers(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().headers.clone()
    }

    /// Waits until `ok` holds for the spans received, or panics after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, what: &str, ok: impl Fn(&[SpanSeen]) -> bool) -> Vec<SpanSeen> {
        crate::wait_until(timeout, what, || async {
            let spans = self.spans();
            ok(&spans).then_some(spans)
        })
        .await
    }
}
