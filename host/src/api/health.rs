//! `/healthz`, `/readyz`, `/openapi.json` (no key needed) and `/metrics` (a key with the
//! `metrics` scope).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::time::Instant;
use utoipa::OpenApi;

use super::extract::Auth;
use super::{ApiDoc, ApiError, AppState};
use crate::queue::{Scope, Store};

/// Queue depths as (queue, state, count) rows.
type Depth = Arc<Vec<(String, String, u64)>>;

/// The queue depths `/metrics` shows: counting jobs is a scan of the jobs table, so it
/// runs at most once per `refresh` however often (and however many at once) scrapers ask.
pub(super) struct DepthCache {
    refresh: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Depth)>>,
}

impl DepthCache {
    pub(super) fn new(refresh: Duration) -> Self {
        Self {
            refresh,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The last reading if it is fresh; else a new one. Concurrent callers wait on one
    /// read instead of each making their own. A failed read keeps the last reading (or
    /// none) until the next refresh, so a down store is not asked on every scrape.
    async fn get(&self, store: &dyn Store) -> Depth {
        let mut last = self.last.lock().await;
        if let Some((at, depth)) = &*last
            && at.elapsed() < self.refresh
        {
            return depth.clone();
        }
        let depth = match store.count_jobs().await {
            Ok(counts) => Arc::new(
                counts
                    .into_iter()
                    .map(|c| (c.queue, c.state.as_str().to_owned(), c.count))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "counting jobs for /metrics failed");
                last.as_ref()
                    .map(|(_, depth)| depth.clone())
                    .unwrap_or_default()
            }
        };
        *last = Some((Instant::now(), depth.clone()));
        depth
    }
}

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

/// Prometheus metrics of the whole process (every tenant): jobs enqueued/completed/failed
/// by tenant and module (and kind), queue depth by state (refreshed at most every 10 s
/// by default), attempt duration and fuel, HTTP requests and latency. Each metric keeps
/// at most 500 label sets; later ones are counted with every label `other`. Needs a key
/// with the `metrics` scope (or `admin`).
#[utoipa::path(get, path = "/metrics", tag = "health", security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "no valid key", body = super::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the key lacks the `metrics` scope", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Scope::Metrics)?;
    let depth = state.depth.get(state.store.as_ref()).await;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&depth),
    ))
}

/// The OpenAPI document.
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
}
