//! Modules: the latest version of each, a module's versions, and the upload of a new
//! version (posted by the page's script as the raw bytes, like `PUT /v1/modules`).

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{Nav, Viewer};
use super::error::{UiError, html};
use super::format;
use super::session::CSRF_FIELD;
use crate::api::{ApiError, AppState};
use crate::queue::{Module, Scope};

/// A module version as a row.
pub struct ModuleRow {
    pub name: String,
    pub version: u32,
    pub kind: &'static str,
    pub size: String,
    pub digest: String,
    pub created: String,
    pub limits: Vec<(&'static str, String)>,
}

impl From<Module> for ModuleRow {
    fn from(m: Module) -> Self {
        ModuleRow {
            version: m.version,
            kind: m.kind.as_str(),
            size: format::bytes(m.size),
            created: format::time(m.created_at),
            limits: format::limits(&m.limits),
            digest: m.digest,
            name: m.name,
        }
    }
}

impl ModuleRow {
    /// The default limits set, as `fuel 5,000,000, timeout 2.0 s`, or a dash.
    pub fn limits_text(&self) -> String {
        if self.limits.is_empty() {
            return "—".into();
        }
        let parts: Vec<String> = self
            .limits
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        parts.join(", ")
    }

    /// The digest's first 12 digits, enough to tell versions apart at a glance.
    pub fn short_digest(&self) -> &str {
        &self.digest[..self.digest.len().min(12)]
    }
}

#[derive(Template)]
#[template(path = "ui/modules.html")]
struct ListPage {
    nav: Nav,
    modules: Vec<ModuleRow>,
    can_upload: bool,
}

fn may_read(viewer: &Viewer) -> Result<(), UiError> {
    if viewer.can(Scope::JobsRead) || viewer.can(Scope::ModulesWrite) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(Scope::JobsRead).into())
    }
}

/// The latest version of each of the tenant's modules.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, UiError> {
    may_read(&viewer)?;
    let modules = state.store.list_modules(viewer.tenant()).await?;
    Ok(html(&ListPage {
        nav: viewer.nav("modules"),
        modules: modules.into_iter().map(ModuleRow::from).collect(),
        can_upload: viewer.can(Scope::ModulesWrite),
    }))
}

#[derive(Template)]
#[template(path = "ui/module.html")]
struct ModulePage {
    nav: Nav,
    name: String,
    versions: Vec<ModuleRow>,
    allowed_hosts: Vec<String>,
    can_upload: bool,
}

/// Every version of module `name`, newest first.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    may_read(&viewer)?;
    let versions = state.store.module_versions(viewer.tenant(), &name).await?;
    if versions.is_empty() {
        return Err(ApiError::ModuleNotFound(name).into());
    }
    let settings = state.store.module_settings(viewer.tenant(), &name).await?;
    Ok(html(&ModulePage {
        nav: viewer.nav("modules"),
        name,
        versions: versions.into_iter().map(ModuleRow::from).collect(),
        allowed_hosts: settings.allowed_hosts,
        can_upload: viewer.can(Scope::ModulesWrite),
    }))
}

/// Stores a new version of module `name`: the body is the Wasm bytes, the query the
/// default limits (as the API takes them), the CSRF token in the `x-csrf` header.
pub async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, UiError> {
    let token = headers
        .get(format!("x-{CSRF_FIELD}"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    viewer.check_token(token)?;
    viewer.require(Scope::ModulesWrite)?;
    let (put, _) = crate::api::modules::upload(
        &state,
        viewer.tenant(),
        name,
        query.as_deref(),
        &headers,
        body,
    )
    .await?;
    let (status, what) = if put.created {
        (StatusCode::CREATED, "stored as version")
    } else {
        (
            StatusCode::OK,
            "unchanged: the same bytes and limits as version",
        )
    };
    Ok((
        status,
        format!("{} {what} {}", put.module.name, put.module.version),
    )
        .into_response())
}
