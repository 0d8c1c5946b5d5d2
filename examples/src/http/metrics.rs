//! Prometheus metrics: requests by route and status with their latency, streams in
//! flight, model calls and tokens, rate-limit refusals; rendered at `GET /metrics`.
//!
//! Each router owns its recorder (not the process-global one), so tests that start
//! several servers in one process keep their figures apart.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::AppState;

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
        }
    }

    fn record(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(self.recorder.as_ref(), f);
    }

    /// The Prometheus text of every metric.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Counts the model call behind a service result: its tokens when it succeeded (a
    /// replay, which called no model, is not counted), an error when the model failed.
    pub fn observe<T>(
        &self,
        operation: &'static str,
        result: &Result<T, bedrock_chat_core::ChatError>,
        called: impl FnOnce(&T) -> Option<bedrock_chat_core::Usage>,
    ) {
        match result {
            Ok(value) => {
                if let Some(usage) = called(value) {
                    self.model_call(operation, "ok", (usage.input_tokens, usage.output_tokens));
                }
            }
            Err(bedrock_chat_core::ChatError::Model(_)) => {
                self.model_call(operation, "error", (0, 0));
            }
            Err(_) => {}
        }
    }

    /// Counts a model call and its tokens.
    pub fn model_call(&self, operation: &'static str, outcome: &'static str, tokens: (u64, u64)) {
        self.record(|| {
            metrics::counter!("bedrock_chat_model_calls_total", "operation" => operation, "outcome" => outcome)
                .increment(1);
            metrics::counter!("bedrock_chat_tokens_total", "kind" => "input").increment(tokens.0);
            metrics::counter!("bedrock_chat_tokens_total", "kind" => "output").increment(tokens.1);
        });
    }

    /// Marks a stream as started; the returned guard marks it ended when dropped.
    pub fn stream_started(&self) -> StreamGuard {
        self.record(|| metrics::gauge!("bedrock_chat_streams_in_flight").increment(1.0));
        StreamGuard {
            metrics: self.clone(),
        }
    }
}

/// Held while a stream is open.
pub struct StreamGuard {
    metrics: Metrics,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.metrics
            .record(|| metrics::gauge!("bedrock_chat_streams_in_flight").decrement(1.0));
    }
}

/// Records every request: count and latency by route, method and status; refusals by
/// the rate limiter.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    let refused = response.status().as_u16() == 429;
    state.metrics.record(|| {
        let labels = [
            ("route", route.clone()),
            ("method", method.clone()),
            ("status", status.clone()),
        ];
        metrics::counter!("bedrock_chat_http_requests_total", &labels).increment(1);
        metrics::histogram!("bedrock_chat_http_request_duration_seconds", &labels).record(elapsed);
        if refused {
            metrics::counter!("bedrock_chat_rate_limited_total", "route" => route.clone())
                .increment(1);
        }
    });
    response
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn render(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
