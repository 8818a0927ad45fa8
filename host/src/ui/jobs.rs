//! Jobs: the filtered, cursor-paged list, a job's page and its live part, and its log,
//! input and result as downloads.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{Nav, Viewer};
use super::error::{UiError, html};
use super::format::{self, Payload};
use crate::api::{ApiError, AppState};
use crate::queue::{Job, JobFilter, JobState, JobSummary, Scope};

/// Jobs a page of the list shows.
const PAGE: u32 = 50;

/// A job as a row of a list.
pub struct JobRow {
    pub id: i64,
    pub module: String,
    pub queue: String,
    pub state: &'static str,
    pub attempt: u32,
    pub max_attempts: u32,
    pub progress: Option<u8>,
    pub note: String,
    pub error_kind: Option<&'static str>,
    pub created: String,
    pub cancel_requested: bool,
}

impl From<&JobSummary> for JobRow {
    fn from(j: &JobSummary) -> Self {
        JobRow {
            id: j.id,
            module: j.module.clone(),
            queue: j.queue.clone(),
            state: j.state.as_str(),
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            progress: j.progress.as_ref().map(|p| p.percent.min(100)),
            note: j
                .progress
                .as_ref()
                .and_then(|p| p.note.clone())
                .unwrap_or_default(),
            error_kind: j.error.as_ref().map(|e| e.kind.as_str()),
            created: format::time(j.created_at),
            cancel_requested: j.cancel_requested,
        }
    }
}

/// The list's query: every filter optional, an empty field the same as none.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    module: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    schedule: String,
    /// A job's id: its children only (linked from its page).
    #[serde(default)]
    parent: String,
    #[serde(default)]
    cursor: String,
}

impl ListQuery {
    fn filter(&self) -> Result<JobFilter, UiError> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let state = some(&self.state)
            .map(|s| s.parse::<JobState>())
            .transpose()?;
        let cursor = some(&self.cursor)
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    ApiError::InvalidRequest("`cursor` is not a cursor from a previous page".into())
                })
            })
            .transpose()?;
        let parent = some(&self.parent)
            .map(|p| {
                p.parse::<i64>()
                    .map_err(|_| ApiError::InvalidRequest("`parent` must be a job id".into()))
            })
            .transpose()?;
        Ok(JobFilter {
            state,
            module: some(&self.module),
            queue: some(&self.queue),
            schedule: some(&self.schedule),
            parent,
            limit: PAGE,
            cursor,
        })
    }

    /// This query's filters (not its cursor) as a query string, for the next page.
    fn filters(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("state", &self.state),
            ("module", &self.module),
            ("queue", &self.queue),
            ("schedule", &self.schedule),
            ("parent", &self.parent),
        ] {
            if !value.trim().is_empty() {
                q.append_pair(name, value.trim());
            }
        }
        q.finish()
    }
}

#[derive(Template)]
#[template(path = "ui/jobs.html")]
struct ListPage {
    nav: Nav,
    /// Every state, and whether the filter names it.
    states: Vec<(&'static str, bool)>,
    state: String,
    module: String,
    queue: String,
    schedule: String,
    /// The job whose children these are, if the list is narrowed to them.
    parent: Option<i64>,
    jobs: Vec<JobRow>,
    /// The next page's URL, if there is one.
    next: Option<String>,
    /// Whether this is a later page (a link back to the first is shown).
    paged: bool,
    /// The first page's URL, with the same filters.
    first: String,
}

/// The tenant's jobs, newest first, filtered and paged by cursor (keyset: no count).
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Response, UiError> {
    viewer.require(Scope::JobsRead)?;
    let filter = query.filter()?;
    let page = state.store.list_summaries(viewer.tenant(), &filter).await?;
    let filters = query.filters();
    let first = format!("/ui/jobs?{filters}");
    let next = page.next_cursor.map(|c| {
        let sep = if filters.is_empty() { "" } else { "&" };
        format!("{first}{sep}cursor={c}")
    });
    Ok(html(&ListPage {
        nav: viewer.nav("jobs"),
        states: JobState::ALL
            .iter()
            .map(|s| (s.as_str(), Some(*s) == filter.state))
            .collect(),
        state: query.state.trim().to_owned(),
        module: query.module.trim().to_owned(),
        queue: query.queue.trim().to_owned(),
        schedule: query.schedule.trim().to_owned(),
        parent: filter.parent,
        jobs: page.jobs.iter().map(JobRow::from).collect(),
        next,
        paged: filter.cursor.is_some(),
        first,
    }))
}

/// One failed, lost or cancelled attempt, as the history table shows it.
pub struct Attempt {
    pub attempt: u32,
    pub at: String,
    pub kind: &'static str,
    pub message: String,
}

/// Everything of a job its page shows; the part that changes while it runs is rendered
/// alone for the live refresh.
#[derive(Template)]
#[template(path = "ui/job_live.html")]
struct JobLive {
    row: JobRow,
    finished: bool,
    can_cancel: bool,
    can_retry: bool,
    priority: i16,
    digest: String,
    run_at: String,
    started: String,
    finished_at: String,
    idempotency_key: Option<String>,
    schedule: Option<String>,
    parent_id: Option<i64>,
    /// Child jobs its completion enqueued.
    children: u64,
    error_message: Option<String>,
    usage: Vec<(&'static str, String)>,
    limits: Vec<(&'static str, String)>,
    history: Vec<Attempt>,
    input: Payload,
    result: Option<Payload>,
    log: String,
    log_dropped: u64,
}

impl JobLive {
    fn new(job: Job, viewer: &Viewer) -> Self {
        let (summary, body) = job.into_parts();
        let finished = summary.state.is_finished();
        let writer = viewer.can(Scope::JobsWrite);
        let usage = summary.usage.as_ref().map_or_else(Vec::new, |u| {
            let mut rows = vec![
                ("duration", format::millis(u.duration_ms)),
                ("fuel", format::count(u.fuel)),
                ("memory peak", format::bytes(u.memory_peak_bytes)),
            ];
            if u.http_requests > 0 {
                rows.push(("HTTP requests", format::count(u.http_requests)));
                rows.push(("HTTP received", format::bytes(u.http_bytes_in)));
                rows.push(("HTTP sent", format::bytes(u.http_bytes_out)));
            }
            rows
        });
        JobLive {
            row: JobRow::from(&summary),
            finished,
            can_cancel: writer && !finished && !summary.cancel_requested,
            can_retry: writer && matches!(summary.state, JobState::Failed | JobState::Cancelled),
            priority: summary.priority,
            digest: summary.digest.clone(),
            run_at: format::time(summary.run_at),
            started: format::opt_time(summary.started_at),
            finished_at: format::opt_time(summary.finished_at),
            schedule: summary
                .idempotency_key
                .as_deref()
                .and_then(crate::schedule::schedule_of)
                .map(str::to_owned),
            idempotency_key: summary.idempotency_key.clone(),
            parent_id: summary.parent_id,
            children: summary.usage.as_ref().map_or(0, |u| u.children),
            error_message: summary.error.as_ref().map(|e| e.message.clone()),
            usage,
            limits: format::limits(&summary.limits),
            history: summary
                .history
                .iter()
                .map(|h| Attempt {
                    attempt: h.attempt,
                    at: format::time(h.at),
                    kind: h.kind.as_str(),
                    message: h.message.clone(),
                })
                .collect(),
            input: Payload::of(&body.input),
            result: body.result.as_deref().map(Payload::of),
            log: body.log,
            log_dropped: body.log_dropped,
        }
    }
}

#[derive(Template)]
#[template(path = "ui/job.html")]
struct JobPage {
    nav: Nav,
    id: i64,
    live: JobLive,
}

async fn load(state: &AppState, viewer: &Viewer, id: i64) -> Result<Job, UiError> {
    viewer.require(Scope::JobsRead)?;
    // Scoped to the viewer's tenant: another tenant's id is simply not found.
    Ok(state
        .store
        .get(viewer.tenant(), id)
        .await?
        .ok_or(ApiError::JobNotFound(id))?)
}

/// A job's page.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let job = load(&state, &viewer, id).await?;
    Ok(html(&JobPage {
        nav: viewer.nav("jobs"),
        id,
        live: JobLive::new(job, &viewer),
    }))
}

/// The part of a job's page that changes while it runs, polled by the page.
pub async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let job = load(&state, &viewer, id).await?;
    Ok(html(&JobLive::new(job, &viewer)))
}

/// The job's log as plain text.
pub async fn log(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let job = load(&state, &viewer, id).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        job.log,
    )
        .into_response())
}

fn download(data: Vec<u8>, name: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        data,
    )
        .into_response()
}

/// The job's result, as a download.
pub async fn result(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let job = load(&state, &viewer, id).await?;
    let result = job.result.ok_or_else(|| {
        ApiError::InvalidRequest(format!("job {id} has no result (it is {})", job.state))
    })?;
    Ok(download(result, format!("job-{id}-result")))
}

/// The job's input, as a download.
pub async fn input(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let job = load(&state, &viewer, id).await?;
    Ok(download(job.input, format!("job-{id}-input")))
}
