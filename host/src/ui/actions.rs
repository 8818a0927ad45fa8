//! Actions: cancel or retry a job, pause or resume a queue. Each has a confirmation page
//! (a `GET` that changes nothing) whose form posts the session's CSRF token; the post
//! checks the scope the API would and calls the same store method.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::auth::{Form, Nav, TokenForm, Viewer};
use super::error::{UiError, html, see_other};
use crate::api::{ApiError, AppState};
use crate::queue::Scope;
use crate::queue::keys::is_slug;

#[derive(Template)]
#[template(path = "ui/confirm.html")]
struct Confirm {
    nav: Nav,
    title: String,
    detail: String,
    action: String,
    button: String,
    back: String,
}

/// The confirmation page of action `verb` (`cancel`, `retry`) on job `id`.
async fn confirm_job(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    verb: &str,
    detail: &str,
) -> Result<Response, UiError> {
    viewer.require(Scope::JobsWrite)?;
    if state.store.job_state(viewer.tenant(), id).await?.is_none() {
        return Err(ApiError::JobNotFound(id).into());
    }
    let mut title = verb.to_owned();
    title[..1].make_ascii_uppercase();
    Ok(html(&Confirm {
        nav: viewer.nav("jobs"),
        title: format!("{title} job {id}?"),
        detail: detail.into(),
        action: format!("/ui/jobs/{id}/{verb}"),
        button: format!("{title} job {id}"),
        back: format!("/ui/jobs/{id}"),
    }))
}

/// Asks before cancelling job `id`.
pub async fn confirm_cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let detail = "A waiting job is cancelled at once; a running one is interrupted within a \
                  second. A cancelled job can be retried.";
    confirm_job(&state, &viewer, id, "cancel", detail).await
}

/// Cancels job `id`.
pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<TokenForm>,
) -> Result<Response, UiError> {
    viewer.check_token(&form.csrf)?;
    viewer.require(Scope::JobsWrite)?;
    state
        .store
        .cancel(viewer.tenant(), id)
        .await?
        .ok_or(ApiError::JobNotFound(id))?;
    Ok(see_other(&format!("/ui/jobs/{id}")))
}

/// Asks before retrying job `id`.
pub async fn confirm_retry(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let detail = "The job becomes available at once with a fresh count of attempts; its \
                  history is kept.";
    confirm_job(&state, &viewer, id, "retry", detail).await
}

/// Runs failed or cancelled job `id` again.
pub async fn retry(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<TokenForm>,
) -> Result<Response, UiError> {
    viewer.check_token(&form.csrf)?;
    viewer.require(Scope::JobsWrite)?;
    if state.store.retry(viewer.tenant(), id).await?.is_none() {
        return Err(match state.store.job_state(viewer.tenant(), id).await? {
            Some(now) => ApiError::NotRetryable(id, now),
            None => ApiError::JobNotFound(id),
        }
        .into());
    }
    Ok(see_other(&format!("/ui/jobs/{id}")))
}

fn queue_name(name: &str) -> Result<(), UiError> {
    if is_slug(name) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "a queue name is 1–63 of a-z, 0-9, `_` and `-`, not `{name}`"
        ))
        .into())
    }
}

fn confirm_queue(viewer: &Viewer, name: &str, pause: bool) -> Result<Response, UiError> {
    viewer.require(Scope::JobsWrite)?;
    queue_name(name)?;
    let (verb, detail) = if pause {
        (
            "Pause",
            "Its jobs are still accepted, but no worker on any node starts one until it is \
             resumed; running jobs finish.",
        )
    } else {
        ("Resume", "Its waiting jobs are claimed again at once.")
    };
    Ok(html(&Confirm {
        nav: viewer.nav("overview"),
        title: format!("{verb} queue {name}?"),
        detail: detail.into(),
        action: format!("/ui/queues/{name}/{}", verb.to_ascii_lowercase()),
        button: format!("{verb} queue {name}"),
        back: "/ui".into(),
    }))
}

async fn set_paused(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    token: &str,
    pause: bool,
) -> Result<Response, UiError> {
    viewer.check_token(token)?;
    viewer.require(Scope::JobsWrite)?;
    queue_name(name)?;
    if pause {
        state.store.pause_queue(viewer.tenant(), name).await?;
    } else {
        state.store.resume_queue(viewer.tenant(), name).await?;
    }
    Ok(see_other("/ui"))
}

/// Asks before pausing queue `name`.
pub async fn confirm_pause(viewer: Viewer, Path(name): Path<String>) -> Result<Response, UiError> {
    confirm_queue(&viewer, &name, true)
}

/// Pauses queue `name` for the viewer's tenant.
pub async fn pause(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<TokenForm>,
) -> Result<Response, UiError> {
    set_paused(&state, &viewer, &name, &form.csrf, true).await
}

/// Asks before resuming queue `name`.
pub async fn confirm_resume(viewer: Viewer, Path(name): Path<String>) -> Result<Response, UiError> {
    confirm_queue(&viewer, &name, false)
}

/// Resumes queue `name` for the viewer's tenant.
pub async fn resume(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<TokenForm>,
) -> Result<Response, UiError> {
    set_paused(&state, &viewer, &name, &form.csrf, false).await
}
