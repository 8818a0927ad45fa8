//! `/v1/jobs`: enqueue (one or a batch), get (with long-poll), log, cancel, list.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::coalesce::{check_key, coalesce_of};
use super::deps::dependencies_of;
use super::extract::{Auth, Json, Path, Query};
use super::modules::{LimitParams, check_limits, check_name};
use super::views::{JobPage, JobView};
use super::{ApiError, AppState};
use crate::queue::{
    self, Job, JobFilter, JobState, Module, NewJob, Scope, StoreEvent, keys::is_slug,
};

/// The earliest and latest `run_at` accepted: every store orders and stores these exactly
/// (four-digit years, as RFC 3339 writes them); an earlier time just runs now, and chrono
/// would otherwise take year −262143.
fn run_at_bounds() -> (DateTime<Utc>, DateTime<Utc>) {
    // 253,402,300,799 s after the epoch is 9999-12-31T23:59:59Z.
    let last = DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    (DateTime::UNIX_EPOCH, last)
}

/// How often a long-poll re-reads the job even without an event (a missed notification
/// costs at most this).
const RECHECK: Duration = Duration::from_secs(5);

/// A job to enqueue.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The module name to run (its latest version is pinned now).
    pub module: String,
    /// The input as any JSON value, sent to the guest as the JSON text it was given (not
    /// re-encoded: key order, spacing and number spelling are kept).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Box<serde_json::value::RawValue>>,
    /// The input as base64 bytes, instead of `input`.
    #[serde(default)]
    pub input_base64: Option<String>,
    /// The queue [default].
    #[serde(default)]
    pub queue: Option<String>,
    /// Higher runs first [0].
    #[serde(default)]
    pub priority: Option<i16>,
    /// When to run (RFC 3339, 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z), instead of
    /// `delay_ms`.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Run this many milliseconds from now, instead of `run_at`.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Attempts in total [3], 1–100.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Limit overrides: fuel, timeout_ms, memory_bytes, output_bytes, log_bytes (any
    /// other name is refused, so a typo cannot pass unnoticed).
    #[serde(default)]
    pub limits: Option<LimitParams>,
    /// A key unique among this tenant's stored jobs: enqueueing it again returns the
    /// existing job (200 instead of 202).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Debounce (1–255 bytes): while a job of this key has not started, enqueueing the
    /// key again updates that job (latest input, priority and fields win; 200,
    /// `coalesced: true`) instead of adding one. Needs `coalesce_ms`; not with
    /// `idempotency_key`, `run_at` or `delay_ms`.
    #[serde(default)]
    pub coalesce_key: Option<String>,
    /// With `coalesce_key`: the job runs this many milliseconds after the key's latest
    /// enqueue (1 to 86,400,000).
    #[serde(default)]
    pub coalesce_ms: Option<u64>,
    /// With `coalesce_key`: but at most this many milliseconds after the enqueue that
    /// made the job (from `coalesce_ms` to 604,800,000), so a steady stream still runs.
    #[serde(default)]
    pub coalesce_max_ms: Option<u64>,
    /// Ids of stored jobs of this tenant that this one waits for: it is `waiting` until
    /// all have completed, and cancelled (`dependency_failed`) if one fails or is
    /// cancelled. An unknown id is refused (422).
    #[serde(default)]
    pub depends_on: Option<Vec<i64>>,
    /// In a batch: indexes of earlier jobs of the same batch this one waits for, as
    /// `depends_on`.
    #[serde(default)]
    pub depends_on_index: Option<Vec<usize>>,
}

/// A batch of jobs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10,000 jobs, enqueued in one transaction (all or none).
    pub jobs: Vec<EnqueueRequest>,
}

/// One job of a batch answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// The job id.
    pub id: i64,
    /// Its state.
    pub state: String,
    /// True if its idempotency key returned an existing job.
    pub duplicate: bool,
    /// True if it coalesced into a waiting job of its `coalesce_key` (that job's id);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coalesced: bool,
}

/// The answer to `POST /v1/jobs`: the job, and with a `coalesce_key` whether the enqueue
/// coalesced into a waiting job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnqueueResponse {
    /// The job.
    #[serde(flatten)]
    pub job: JobView,
    /// Only with a `coalesce_key`: true if a waiting job of the key took this enqueue
    /// (200), false if it made the job (202).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesced: Option<bool>,
}

/// The answer to a batch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// In request order.
    pub jobs: Vec<BatchItem>,
}

/// Turns one request into a [`NewJob`], merging the module's default limits.
pub(super) fn new_job(
    state: &AppState,
    tenant: &str,
    module: &Module,
    req: EnqueueRequest,
    batch: bool,
) -> Result<NewJob, ApiError> {
    let coalesce = coalesce_of(&req)?;
    let depends_on = dependencies_of(&req, batch)?;
    let input = match (req.input, req.input_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "give `input` or `input_base64`, not both".into(),
            ));
        }
        (Some(value), None) => value.get().as_bytes().to_vec(),
        (None, Some(b64)) => BASE64.decode(b64.as_bytes()).map_err(|e| {
            ApiError::InvalidRequest(format!("`input_base64` is not valid base64: {e}"))
        })?,
        (None, None) => b"null".to_vec(),
    };
    if input.len() > state.config.max_input_bytes {
        return Err(ApiError::InputTooLarge(state.config.max_input_bytes));
    }
    let queue = req.queue.unwrap_or_else(|| queue::DEFAULT_QUEUE.to_owned());
    if !is_slug(&queue) {
        return Err(ApiError::InvalidRequest(format!(
            "queue `{queue}` must be 1–63 of a-z, 0-9, `_` and `-`"
        )));
    }
    let max_attempts = req.max_attempts.unwrap_or(queue::DEFAULT_MAX_ATTEMPTS);
    if !(1..=100).contains(&max_attempts) {
        return Err(ApiError::InvalidRequest(
            "`max_attempts` must be between 1 and 100".into(),
        ));
    }
    let run_at = match (req.run_at, req.delay_ms) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "give `run_at` or `delay_ms`, not both".into(),
            ));
        }
        (Some(at), None) => {
            let (first, last) = run_at_bounds();
            if !(first..=last).contains(&at) {
                return Err(ApiError::InvalidRequest(format!(
                    "`run_at` must be between {} and {} (RFC 3339, e.g. 2030-01-01T00:00:00Z)",
                    first.to_rfc3339(),
                    last.to_rfc3339()
                )));
            }
            Some(at)
        }
        (None, Some(ms)) => {
            let too_far = || {
                ApiError::InvalidRequest(format!(
                    "`delay_ms` {ms} is too far in the future: the job must run by {}",
                    run_at_bounds().1.to_rfc3339()
                ))
            };
            let delay = i64::try_from(ms)
                .ok()
                .and_then(chrono::Duration::try_milliseconds)
                .ok_or_else(too_far)?;
            let at = Utc::now().checked_add_signed(delay).ok_or_else(too_far)?;
            if at > run_at_bounds().1 {
                return Err(too_far());
            }
            Some(at)
        }
        (None, None) => None,
    };
    if let Some(key) = &req.idempotency_key {
        check_key("idempotency_key", key)?;
    }
    let own = queue::Limits::from(req.limits.unwrap_or_default());
    // The module's language is not known here: the highest maximum, and the worker keeps
    // an attempt within its language's (`Runtime::max_limits_for`).
    check_limits(&own, &state.runtime.max_limits_any())?;
    let defaults = &module.limits;
    let limits = own.over(defaults);
    check_limits(&limits, &state.runtime.max_limits_any())?;
    Ok(NewJob {
        tenant: tenant.to_owned(),
        module: module.name.clone(),
        digest: Some(module.digest.clone()),
        queue,
        priority: req.priority.unwrap_or(0),
        input,
        run_at,
        max_attempts,
        limits,
        idempotency_key: req.idempotency_key,
        may_run_ahead: true,
        coalesce,
        depends_on,
    })
}

/// Validates `reqs` and pins each module's latest version (each module read once).
async fn prepare(
    state: &AppState,
    tenant: &str,
    reqs: Vec<EnqueueRequest>,
) -> Result<Vec<NewJob>, ApiError> {
    // Each module once: its latest version, and whether it has an allow-list.
    let mut modules: HashMap<String, (Module, bool)> = HashMap::new();
    let mut jobs = Vec::with_capacity(reqs.len());
    let batch = reqs.len() > 1;
    for (i, req) in reqs.into_iter().enumerate() {
        // In a batch, say which job was refused.
        let which = |e: ApiError| match e {
            ApiError::InvalidRequest(m) if batch => {
                ApiError::InvalidRequest(format!("jobs[{i}]: {m}"))
            }
            other => other,
        };
        check_name(&req.module).map_err(which)?;
        if !modules.contains_key(&req.module) {
            let (module, settings) = tokio::try_join!(
                state.store.get_module(tenant, &req.module),
                state.store.module_settings(tenant, &req.module),
            )?;
            let module = module.ok_or_else(|| ApiError::ModuleNotFound(req.module.clone()))?;
            let networked = !settings.allowed_hosts.is_empty();
            modules.insert(req.module.clone(), (module, networked));
        }
        let (module, networked) = &modules[&req.module];
        let mut job = new_job(state, tenant, module, req, batch).map_err(which)?;
        // A job that may reach the network is stored before it runs (no hand-off).
        job.may_run_ahead = !*networked;
        jobs.push(job);
    }
    Ok(jobs)
}

/// Counts new jobs (not those an enqueue found or coalesced into) per module: one
/// metrics update per module, not per job.
fn count_enqueued(enqueued: &[queue::Enqueued]) {
    let mut per_module: HashMap<(&str, &str), u64> = HashMap::new();
    for e in enqueued.iter().filter(|e| !e.duplicate && !e.coalesced) {
        *per_module
            .entry((e.job.tenant.as_str(), e.job.module.as_str()))
            .or_default() += 1;
    }
    for ((tenant, module), n) in per_module {
        let labels = [("tenant", tenant), ("module", module)];
        crate::metrics::inc("wasmq_jobs_enqueued_total", &labels, n);
    }
}

/// Enqueues `jobs` of `tenant` within its quotas (rate, unfinished jobs): all of them, or
/// none and a problem naming the quota.
async fn store_jobs(
    state: &AppState,
    tenant: &str,
    jobs: Vec<NewJob>,
) -> Result<Vec<queue::Enqueued>, ApiError> {
    let admission = state.quotas.admit(&*state.store, tenant, &jobs).await?;
    let enqueued = state.store.enqueue(jobs).await?;
    admission.stored(&enqueued);
    count_enqueued(&enqueued);
    Ok(enqueued)
}

/// The JSON body of a write call, read only once the key is known to hold `scope`: a key
/// without it gets its 403 before the server reads (up to 64 MiB of) a body it refuses.
pub(super) async fn body_if_allowed<T: serde::de::DeserializeOwned>(
    state: &AppState,
    auth: &Auth,
    scope: Scope,
    request: Request,
) -> Result<T, ApiError> {
    auth.require(scope)?;
    let Json(body) = Json::<T>::from_request(request, state).await?;
    Ok(body)
}

/// Enqueue a job. 202 with the new job; 200 with the existing one if the idempotency key
/// was already used, or with the waiting job of the `coalesce_key` that took this input.
/// With `?wait=10s` (a key with `jobs:read` too), answers once the job has finished (200, with its result) or when the time is up (202, the job as it stands):
/// a durable job, awaited in one call.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    params(WaitParams),
    request_body = EnqueueRequest,
    responses(
        (status = 202, description = "enqueued (with `wait`: not finished in time)", body = EnqueueResponse),
        (status = 200, description = "the idempotency key was used before: the existing job; a waiting job of the `coalesce_key` took the enqueue (`coalesced: true`); with `wait`: finished", body = EnqueueResponse),
        (status = 404, description = "unknown module", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "input too large", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid request", body = super::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the tenant's `enqueue_rate` (with `Retry-After`) or `max_unfinished_jobs` (`quota-exceeded`)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn enqueue(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<WaitParams>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let wait = wait_param(&state, &params)?;
    if params.wait.is_some() {
        // The answer then carries the result.
        auth.require(Scope::JobsRead)?;
    }
    let req: EnqueueRequest = body_if_allowed(&state, &auth, Scope::JobsWrite, request).await?;
    let coalescing = req.coalesce_key.is_some();
    let jobs = prepare(&state, auth.tenant(), vec![req]).await?;
    // Subscribed before the enqueue, so even a finish during the call is seen.
    let events = params.wait.is_some().then(|| state.store.subscribe());
    let enqueued = store_jobs(&state, auth.tenant(), jobs).await?;
    let first = enqueued.into_iter().next().ok_or(ApiError::Internal)?;
    let (status, job) = match events {
        Some(events) => {
            let job = wait_for(&state, &auth, first.job.id, wait, events).await?;
            let done = job.state.is_finished();
            (
                if done {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                },
                job,
            )
        }
        None if first.duplicate || first.coalesced => (StatusCode::OK, first.job),
        None => (StatusCode::ACCEPTED, first.job),
    };
    let answer = EnqueueResponse {
        job: JobView::new(job, true),
        coalesced: coalescing.then_some(first.coalesced),
    };
    Ok((status, axum::Json(answer)))
}

/// Enqueue up to 10,000 jobs in one transaction: all or none.
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs",
    request_body = BatchRequest,
    responses(
        (status = 202, description = "enqueued", body = BatchResponse),
        (status = 404, description = "a job names an unknown module", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "too many jobs (also more than the tenant's `enqueue_burst`), or an input too large", body = super::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the tenant's `enqueue_rate` (with `Retry-After`) or `max_unfinished_jobs`: no job of the batch is stored", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn enqueue_batch(
    State(state): State<AppState>,
    auth: Auth,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let req: BatchRequest = body_if_allowed(&state, &auth, Scope::JobsWrite, request).await?;
    if req.jobs.len() > state.config.max_batch {
        return Err(ApiError::BatchTooLarge(state.config.max_batch));
    }
    if req.jobs.is_empty() {
        return Err(ApiError::InvalidRequest("the batch has no jobs".into()));
    }
    let jobs = prepare(&state, auth.tenant(), req.jobs).await?;
    let enqueued = store_jobs(&state, auth.tenant(), jobs).await?;
    let jobs = enqueued
        .into_iter()
        .map(|e| BatchItem {
            id: e.job.id,
            state: e.job.state.as_str().to_owned(),
            duplicate: e.duplicate,
            coalesced: e.coalesced,
        })
        .collect();
    Ok((StatusCode::ACCEPTED, axum::Json(BatchResponse { jobs })))
}

/// The `?wait=` of `GET /v1/jobs/{id}` and `POST /v1/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Long-poll: answer when the job is finished or after this long (`30s`, `500ms`; a
    /// unit is required; at most 60 s). A key may have 32 polls waiting at once; one more
    /// answers 429 with `Retry-After`.
    pub wait: Option<String>,
}

async fn load(state: &AppState, tenant: &str, id: i64) -> Result<Job, ApiError> {
    state
        .store
        .get(tenant, id)
        .await?
        .ok_or(ApiError::JobNotFound(id))
}

/// The job. With `?wait=30s`, answers when it is finished or the time is up, whichever
/// comes first; no database connection is held while waiting.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "job id"), WaitParams),
    responses(
        (status = 200, body = JobView),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`wait` is not a duration", body = super::Problem, content_type = "application/problem+json"),
        (status = 429, description = "the key has the most long-polls waiting", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(params): Query<WaitParams>,
) -> Result<axum::Json<JobView>, ApiError> {
    auth.require(Scope::JobsRead)?;
    let wait = wait_param(&state, &params)?;
    // Subscribe before the first read so a finish between the read and the wait is seen.
    let events = state.store.subscribe();
    let job = wait_for(&state, &auth, id, wait, events).await?;
    Ok(axum::Json(JobView::new(job, true)))
}

/// `?wait=`, at most the server's longest.
fn wait_param(state: &AppState, params: &WaitParams) -> Result<Duration, ApiError> {
    Ok(match params.wait.as_deref() {
        None => Duration::ZERO,
        Some(w) => crate::units::parse_duration(w)
            .map_err(|e| ApiError::InvalidRequest(format!("`wait`: {e}")))?
            .min(state.config.max_wait),
    })
}

/// Job `id` once it is finished or `wait` has passed; `events` was subscribed before the
/// caller last changed or read the job, so no finish is missed. No database connection
/// is held while waiting, and a key holds a few waits at most.
async fn wait_for(
    state: &AppState,
    auth: &Auth,
    id: i64,
    wait: Duration,
    mut events: tokio::sync::broadcast::Receiver<StoreEvent>,
) -> Result<Job, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut closing = state.closing.clone();
    // Held while this poll waits (not for a job already finished): a key has a few.
    let mut waiting = None;
    loop {
        // Only the state until the answer is due; the whole job once, for the answer.
        let due = tokio::time::Instant::now() >= deadline || *closing.borrow();
        let finished = due
            || (state.store.job_state(auth.tenant(), id).await?)
                .ok_or(ApiError::JobNotFound(id))?
                .is_finished();
        if finished {
            return load(state, auth.tenant(), id).await;
        }
        if waiting.is_none() {
            waiting = Some(state.long_polls.acquire(&auth.0.key_id)?);
        }
        let recheck = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + RECHECK));
        tokio::pin!(recheck);
        // Wait for something that may concern this job; then read it again.
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(StoreEvent::JobsFinished { ids }) if ids.contains(&id) => break,
                    Ok(StoreEvent::Reconnected) | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => continue,
                    Err(RecvError::Closed) => {
                        (&mut recheck).await;
                        break;
                    }
                },
                _ = &mut recheck => break,
                _ = closing.changed() => break,
            }
        }
    }
}

/// The job's log (the last finished attempt's), as text. Header `wasmq-log-dropped` says
/// how many bytes past the log cap were dropped.
#[utoipa::path(get, path = "/v1/jobs/{id}/log", tag = "jobs",
    params(("id" = i64, Path, description = "job id")),
    responses(
        (status = 200, body = String, content_type = "text/plain"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_log(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    auth.require(Scope::JobsRead)?;
    let job = load(&state, auth.tenant(), id).await?;
    let mut response = (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        job.log,
    )
        .into_response();
    response
        .headers_mut()
        .insert("wasmq-log-dropped", HeaderValue::from(job.log_dropped));
    Ok(response)
}

/// Cancel: a waiting job is cancelled at once; a running one is interrupted within a
/// second (`cancel_requested` until its worker reports); a finished one is left as is.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "job id")),
    responses(
        (status = 200, description = "the job after the call", body = JobView),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobView>, ApiError> {
    auth.require(Scope::JobsWrite)?;
    let job = state
        .store
        .cancel(auth.tenant(), id)
        .await?
        .ok_or(ApiError::JobNotFound(id))?;
    Ok(axum::Json(JobView::new(job, true)))
}

/// Run a failed or cancelled job again: `available` at once with a fresh attempt count,
/// its history kept. 409 from any other state.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = i64, Path, description = "job id")),
    responses(
        (status = 200, description = "the job, available again", body = JobView),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the job is not failed or cancelled", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobView>, ApiError> {
    auth.require(Scope::JobsWrite)?;
    if let Some(job) = state.store.retry(auth.tenant(), id).await? {
        return Ok(axum::Json(JobView::new(job, true)));
    }
    match state.store.job_state(auth.tenant(), id).await? {
        Some(now) => Err(ApiError::NotRetryable(id, now)),
        None => Err(ApiError::JobNotFound(id)),
    }
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs of this module.
    pub module: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs made by this schedule's ticks.
    pub schedule: Option<String>,
    /// Only the child jobs of this job (those its completed attempt enqueued).
    pub parent: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's jobs, newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(ListParams),
    responses((status = 200, body = JobPage)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<JobPage>, ApiError> {
    auth.require(Scope::JobsRead)?;
    let job_state = params
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()?;
    let cursor = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::InvalidRequest("`cursor` is not a cursor from a previous page".into())
            })
        })
        .transpose()?;
    let parent = params
        .parent
        .as_deref()
        .map(|p| {
            p.parse::<i64>()
                .map_err(|_| ApiError::InvalidRequest("`parent` must be a job id".into()))
        })
        .transpose()?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidRequest("`limit` must be 1–1000".into()));
    }
    let page = state
        .store
        .list_summaries(
            auth.tenant(),
            &JobFilter {
                state: job_state,
                module: params.module,
                queue: params.queue,
                schedule: params.schedule,
                parent,
                limit,
                cursor,
            },
        )
        .await?;
    Ok(axum::Json(JobPage {
        jobs: page.jobs.into_iter().map(JobView::listed).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
