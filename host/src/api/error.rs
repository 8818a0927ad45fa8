//! [`ApiError`]: every way a call can fail, as RFC 9457 `application/problem+json`.
//!
//! Each variant has a stable `type` URI (`https://wasmq.dev/problems/<slug>`) that clients
//! may match on, a title, a status, and a detail that says what to do. Internal details
//! (SQL, paths, backtraces) never reach the client: they are logged with `tracing`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::queue::{Quota, Scope, StoreError};
use crate::runtime::{RunError, ValidateError};

/// The base of every problem `type`.
pub const PROBLEM_BASE: &str = "https://wasmq.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `https://wasmq.dev/problems/module-too-large`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened and what to do.
    pub detail: String,
    /// With `quota-exceeded`: the tenant quota that refused the call
    /// (`max_unfinished_jobs`, `max_module_bytes`, `enqueue_rate`, `enqueue_burst`,
    /// `max_schedules`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// With `quota-exceeded`: that quota's value for the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub limit: Option<serde_json::Number>,
}

/// A call a tenant quota refused.
#[derive(Debug)]
pub struct OverQuota {
    /// The quota.
    pub quota: Quota,
    /// Its value for the tenant.
    pub limit: serde_json::Number,
    /// What happened and what to do.
    pub detail: String,
    /// Seconds after which the same call can pass (`Retry-After`), if that is known.
    pub retry_after: Option<u64>,
}

/// Errors of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, or a key that is unknown, malformed or revoked.
    #[error(
        "send a valid key as `Authorization: Bearer wq_…` (create one with `wasmq key create`)"
    )]
    Unauthorized,
    /// The key lacks the scope the call needs.
    #[error("this key lacks the `{0}` scope; use a key that has it{hint}", hint = holder(.0))]
    Forbidden(Scope),
    /// No such job in this tenant.
    #[error("job {0} does not exist (or belongs to another tenant)")]
    JobNotFound(i64),
    /// No such module in this tenant.
    #[error("module `{0}` does not exist; upload it with PUT /v1/modules/{0}")]
    ModuleNotFound(String),
    /// A retry of a job that is not failed or cancelled.
    #[error("job {0} is {1}: only a failed or cancelled job can be retried")]
    NotRetryable(i64, crate::queue::JobState),
    /// No such schedule in this tenant.
    #[error("schedule `{0}` does not exist; create it with PUT /v1/schedules/{0}")]
    ScheduleNotFound(String),
    /// No such route.
    #[error("no such endpoint; see /openapi.json for the API")]
    RouteNotFound,
    /// The route exists but not with this method.
    #[error("this endpoint does not accept this method; see /openapi.json")]
    MethodNotAllowed,
    /// The module upload is over the limit.
    #[error(
        "the module is larger than the {0}-byte limit; make it smaller (strip debug info, optimise for size)"
    )]
    ModuleTooLarge(usize),
    /// A job's input is over the limit.
    #[error(
        "the job input is larger than the {0}-byte limit; store large data elsewhere and pass a reference"
    )]
    InputTooLarge(usize),
    /// A request body is over the limit.
    #[error(
        "the request body is too large: a job's input may be at most 1 MiB (by default) and a batch at most 10,000 jobs"
    )]
    BodyTooLarge,
    /// Too many jobs in one batch.
    #[error("a batch may hold at most {0} jobs; split it")]
    BatchTooLarge(usize),
    /// The upload is not an acceptable module (the compiler's message).
    #[error("{0}")]
    InvalidModule(String),
    /// A limit above the server's maximum.
    #[error("limit `{name}` is {value}, above the server maximum {max}; ask for at most {max}")]
    LimitTooHigh {
        /// The limit's name.
        name: &'static str,
        /// The value asked for.
        value: u64,
        /// The server maximum.
        max: u64,
    },
    /// The body is not well-formed JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not what the call takes (wrong field types, unknown fields).
    #[error("{0}")]
    InvalidRequest(String),
    /// A JSON body without `Content-Type: application/json`.
    #[error("send the body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The request body did not arrive within the body timeout.
    #[error(
        "the request body did not arrive within {}s; send it faster, or split it (a batch) or shrink it (a module)",
        .0.as_secs_f64()
    )]
    BodyTimeout(std::time::Duration),
    /// The key already has the most long-polls waiting.
    #[error(
        "this key already has {0} long-polls waiting, the most one key may; retry after one of them answers, or poll without `wait`"
    )]
    TooManyLongPolls(usize),
    /// Over a tenant quota.
    #[error("{}", .0.detail)]
    QuotaExceeded(Box<OverQuota>),
    /// The store is unavailable (e.g. the database is restarting).
    #[error("the job store is unavailable; retry shortly")]
    Unavailable,
    /// Anything else; the detail is logged, not sent.
    #[error("an internal error occurred; it has been logged")]
    Internal,
}

/// Who else holds `scope`: `admin` holds every scope but `operator`.
fn holder(scope: &Scope) -> &'static str {
    if *scope == Scope::Operator {
        " (made with `wasmq key create --scope operator`)"
    } else {
        " (or `admin`)"
    }
}

impl ApiError {
    /// The HTTP status, `type` slug and title.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid API key",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Missing scope"),
            JobNotFound(_) => (StatusCode::NOT_FOUND, "job-not-found", "Job not found"),
            ModuleNotFound(_) => (
                StatusCode::NOT_FOUND,
                "module-not-found",
                "Module not found",
            ),
            NotRetryable(..) => (StatusCode::CONFLICT, "not-retryable", "Job not retryable"),
            ScheduleNotFound(_) => (
                StatusCode::NOT_FOUND,
                "schedule-not-found",
                "Schedule not found",
            ),
            RouteNotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ModuleTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "module-too-large",
                "Module too large",
            ),
            InputTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "input-too-large",
                "Job input too large",
            ),
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            BatchTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch-too-large",
                "Batch too large",
            ),
            InvalidModule(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-module",
                "Invalid module",
            ),
            LimitTooHigh { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit-too-high",
                "Limit above the server maximum",
            ),
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            InvalidRequest(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-request",
                "Invalid request",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            BodyTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body timed out",
            ),
            TooManyLongPolls(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-long-polls",
                "Too many long-polls",
            ),
            // Time lets a rate or a count of unfinished jobs pass (429); a module or a
            // batch that does not fit never will (413), nor a schedule too many (409).
            QuotaExceeded(over) => (
                match over.quota {
                    Quota::EnqueueRate | Quota::MaxUnfinishedJobs | Quota::MaxRunning => {
                        StatusCode::TOO_MANY_REQUESTS
                    }
                    Quota::MaxModuleBytes | Quota::EnqueueBurst => StatusCode::PAYLOAD_TOO_LARGE,
                    Quota::MaxSchedules => StatusCode::CONFLICT,
                },
                "quota-exceeded",
                "Quota exceeded",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem document sent for this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (quota, limit) = match self {
            ApiError::QuotaExceeded(over) => (
                Some(over.quota.as_str().to_owned()),
                Some(over.limit.clone()),
            ),
            _ => (None, None),
        };
        Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            quota,
            limit,
        }
    }

    /// The `Retry-After` of the answer, in seconds.
    fn retry_after(&self) -> Option<u64> {
        match self {
            // A place frees when one of the key's polls answers; asking every few seconds
            // finds it without hammering the server.
            ApiError::TooManyLongPolls(_) => Some(5),
            ApiError::QuotaExceeded(over) => over.retry_after,
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let retry_after = self.retry_after();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ModuleNotFound { module } => ApiError::ModuleNotFound(module),
            StoreError::Invalid(message) | StoreError::Conflict(message) => {
                ApiError::InvalidRequest(message)
            }
            StoreError::NotFound => ApiError::RouteNotFound,
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::Database(detail) => {
                tracing::error!(%detail, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Invalid(ValidateError::TooLarge { max, .. }) => ApiError::ModuleTooLarge(max),
            RunError::Invalid(e) => ApiError::InvalidModule(e.to_string()),
            RunError::Internal(detail) => {
                tracing::error!(%detail, "validating a module failed");
                ApiError::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(e.body_text()),
            JsonRejection::JsonDataError(e) => ApiError::InvalidRequest(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
            other => ApiError::MalformedJson(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::InvalidRequest(r.body_text())
    }
}
