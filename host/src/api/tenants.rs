//! `/v1/tenant` (any key: its own tenant, quotas and use) and `/v1/tenants/{name}` (an
//! `operator` key: any tenant's quotas, set and read).
//!
//! Quotas are set only with the `operator` scope, which no tenant's `admin` holds and only
//! `wasmq key create --scope operator` on the store grants: a tenant cannot raise its own.

use axum::extract::{Request, State};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::extract::{Auth, Path};
use super::jobs::body_if_allowed;
use super::views::TenantView;
use super::{ApiError, AppState};
use crate::queue::{QuotaChange, Scope, keys::validate_tenant};

/// A change of a tenant's quotas: a field left out keeps its value, `null` takes it back
/// to the server's default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    /// Jobs not finished (scheduled, available, retryable, running) at once.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_unfinished_jobs: Option<Option<u64>>,
    /// Bytes of stored module versions (each distinct module once).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_module_bytes: Option<Option<u64>>,
    /// Jobs enqueued per second, per API node (a positive number).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub enqueue_rate: Option<Option<f64>>,
    /// Jobs enqueued at once after a quiet spell [one second of the rate].
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub enqueue_burst: Option<Option<u64>>,
    /// Jobs running at once, over every node.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_running: Option<Option<u64>>,
    /// Schedules.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_schedules: Option<Option<u64>>,
}

/// A field that is present: `Some(None)` for `null`, so that it differs from a field left
/// out (`None`, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl From<TenantRequest> for QuotaChange {
    fn from(r: TenantRequest) -> Self {
        QuotaChange {
            max_unfinished_jobs: r.max_unfinished_jobs,
            max_module_bytes: r.max_module_bytes,
            enqueue_rate: r.enqueue_rate,
            enqueue_burst: r.enqueue_burst,
            max_running: r.max_running,
            max_schedules: r.max_schedules,
        }
    }
}

/// `tenant` as the API shows it, its use counted now.
async fn view(state: &AppState, tenant: &str) -> Result<TenantView, ApiError> {
    let (row, usage) =
        tokio::try_join!(state.store.tenant(tenant), state.store.tenant_usage(tenant))?;
    Ok(TenantView::new(tenant, row, state.quotas.defaults(), usage))
}

fn check_tenant(name: &str) -> Result<(), ApiError> {
    validate_tenant(name).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// The key's own tenant: the quotas that apply to it and what it uses.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenants",
    responses((status = 200, body = TenantView)))]
pub async fn own_tenant(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<TenantView>, ApiError> {
    Ok(axum::Json(view(&state, auth.tenant()).await?))
}

/// Any tenant's quotas and use (an `operator` key).
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "tenant name")),
    responses(
        (status = 200, body = TenantView),
        (status = 403, description = "the key is not an operator's", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_tenant(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<TenantView>, ApiError> {
    auth.require(Scope::Operator)?;
    check_tenant(&name)?;
    Ok(axum::Json(view(&state, &name).await?))
}

/// Set a tenant's quotas (an `operator` key): a field left out keeps its value, `null`
/// takes it back to the server's default. Answers the quotas that now apply.
#[utoipa::path(put, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "tenant name")),
    request_body = TenantRequest,
    responses(
        (status = 200, body = TenantView),
        (status = 403, description = "the key is not an operator's", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a quota that cannot be (a rate of 0, a burst of 0)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_tenant(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    request: Request,
) -> Result<axum::Json<TenantView>, ApiError> {
    let req: TenantRequest = body_if_allowed(&state, &auth, Scope::Operator, request).await?;
    check_tenant(&name)?;
    state
        .store
        .set_tenant_quotas(&name, &QuotaChange::from(req))
        .await?;
    state.quotas.forget(&name);
    tracing::info!(tenant = %name, key = %auth.0.key_id, "tenant quotas changed");
    Ok(axum::Json(view(&state, &name).await?))
}
