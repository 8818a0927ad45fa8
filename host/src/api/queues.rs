//! `/v1/queues`: the key's tenant's queues, and pausing and resuming them.
//!
//! Queue names are one namespace across tenants; a pause is the caller's tenant's only:
//! another tenant's jobs in a queue of the same name run on.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Auth, Path};
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
    /// Its unfinished jobs by state.
    pub jobs: QueueJobs,
}

impl From<QueueInfo> for QueueView {
    fn from(q: QueueInfo) -> Self {
        QueueView {
            name: q.name,
            paused: q.paused,
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
    /// Every queue with unfinished jobs or a pause, by name.
    pub queues: Vec<QueueView>,
}

/// The key's tenant's queues: unfinished jobs per state, and whether each is paused.
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

async fn set_paused(
    state: &AppState,
    auth: &Auth,
    name: &str,
    paused: bool,
) -> Result<axum::Json<QueueView>, ApiError> {
    auth.require(Scope::JobsWrite)?;
    if !is_slug(name) {
        return Err(ApiError::InvalidRequest(format!(
            "`name`: a queue name is 1–63 of a-z, 0-9, `_` and `-`, not `{name}`"
        )));
    }
    let tenant = auth.tenant();
    if paused {
        state.store.pause_queue(tenant, name).await?;
    } else {
        state.store.resume_queue(tenant, name).await?;
    }
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
