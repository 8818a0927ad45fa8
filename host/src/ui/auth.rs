//! Who is looking: the [`Viewer`] of a request (its session, re-checked against the
//! store every time), sign-in and sign-out, and the [`Form`] every post sends.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{UiError, html, see_other};
use super::session::{self, Session};
use crate::api::{ApiError, AppState};
use crate::queue::{Principal, Scope};

/// The signed-in caller: a live session whose key still authenticates.
pub struct Viewer {
    /// The key's tenant and scopes, as the API would see them.
    pub principal: Principal,
    /// The session (its CSRF token goes into every form).
    pub session: Session,
}

/// What the frame of every page shows: who is signed in, where they are, and the token
/// of the sign-out form.
pub struct Nav {
    /// The key's tenant.
    pub tenant: String,
    /// The key's public id.
    pub key_id: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// `overview`, `jobs` or `modules`: the current section, marked in the menu.
    pub section: &'static str,
}

impl Viewer {
    /// The tenant every store call of this request is scoped to.
    pub fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    /// Whether the key holds `scope` (or `admin`).
    pub fn can(&self, scope: Scope) -> bool {
        self.principal.allows(scope)
    }

    /// Fails with the API's 403 unless the key holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), UiError> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope).into())
        }
    }

    /// Fails unless a posted form carries this session's CSRF token.
    pub fn check_token(&self, submitted: &str) -> Result<(), UiError> {
        if self.session.csrf_matches(submitted) {
            Ok(())
        } else {
            Err(UiError::Forbidden)
        }
    }

    /// The page frame's data, in `section`.
    pub fn nav(&self, section: &'static str) -> Nav {
        Nav {
            tenant: self.principal.tenant.clone(),
            key_id: self.principal.key_id.clone(),
            csrf: self.session.csrf.clone(),
            section,
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = session::cookie(&parts.headers)
            .and_then(|value| state.sessions.open(value, now()))
            .ok_or(UiError::SignIn)?;
        // Every request, like an API call: a revoked key ends the session here.
        let principal = state
            .store
            .authenticate(&session.key)
            .await?
            .ok_or(UiError::SignIn)?;
        Ok(Viewer { principal, session })
    }
}

/// A posted `application/x-www-form-urlencoded` body.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
        serde_urlencoded::from_bytes(&bytes)
            .map(Form)
            .map_err(|e| ApiError::InvalidRequest(format!("the form is incomplete: {e}")).into())
    }
}

/// A form that only proves where it came from.
#[derive(Deserialize)]
pub struct TokenForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
}

/// The sign-in form (or the overview, for someone signed in already).
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session::cookie(&headers).is_some_and(|v| state.sessions.open(v, now()).is_some()) {
        return see_other("/ui");
    }
    html(&LoginPage { error: None })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
}

/// Exchanges an API key for a session cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, UiError> {
    let key = form.key.trim();
    if state.store.authenticate(key).await?.is_none() {
        let page = LoginPage {
            error: Some(
                "That key was not accepted: it is unknown, revoked or mistyped. \
                 Create one with `wasmq key create`.",
            ),
        };
        return Ok((StatusCode::UNAUTHORIZED, html(&page)).into_response());
    }
    let (value, _) = state.sessions.seal(key, now());
    let mut response = see_other("/ui");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(
            &value,
            state.sessions.ttl_secs(),
            session::over_tls(&headers),
        ),
    );
    Ok(response)
}

/// Ends the session in this browser.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, UiError> {
    // A session that no longer opens is already over; one that does needs its token,
    // so another page cannot sign the viewer out.
    if let Some(session) = session::cookie(&headers).and_then(|v| state.sessions.open(v, now()))
        && !session.csrf_matches(&form.csrf)
    {
        return Err(UiError::Forbidden);
    }
    let mut response = see_other("/ui/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(session::over_tls(&headers)),
    );
    Ok(response)
}
