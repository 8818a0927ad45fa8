//! [`UiError`]: every way a dashboard request fails, answered as a page (or, for a
//! missing session, a redirect to the sign-in form).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::queue::StoreError;

/// A dashboard failure.
#[derive(Debug)]
pub enum UiError {
    /// No session, an expired or altered one, or a key that no longer authenticates:
    /// back to the sign-in form, the cookie cleared.
    SignIn,
    /// A state-changing request from another site, or without this session's token.
    Forbidden,
    /// What the API would have answered (not found, missing scope, invalid, …): the
    /// same status and the same words, never a store's detail.
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(e)
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError::Api(e.into())
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            UiError::SignIn => {
                let mut response = see_other("/ui/login");
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, super::session::clear_cookie(false));
                return response;
            }
            UiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Request refused".to_owned(),
                "This form was sent from another site, or from a page older than your \
                 session. Reload the page and try again."
                    .to_owned(),
            ),
            UiError::Api(e) => {
                let problem = e.problem();
                let status = StatusCode::from_u16(problem.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, problem.title, problem.detail)
            }
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title: &title,
            detail: &detail,
        };
        (status, html(&page)).into_response()
    }
}

/// A rendered page as an HTML answer; a template that fails to render is logged and
/// answered as an internal error.
pub fn html<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a dashboard page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred; it has been logged",
            )
                .into_response()
        }
    }
}

/// `303 See Other` to `location`: where a form post sends the browser next.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
