//! The operator's dashboard at `/ui`: server-rendered HTML over the same [`Store`] calls
//! the API makes, with the same tenant scoping and the same scopes.
//!
//! One file per role: [`session`] (the sealed cookie, CSRF and origin checks), `auth`
//! (the signed-in [`Viewer`](auth::Viewer), sign-in and sign-out), `overview`, `jobs`,
//! `modules`, `actions` (cancel, retry, pause, resume: each behind a confirmation page
//! and a form carrying the session's CSRF token), `format` (numbers, sizes, times and
//! payloads as people read them), `assets` (CSS and JS compiled into the binary),
//! `error` (every failure as a page). Templates are in `host/templates/ui/`.
//!
//! Pages that change by themselves (the overview, a job while it runs) poll a fragment
//! of themselves (`data-live`); listings read summaries only (`Store::list_summaries`)
//! and per-queue counts (`Store::queues`), never a count over all jobs.
//!
//! [`Store`]: crate::queue::Store

mod actions;
mod assets;
mod auth;
mod error;
mod format;
mod jobs;
mod modules;
mod overview;
pub mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use session::Sessions;

use crate::api::AppState;

/// The dashboard's routes, all under `/ui`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/", get(overview::page))
        .route("/ui/live/overview", get(overview::live))
        .route("/ui/login", get(auth::login_page).post(auth::login))
        .route("/ui/logout", post(auth::logout))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/{id}", get(jobs::page))
        .route("/ui/jobs/{id}/live", get(jobs::live))
        .route("/ui/jobs/{id}/log", get(jobs::log))
        .route("/ui/jobs/{id}/result", get(jobs::result))
        .route("/ui/jobs/{id}/input", get(jobs::input))
        .route(
            "/ui/jobs/{id}/cancel",
            get(actions::confirm_cancel).post(actions::cancel),
        )
        .route(
            "/ui/jobs/{id}/retry",
            get(actions::confirm_retry).post(actions::retry),
        )
        .route(
            "/ui/queues/{name}/pause",
            get(actions::confirm_pause).post(actions::pause),
        )
        .route(
            "/ui/queues/{name}/resume",
            get(actions::confirm_resume).post(actions::resume),
        )
        .route("/ui/modules", get(modules::list))
        .route("/ui/modules/{name}", get(modules::page))
        .route(
            "/ui/modules/{name}/upload",
            // The upload reads the body under the module cap itself, as the API does.
            post(modules::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(guard))
}

/// Refuses a state-changing request from another site before anything reads it, and
/// gives every answer the headers that keep pages out of frames, caches and sniffing.
async fn guard(request: Request, next: Next) -> Response {
    let mut response = if request.method() != Method::GET
        && request.method() != Method::HEAD
        && !session::same_origin(request.headers())
    {
        error::UiError::Forbidden.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    let set =
        |headers: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
            headers
                .entry(name)
                .or_insert(HeaderValue::from_static(value));
        };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}
