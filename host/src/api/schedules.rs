//! `/v1/schedules`: periodic jobs (see `crate::schedule` for how ticks fire).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Auth, Path};
use super::jobs::{EnqueueRequest, body_if_allowed, new_job};
use super::modules::{LimitParams, check_name};
use super::views::{ScheduleList, ScheduleView};
use super::{ApiError, AppState};
use crate::queue::{CatchUp, NewSchedule, Scope};
use crate::schedule::CronExpr;

/// A schedule to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Five fields (`min hour day month weekday`), six with seconds first
    /// (`*/2 * * * * *`), or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub cron: String,
    /// The IANA time zone the expression is read in [UTC]. A local time that happens twice
    /// fires once; one that is skipped fires at the next valid instant.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The module each tick runs (its latest version at the tick).
    pub module: String,
    /// The input as any JSON value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Box<serde_json::value::RawValue>>,
    /// The input as base64 bytes, instead of `input`.
    #[serde(default)]
    pub input_base64: Option<String>,
    /// The jobs' queue [default].
    #[serde(default)]
    pub queue: Option<String>,
    /// The jobs' priority [0].
    #[serde(default)]
    pub priority: Option<i16>,
    /// The jobs' attempts [3], 1–100.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The jobs' limit overrides, as for a job.
    #[serde(default)]
    pub limits: Option<LimitParams>,
    /// Ticks missed while no node ran: `skip` [default] makes none, `one` makes one job
    /// for all of them.
    #[serde(default)]
    pub catch_up: Option<String>,
    /// A paused schedule fires nothing [false].
    #[serde(default)]
    pub paused: Option<bool>,
}

/// Create or replace a schedule. Replacing keeps its last run and recomputes its next tick.
#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "schedule name")),
    request_body = ScheduleRequest,
    responses(
        (status = 201, description = "created", body = ScheduleView),
        (status = 200, description = "replaced", body = ScheduleView),
        (status = 404, description = "unknown module", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "a new schedule over the tenant's `max_schedules` (`quota-exceeded`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid request (the field is named)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let req: ScheduleRequest = body_if_allowed(&state, &auth, Scope::JobsWrite, request).await?;
    let tenant = auth.tenant();
    check_name(&name).map_err(|_| {
        ApiError::InvalidRequest(format!(
            "schedule name `{name}` must be 1–63 of a-z, 0-9, `_` and `-`, starting with a letter or digit"
        ))
    })?;
    let timezone = req.timezone.unwrap_or_else(|| "UTC".to_owned());
    let cron = CronExpr::parse(&req.cron, &timezone)
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let catch_up = match req.catch_up.as_deref() {
        None | Some("skip") => CatchUp::Skip,
        Some("one") => CatchUp::One,
        Some(other) => {
            return Err(ApiError::InvalidRequest(format!(
                "`catch_up` is `{other}`; give `skip` or `one`"
            )));
        }
    };
    check_name(&req.module)?;
    let module = state
        .store
        .get_module(tenant, &req.module)
        .await?
        .ok_or_else(|| ApiError::ModuleNotFound(req.module.clone()))?;
    let own_limits = req.limits.clone().unwrap_or_default();
    // Every job field is checked exactly as an enqueue checks it.
    let job = new_job(
        &state,
        tenant,
        &module,
        EnqueueRequest {
            module: req.module,
            input: req.input,
            input_base64: req.input_base64,
            queue: req.queue,
            priority: req.priority,
            run_at: None,
            delay_ms: None,
            max_attempts: req.max_attempts,
            limits: req.limits,
            idempotency_key: None,
            coalesce_key: None,
            coalesce_ms: None,
            coalesce_max_ms: None,
            depends_on: None,
            depends_on_index: None,
        },
        false,
    )?;
    state
        .quotas
        .check_schedule(&*state.store, tenant, &name)
        .await?;
    let created = state
        .store
        .put_schedule(NewSchedule {
            tenant: tenant.to_owned(),
            name: name.clone(),
            cron: req.cron.trim().to_owned(),
            timezone,
            module: job.module,
            input: job.input,
            queue: job.queue,
            priority: job.priority,
            max_attempts: job.max_attempts,
            limits: own_limits.into(),
            catch_up,
            paused: req.paused.unwrap_or(false),
            next_run_at: cron.next_after(Utc::now()),
        })
        .await?;
    let view = one(&state, tenant, &name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view)))
}

async fn one(state: &AppState, tenant: &str, name: &str) -> Result<ScheduleView, ApiError> {
    state
        .store
        .schedules(tenant, Some(name))
        .await?
        .into_iter()
        .next()
        .map(Into::into)
        .ok_or_else(|| ApiError::ScheduleNotFound(name.to_owned()))
}

/// The key's tenant's schedules.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<ScheduleList>, ApiError> {
    auth.require(Scope::JobsRead)?;
    let rows = state.store.schedules(auth.tenant(), None).await?;
    Ok(axum::Json(ScheduleList {
        schedules: rows.into_iter().map(Into::into).collect(),
    }))
}

/// One schedule, with its next tick and its last job.
#[utoipa::path(get, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "schedule name")),
    responses(
        (status = 200, body = ScheduleView),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    auth.require(Scope::JobsRead)?;
    Ok(axum::Json(one(&state, auth.tenant(), &name).await?))
}

/// Delete a schedule. Jobs it already made are left alone.
#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "schedule name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::JobsWrite)?;
    if state.store.delete_schedule(auth.tenant(), &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::ScheduleNotFound(name))
    }
}
