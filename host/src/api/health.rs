//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`: no key needed.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa::OpenApi;

use super::{ApiDoc, ApiError, AppState};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "the store answers", body = String),
        (status = 503, description = "the store is unavailable", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok("ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// Prometheus metrics: jobs enqueued/completed/failed by module (and kind), queue depth by
/// state, attempt duration and fuel, HTTP requests and latency.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Queue depth is read from the store; without it the rest is still worth serving.
    let depth = match state.store.count_jobs().await {
        Ok(counts) => counts
            .into_iter()
            .map(|c| (c.queue, c.state.as_str().to_owned(), c.count))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "counting jobs for /metrics failed");
            Vec::new()
        }
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&depth),
    )
}

/// The OpenAPI document.
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
}
