//! Health checks: `GET /health` (the process answers: for load balancers and container
//! `HEALTHCHECK`s) and `GET /api/v1/health` (the store, the limiters and the model answer;
//! 503 naming what failed).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::AppState;

/// `GET /health` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// `"ok"`.
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
}

/// `GET /health`.
#[utoipa::path(get, path = "/health", tag = "operations", summary = "Liveness", responses((status = 200, description = "The process answers", body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// One dependency's check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `"ok"` or `"error"`.
    pub status: &'static str,
    /// The backend (`sqlite`, `redis`, ...).
    pub backend: String,
    /// What failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn of<E: std::fmt::Display>(backend: &str, result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Self {
                status: "ok",
                backend: backend.to_owned(),
                error: None,
            },
            Err(e) => Self {
                status: "error",
                backend: backend.to_owned(),
                error: Some(e.to_string()),
            },
        }
    }
}

/// `GET /api/v1/health` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `"healthy"` or `"unhealthy"`.
    pub status: &'static str,
    /// Each dependency.
    #[schema(value_type = std::collections::BTreeMap<String, Check>)]
    pub checks: BTreeMap<&'static str, Check>,
}

/// `GET /api/v1/health`.
#[utoipa::path(get, path = "/api/v1/health", tag = "operations", summary = "Readiness of store, limiters and model", responses((status = 200, description = "All healthy", body = Readiness), (status = 503, description = "Something failed; the checks say what", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let service = &state.service;
    let mut checks = BTreeMap::new();
    let store = service.store();
    checks.insert("store", Check::of(store.backend(), store.ping().await));
    if let Some(limiter) = service.request_limiter() {
        checks.insert(
            "rate_limiter",
            Check::of(limiter.backend(), limiter.ping().await),
        );
    }
    if let Some(budget) = service.token_budget() {
        checks.insert(
            "token_budget",
            Check::of(budget.backend(), budget.ping().await),
        );
    }
    let model = service.model();
    checks.insert("model", Check::of(model.model_id(), model.ready().await));
    let healthy = checks.values().all(|c| c.status == "ok");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if healthy { "healthy" } else { "unhealthy" },
            checks,
        }),
    )
}
