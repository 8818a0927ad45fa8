//! `/v1/modules`: upload (validated by compiling), list, versions, delete.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Auth, Path};
use super::views::{ModuleList, ModuleView};
use super::{ApiError, AppState};
use crate::queue::{self, NewModule, Scope, keys::is_slug};
use crate::runtime::Language;

/// The module's default limits, as query parameters of the upload.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// Fuel (Wasm instructions).
    pub fuel: Option<u64>,
    /// Wall clock of one attempt, ms.
    pub timeout_ms: Option<u64>,
    /// Linear memory, bytes.
    pub memory_bytes: Option<u64>,
    /// Result size, bytes.
    pub output_bytes: Option<u64>,
    /// Log kept, bytes.
    pub log_bytes: Option<u64>,
}

impl From<LimitParams> for queue::Limits {
    fn from(p: LimitParams) -> Self {
        queue::Limits {
            fuel: p.fuel,
            timeout_ms: p.timeout_ms,
            memory_bytes: p.memory_bytes,
            output_bytes: p.output_bytes,
            log_bytes: p.log_bytes,
        }
    }
}

/// Checks every set limit against the server maximum.
pub(super) fn check_limits(
    limits: &queue::Limits,
    max: &crate::runtime::Limits,
) -> Result<(), ApiError> {
    let pairs = [
        ("fuel", limits.fuel, max.fuel),
        ("timeout_ms", limits.timeout_ms, max.timeout_ms),
        ("memory_bytes", limits.memory_bytes, max.memory_bytes),
        ("output_bytes", limits.output_bytes, max.output_bytes),
        ("log_bytes", limits.log_bytes, max.log_bytes),
    ];
    for (name, value, max) in pairs {
        if let Some(value) = value
            && value > max
        {
            return Err(ApiError::LimitTooHigh { name, value, max });
        }
    }
    Ok(())
}

pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if is_slug(name) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "module name `{name}` must be 1–63 of a-z, 0-9, `_` and `-`, starting with a letter or digit"
        )))
    }
}

/// Splits the upload's query: `allowed_host` (repeatable) apart, the limits parsed
/// from the rest. `None` hosts: the query named none, and the allow-list stays as it is.
fn upload_params(raw: Option<&str>) -> Result<(LimitParams, Option<Vec<String>>), ApiError> {
    let mut hosts = None::<Vec<String>>;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k == "allowed_host" {
            hosts.get_or_insert_default().push(v.into_owned());
        } else {
            rest.append_pair(&k, &v);
        }
    }
    let limits = serde_urlencoded::from_str::<LimitParams>(&rest.finish()).map_err(|e| {
        ApiError::InvalidRequest(format!("Failed to deserialize query string: {e}"))
    })?;
    Ok((limits, hosts))
}

/// Upload a module version: the body is the Wasm bytes (a `wasmq:task` component or a
/// WASI command module). Validated by compiling.
#[utoipa::path(put, path = "/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "module name: ^[a-z0-9][a-z0-9_-]{0,62}$"), LimitParams,
        ("allowed_host" = Option<Vec<String>>, Query, explode, description = "repeatable: replaces the module's allow-list (`https://api.example.com`, `https://*.example.org:8443`, `http://127.0.0.1:9200`); absent: the allow-list stays as it is")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, description = "a new version was stored", body = ModuleView),
        (status = 200, description = "the same bytes and limits again: nothing changed", body = ModuleView),
        (status = 413, description = "module too large, or over the tenant's `max_module_bytes` (`quota-exceeded`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "not a valid module (the compiler's message), or a limit above the maximum", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_module(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Scope::ModulesWrite)?;
    let (put, hosts) = upload(
        &state,
        auth.tenant(),
        name,
        query.as_deref(),
        &headers,
        body,
    )
    .await?;
    let status = if put.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(ModuleView::with_hosts(put.module, &hosts)),
    ))
}

/// Reads, validates (by compiling) and stores an upload of module `name` for `tenant`,
/// its default limits and allow-list from `query` as `PUT /v1/modules/{name}` takes
/// them: the version stored and the module's allow-list. The caller checked the scope.
/// The dashboard's upload goes through here too.
pub(crate) async fn upload(
    state: &AppState,
    tenant: &str,
    name: String,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(queue::PutModule, Vec<String>), ApiError> {
    check_name(&name)?;
    let (params, hosts) = upload_params(query)?;
    let hosts = hosts
        .map(|h| super::settings::check_allowed_hosts(&h))
        .transpose()?;
    let limits = queue::Limits::from(params);
    // Again once the module's language is known: an interpreter's fuel may be higher.
    check_limits(&limits, &state.runtime.max_limits_any())?;
    let max = state.runtime.config().max_module_bytes;
    // Refuse an announced oversize body before reading any of it...
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(ApiError::ModuleTooLarge(max));
    }
    // ...and stop reading one that grows past the limit (chunked, or lying).
    let bytes = http_body_util::Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::ModuleTooLarge(max)
            } else {
                ApiError::InvalidRequest("the upload was interrupted; send it again".into())
            }
        })?
        .to_bytes();
    if bytes.is_empty() {
        return Err(ApiError::InvalidModule(
            "the body is empty; send the module's .wasm bytes".into(),
        ));
    }
    // Before the compile: an upload over the quota costs the server no compile.
    state
        .quotas
        .check_module(&*state.store, tenant, &bytes)
        .await?;
    let bytes = Arc::new(bytes.to_vec());
    // Before the compile too: a fuel over the language's maximum costs no compile.
    let scan = bytes.clone();
    let language = tokio::task::spawn_blocking(move || Language::of(&scan))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading a module's language failed");
            ApiError::Internal
        })?;
    check_limits(&limits, &state.runtime.max_limits_for(language))?;
    let prepared = state.runtime.load_bytes(bytes.clone()).await?;
    let (kind, digest) = (prepared.kind(), prepared.digest().to_owned());
    let kind = match kind {
        crate::runtime::ModuleKind::Component => queue::ModuleKind::Component,
        crate::runtime::ModuleKind::Command => queue::ModuleKind::Command,
    };
    let put = state
        .store
        .put_module(NewModule {
            tenant: tenant.to_owned(),
            name,
            kind,
            digest,
            bytes: Arc::unwrap_or_clone(bytes),
            limits,
        })
        .await?;
    // The policy goes in after the version: should it fail, the module has less access
    // than asked for, never more.
    let hosts = match hosts {
        Some(hosts) => {
            state
                .store
                .set_allowed_hosts(tenant, &put.module.name, &hosts)
                .await?;
            hosts
        }
        None => {
            let settings = state
                .store
                .module_settings(tenant, &put.module.name)
                .await?;
            settings.allowed_hosts
        }
    };
    Ok((put, hosts))
}

/// The latest version of every module of the caller's tenant.
#[utoipa::path(get, path = "/v1/modules", tag = "modules",
    responses((status = 200, body = ModuleList)))]
pub async fn list_modules(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<ModuleList>, ApiError> {
    auth.require_any(&[Scope::JobsRead, Scope::ModulesWrite])?;
    let modules = state.store.list_modules(auth.tenant()).await?;
    let hosts = state.store.allowed_hosts(auth.tenant()).await?;
    Ok(axum::Json(ModuleList {
        modules: modules
            .into_iter()
            .map(|m| {
                let h = hosts.get(&m.name).map_or(&[][..], |h| h.as_slice());
                ModuleView::with_hosts(m, h)
            })
            .collect(),
    }))
}

/// Every version of a module, newest first.
#[utoipa::path(get, path = "/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "module name")),
    responses(
        (status = 200, body = ModuleList),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_module(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<ModuleList>, ApiError> {
    auth.require_any(&[Scope::JobsRead, Scope::ModulesWrite])?;
    let versions = state.store.module_versions(auth.tenant(), &name).await?;
    if versions.is_empty() {
        return Err(ApiError::ModuleNotFound(name));
    }
    let hosts = state
        .store
        .module_settings(auth.tenant(), &name)
        .await?
        .allowed_hosts;
    Ok(axum::Json(ModuleList {
        modules: versions
            .into_iter()
            .map(|m| ModuleView::with_hosts(m, &hosts))
            .collect(),
    }))
}

/// Delete every version of a module. Jobs already enqueued still run their pinned version.
#[utoipa::path(delete, path = "/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "module name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_module(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::ModulesWrite)?;
    match state.store.delete_module(auth.tenant(), &name).await {
        Ok(()) => {
            // A later module of the same name starts with no network and no config.
            state
                .store
                .delete_module_settings(auth.tenant(), &name)
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Err(crate::queue::StoreError::NotFound) => Err(ApiError::ModuleNotFound(name)),
        Err(e) => Err(e.into()),
    }
}
