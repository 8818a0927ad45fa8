//! `/v1/queues`: the key's tenant's queues, pausing and resuming them, and their limits of
//! running jobs.
//!
//! Queue names are one namespace across tenants; a pause or a limit is the caller's
//! tenant's only: another tenant's jobs in a queue of the same name run on.

use axum::extract::{Request, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Auth, Path};
use super::jobs::body_if_allowed;
use super::{ApiError, AppState};
use crate::queue::keys::is_slug;
use crate::queue::{QueueInfo, Scope};

/// Unfinished jobs of a queue by state (finished ones are listed with `GET /v1/jobs`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct QueueJobs {
    /// Waiting for jobs they depend on.
    pub waiting: u64,
    /// Waiting for their `run_at`.
    pub scheduled: u64,
    /// Due now.
    pub available: u64,
    /// Waiting for a retry.
    pub retryable: u64,
    /// Running.
    pub running: u64,
}

/// A queue of the key's tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// The queue name.
    pub name: String,
    /// Whether the tenant paused it: its jobs are accepted but not started.
    pub paused: bool,
    /// The most of its jobs running at once over every node (`PUT
    /// /v1/queues/{name}/limit`); absent: no limit but the tenant's `max_running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u64>,
    /// Its unfinished jobs by state.
    pub jobs: QueueJobs,
}

/// A queue's limit of running jobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueLimitRequest {
    /// The most of the tenant's jobs of the queue running at once over every node (0
    /// holds them all, as a pause); `null` removes the limit.
    pub max_running: Option<u64>,
}

impl From<QueueInfo> for QueueView {
    fn from(q: QueueInfo) -> Self {
        QueueView {
            name: q.name,
            paused: q.paused,
            max_running: q.max_running,
            jobs: QueueJobs {
                waiting: q.waiting,
                scheduled: q.scheduled,
                available: q.available,
                retryable: q.retryable,
                running: q.running,
            },
        }
    }
}

/// The key's tenant's queues.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    /// Every queue with unfinished jobs, a pause or a limit, by name.
    pub queues: Vec<QueueView>,
}

/// The key's tenant's queues: unfinished jobs per state, whether each is paused, and its
/// limit of running jobs.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses((status = 200, body = QueueList)))]
pub async fn list_queues(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<QueueList>, ApiError> {
    auth.require(Scope::JobsRead)?;
    let queues = state.store.queues(auth.tenant()).await?;
    Ok(axum::Json(QueueList {
        queues: queues.into_iter().map(Into::into).collect(),
    }))
}

/// Pause a queue for the key's tenant: its jobs are still accepted, but no node starts
/// one (running ones finish) until it is resumed. Survives restarts; pausing twice is
/// harmless.
#[utoipa::path(post, path = "/v1/queues/{name}/pause", tag = "queues",
    params(("name" = String, Path, description = "queue name")),
    responses(
        (status = 200, description = "the queue, paused", body = QueueView),
        (status = 422, description = "invalid queue name", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<QueueView>, ApiError> {
    set_paused(&state, &auth, &name, true).await
}

/// Resume a queue the key's tenant paused: its waiting jobs are claimed again at once.
/// Resuming a queue that is not paused is harmless.
#[utoipa::path(post, path = "/v1/queues/{name}/resume", tag = "queues",
    params(("name" = String, Path, description = "queue name")),
    responses(
        (status = 200, description = "the queue, running", body = QueueView),
        (status = 422, description = "invalid queue name", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<QueueView>, ApiError> {
    set_paused(&state, &auth, &name, false).await
}

/// Limit how many of the key's tenant's jobs of a queue run at once, over every node:
/// from now on no claim takes the queue past it (jobs running beyond a lowered limit
/// finish). `null` removes the limit. The tenant's own `max_running` applies as well.
#[utoipa::path(put, path = "/v1/queues/{name}/limit", tag = "queues",
    params(("name" = String, Path, description = "queue name")),
    request_body = QueueLimitRequest,
    responses(
        (status = 200, description = "the queue, with its limit", body = QueueView),
        (status = 422, description = "invalid queue name or limit", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_limit(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    request: Request,
) -> Result<axum::Json<QueueView>, ApiError> {
    let req: QueueLimitRequest = body_if_allowed(&state, &auth, Scope::JobsWrite, request).await?;
    check_name(&name)?;
    state
        .store
        .set_queue_limit(auth.tenant(), &name, req.max_running)
        .await?;
    queue_view(&state, auth.tenant(), &name).await
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_slug(name) {
        return Ok(());
    }
    Err(ApiError::InvalidRequest(format!(
        "`name`: a queue name is 1–63 of a-z, 0-9, `_` and `-`, not `{name}`"
    )))
}

async fn set_paused(
    state: &AppState,
    auth: &Auth,
    name: &str,
    paused: bool,
) -> Result<axum::Json<QueueView>, ApiError> {
    auth.require(Scope::JobsWrite)?;
    check_name(name)?;
    let tenant = auth.tenant();
    if paused {
        state.store.pause_queue(tenant, name).await?;
    } else {
        state.store.resume_queue(tenant, name).await?;
    }
    queue_view(state, tenant, name).await
}

/// Queue `name` of `tenant`, as the listing shows it (empty if it has nothing).
async fn queue_view(
    state: &AppState,
    tenant: &str,
    name: &str,
) -> Result<axum::Json<QueueView>, ApiError> {
    let queue = state
        .store
        .queues(tenant)
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .unwrap_or_else(|| QueueInfo {
            name: name.to_owned(),
            ..QueueInfo::default()
        });
    Ok(axum::Json(queue.into()))
}
