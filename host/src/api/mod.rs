//! The HTTP API (v1): axum routes over a [`Store`] and the sandbox [`Runtime`].
//!
//! [`router`] builds the app (tests serve it on a loopback socket); [`serve`] runs it until
//! a shutdown future resolves. One file per resource: [`modules`], [`jobs`], [`queues`],
//! [`schedules`], [`tenants`], [`health`] (liveness, readiness, metrics, OpenAPI);
//! [`quota`] enforces the tenants' quotas. [`error::ApiError`]
//! is the only way a handler fails, and always answers `application/problem+json`. This
//! is the only module that knows HTTP and JSON.
//!
//! Every call but `/healthz`, `/readyz` and `/openapi.json` needs
//! `Authorization: Bearer <key>`; the key's tenant scopes every module and job the call
//! can see (another tenant's job answers 404, never 403). `/metrics` needs a key with the
//! `metrics` scope: it shows the whole process, every tenant's counts.
//!
//! Nothing a client sends can hold the server without bound: a request head must arrive
//! within [`ApiConfig::header_read_timeout`] (also the idle keep-alive timeout), a body
//! within [`ApiConfig::body_timeout`], and a key holds at most
//! [`ApiConfig::max_long_polls_per_key`] long-polls at once.

mod body;
mod coalesce;
mod deps;
pub mod error;
mod extract;
mod health;
mod jobs;
mod limits;
pub(crate) mod modules;
mod queues;
mod quota;
mod schedules;
mod server;
mod settings;
mod tenants;
mod views;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio::sync::watch;
use utoipa::OpenApi;

pub use error::{ApiError, Problem};
pub use extract::Auth;
pub use server::serve;

use crate::queue::Store;
use crate::runtime::Runtime;

/// Settings of the API. Every field has a default ([`Default`]).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest job input, in bytes. Default 1 MiB.
    pub max_input_bytes: usize,
    /// Most jobs in one `POST /v1/jobs/batch`. Default 10,000.
    pub max_batch: usize,
    /// Largest batch body, in bytes. Default 64 MiB.
    pub max_batch_bytes: usize,
    /// Longest `?wait=` a long-poll may ask for. Default 60 s.
    pub max_wait: Duration,
    /// Most long-polls one key may have waiting at once; one more answers 429 with
    /// `Retry-After`. Default 32.
    pub max_long_polls_per_key: usize,
    /// A request head must arrive within this; the clock also runs while a kept-alive
    /// connection waits for its next request, so it is the idle timeout too. Default 15 s.
    pub header_read_timeout: Duration,
    /// A whole request body (a module upload, a batch) must arrive within this from the
    /// end of its head, or the call answers 408 and the connection closes. Default 60 s.
    pub body_timeout: Duration,
    /// `/metrics` reads the queue depths from the store at most this often; scrapes in
    /// between share the last reading. Default 10 s.
    pub depth_refresh: Duration,
    /// Seals module secrets (`PUT /v1/modules/{name}/config`); without one, a config with
    /// secrets is refused. Default none. The dashboard's sessions are sealed under a key
    /// derived from it; without one, under a key drawn at start (sessions then end when
    /// the server restarts, and several API nodes need the same `secret_key`).
    pub secret_key: Option<crate::secrets::SecretKey>,
    /// The quotas of a tenant that sets none of its own. Default: none (not limited).
    pub tenant_defaults: crate::queue::Quotas,
    /// How long a dashboard session lasts after sign-in. Default 12 h.
    pub session_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_input_bytes: 1 << 20,
            max_batch: 10_000,
            max_batch_bytes: 64 << 20,
            max_wait: Duration::from_secs(60),
            max_long_polls_per_key: 32,
            header_read_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            depth_refresh: Duration::from_secs(10),
            secret_key: None,
            tenant_defaults: crate::queue::Quotas::default(),
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The sandbox, used to validate uploads (compile) and for the server's maximum limits.
    pub runtime: Runtime,
    /// API settings.
    pub config: Arc<ApiConfig>,
    /// Becomes true when the server shuts down, so long-polls answer at once.
    closing: watch::Receiver<bool>,
    closing_tx: Arc<watch::Sender<bool>>,
    /// Long-polls waiting, per key.
    long_polls: Arc<limits::LongPolls>,
    /// The queue depths `/metrics` shows, read at most every `depth_refresh`.
    depth: Arc<health::DepthCache>,
    /// The tenants' quotas as this node enforces them.
    quotas: Arc<quota::QuotaState>,
    /// Seals and opens the dashboard's session cookies.
    pub(crate) sessions: Arc<crate::ui::Sessions>,
}

impl AppState {
    /// State over `store` and `runtime` with `config`.
    pub fn new(store: Arc<dyn Store>, runtime: Runtime, config: ApiConfig) -> Self {
        let (tx, rx) = watch::channel(false);
        let session_key = match &config.secret_key {
            Some(key) => key.derive("dashboard sessions"),
            None => rand::random(),
        };
        Self {
            sessions: Arc::new(crate::ui::Sessions::new(session_key, config.session_ttl)),
            store,
            runtime,
            long_polls: Arc::new(limits::LongPolls::new(config.max_long_polls_per_key)),
            depth: Arc::new(health::DepthCache::new(config.depth_refresh)),
            quotas: Arc::new(quota::QuotaState::new(config.tenant_defaults)),
            config: Arc::new(config),
            closing: rx,
            closing_tx: Arc::new(tx),
        }
    }

    /// How many long-polls are waiting for their job right now, over every key.
    pub fn long_polls_waiting(&self) -> usize {
        self.long_polls.waiting()
    }

    fn close(&self) {
        self.closing_tx.send_replace(true);
    }
}

/// The OpenAPI document of the API, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "wasmq", description = "A durable job queue whose jobs are WebAssembly."),
    paths(
        modules::put_module,
        modules::list_modules,
        modules::get_module,
        modules::delete_module,
        settings::put_policy,
        settings::put_config,
        settings::get_config,
        jobs::enqueue,
        jobs::enqueue_batch,
        jobs::get_job,
        jobs::get_log,
        jobs::cancel,
        jobs::retry,
        jobs::list_jobs,
        queues::list_queues,
        queues::pause,
        queues::resume,
        queues::put_limit,
        schedules::put_schedule,
        schedules::list_schedules,
        schedules::get_schedule,
        schedules::delete_schedule,
        tenants::own_tenant,
        tenants::get_tenant,
        tenants::put_tenant,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The application: every route, the body limits, metrics and problem+json fallbacks.
pub fn router(state: AppState) -> Router {
    let batch_limit = state.config.max_batch_bytes;
    // Base64 makes input a third larger, and JSON escapes add more: leave room, then
    // check the decoded input against the real limit.
    let job_limit = state.config.max_input_bytes * 2 + (64 << 10);
    Router::new()
        .route(
            "/v1/modules/{name}",
            put(modules::put_module)
                .get(modules::get_module)
                .delete(modules::delete_module)
                // The module handler enforces its own limit while reading.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/modules/{name}/policy", put(settings::put_policy))
        .route(
            "/v1/modules/{name}/config",
            put(settings::put_config).get(settings::get_config),
        )
        .route("/v1/modules", get(modules::list_modules))
        .route(
            "/v1/jobs",
            post(jobs::enqueue)
                .get(jobs::list_jobs)
                .layer(DefaultBodyLimit::max(job_limit)),
        )
        .route(
            "/v1/jobs/batch",
            post(jobs::enqueue_batch).layer(DefaultBodyLimit::max(batch_limit)),
        )
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/log", get(jobs::get_log))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route(
            "/v1/schedules/{name}",
            put(schedules::put_schedule)
                .get(schedules::get_schedule)
                .delete(schedules::delete_schedule),
        )
        .route("/v1/schedules", get(schedules::list_schedules))
        .route("/v1/tenant", get(tenants::own_tenant))
        .route(
            "/v1/tenants/{name}",
            put(tenants::put_tenant).get(tenants::get_tenant),
        )
        .route("/v1/queues", get(queues::list_queues))
        .route("/v1/queues/{name}/pause", post(queues::pause))
        .route("/v1/queues/{name}/resume", post(queues::resume))
        .route("/v1/queues/{name}/limit", put(queues::put_limit))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts every request and its latency by route (the matched pattern, so ids do not
/// multiply the series), and answers 408 for a body that did not arrive in time.
async fn track(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    // An error may be answered before the body is read (a bad name, a missing key, a body
    // over its limit): the rest is drained so the answer reaches the client, or the
    // connection is closed (see `body`).
    let started = Instant::now();
    let (request, rest) = body::tap(request, state.config.body_timeout);
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    // Whatever the handler made of a body cut off by its deadline, the cause is the
    // deadline; the rest of that body is not waited for.
    let close = match rest {
        Some(rest) if rest.timed_out() => {
            response = ApiError::BodyTimeout(state.config.body_timeout).into_response();
            true
        }
        Some(rest)
            if response.status().is_client_error() || response.status().is_server_error() =>
        {
            !rest.drain().await
        }
        _ => false,
    };
    if close {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let status = response.status().as_u16().to_string();
    crate::metrics::inc(
        "wasmq_http_requests_total",
        &[("method", &method), ("route", &route), ("status", &status)],
        1,
    );
    crate::metrics::observe(
        "wasmq_http_request_duration_seconds",
        &[("route", &route)],
        elapsed.as_secs_f64(),
        crate::metrics::SECONDS_BUCKETS,
    );
    response
}
