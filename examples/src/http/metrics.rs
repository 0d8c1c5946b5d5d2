//! Prometheus metrics: requests by route and status with their latency, streams in
//! flight, model calls and tokens, rate-limit refusals; rendered at `GET /metrics`.
//!
//! Each router owns its recorder (not the process-global one), so tests that start
//! several servers in one process keep their figures apart.
//!
//! Every request records a count and a latency, so the handles of each series are looked
//! up in the recorder once, on first use, and kept: a later request with the same labels
//! finds them without building label strings or hashing metric keys.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::AppState;

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    handles: Arc<Handles>,
}

/// The handles of the series recorded on every request, made on first use.
#[derive(Default)]
struct Handles {
    /// By route, then method and status: the request count and latency.
    requests: RwLock<HashMap<String, Vec<RequestSeries>>>,
    /// By operation and outcome.
    model_calls: RwLock<Vec<(&'static str, &'static str, Counter)>>,
    input_tokens: OnceLock<Counter>,
    output_tokens: OnceLock<Counter>,
}

struct RequestSeries {
    method: Method,
    status: u16,
    count: Counter,
    latency: Histogram,
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
        let recorder = Arc::new(recorder);
        spawn_upkeep(&recorder, handle.clone(), UPKEEP_PERIOD);
        Self {
            recorder,
            handle,
            handles: Arc::default(),
        }
    }

    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref(), f)
    }

    /// Counts a request to `route` and records its latency.
    fn request(&self, route: &str, method: &Method, status: u16, elapsed: f64) {
        let find = |series: &HashMap<String, Vec<RequestSeries>>| {
            series.get(route).and_then(|by| {
                by.iter()
                    .find(|s| s.status == status && s.method == method)
                    .map(|s| (s.count.clone(), s.latency.clone()))
            })
        };
        let (count, latency) = cached(&self.handles.requests, find, |series| {
            let labels = [
                ("route", route.to_owned()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ];
            let (count, latency) = self.record(|| {
                (
                    metrics::counter!("bedrock_chat_http_requests_total", &labels),
                    metrics::histogram!("bedrock_chat_http_request_duration_seconds", &labels),
                )
            });
            series
                .entry(route.to_owned())
                .or_default()
                .push(RequestSeries {
                    method: method.clone(),
                    status,
                    count: count.clone(),
                    latency: latency.clone(),
                });
            (count, latency)
        });
        count.increment(1);
        latency.record(elapsed);
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
        let handles = &self.handles;
        let find = |calls: &Vec<(&'static str, &'static str, Counter)>| {
            calls
                .iter()
                .find(|(o, r, _)| *o == operation && *r == outcome)
                .map(|(_, _, counter)| counter.clone())
        };
        let calls = cached(&handles.model_calls, find, |calls| {
            let counter = self.record(|| {
                metrics::counter!("bedrock_chat_model_calls_total", "operation" => operation, "outcome" => outcome)
            });
            calls.push((operation, outcome, counter.clone()));
            counter
        });
        calls.increment(1);
        handles
            .input_tokens
            .get_or_init(|| {
                self.record(|| metrics::counter!("bedrock_chat_tokens_total", "kind" => "input"))
            })
            .increment(tokens.0);
        handles
            .output_tokens
            .get_or_init(|| {
                self.record(|| metrics::counter!("bedrock_chat_tokens_total", "kind" => "output"))
            })
            .increment(tokens.1);
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

/// Records every request that `run` answers: count and latency by route, method and
/// status; refusals by the rate limiter.
pub(crate) async fn track<F>(
    metrics: &Metrics,
    request: Request,
    run: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    let response = run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics.request(route, &method, status, elapsed);
    if status == 429 {
        let route = route.to_owned();
        metrics.record(|| {
            metrics::counter!("bedrock_chat_rate_limited_total", "route" => route).increment(1);
        });
    }
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

/// How often latency samples are folded into their histograms between scrapes.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Folds the recorder's latency samples into their histograms every `period`.
/// The recorder keeps every sample until then (a scrape does it too), so a server that is
/// never scraped would otherwise grow by each request's sample. The task ends once the
/// last [`Metrics`] holding `recorder` is dropped; with no Tokio runtime (a test building
/// metrics alone) there is no task and each render folds them.
fn spawn_upkeep(recorder: &Arc<PrometheusRecorder>, handle: PrometheusHandle, period: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let recorder = Arc::downgrade(recorder);
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if recorder.strong_count() == 0 {
                return;
            }
            handle.run_upkeep();
        }
    });
}

/// What `find` gets from `cache` under a read lock; the first time, under the write lock,
/// what `make` adds to it (looked for again first, in case another request added it).
fn cached<C, T>(
    cache: &RwLock<C>,
    find: impl Fn(&C) -> Option<T>,
    make: impl FnOnce(&mut C) -> T,
) -> T {
    if let Some(found) = find(&cache.read().unwrap_or_else(PoisonError::into_inner)) {
        return found;
    }
    let mut cache = cache.write().unwrap_or_else(PoisonError::into_inner);
    match find(&cache) {
        Some(found) => found,
        None => make(&mut cache),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_upkeep_task_ends_with_the_last_metrics() {
        let alive = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let recorder = Arc::new(PrometheusBuilder::new().build_recorder());
        let before = alive();
        spawn_upkeep(&recorder, recorder.handle(), Duration::from_millis(5));
        assert_eq!(alive(), before + 1);
        // Ticks while the recorder lives keep the task.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(alive(), before + 1);
        drop(recorder);
        for _ in 0..100 {
            if alive() == before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the upkeep task outlived its recorder");
    }
}
