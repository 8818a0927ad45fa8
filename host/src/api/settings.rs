//! `/v1/modules/{name}/policy` and `/v1/modules/{name}/config`: what a module's jobs may
//! reach. Both are per module name (every version) and kept across uploads.
//!
//! Secrets are sealed with the server's key before they are stored and are never
//! returned: the answers name them only.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Auth, Json, Path};
use super::modules::check_name;
use super::{ApiError, AppState};
use crate::queue::Scope;

/// A module's allow-list, as set and shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Where its jobs may send HTTP requests: `scheme://host[:port]` entries, host a
    /// name, `*.` and a name, `*`, or an IP address (`[…]` for IPv6); without a port,
    /// the scheme's default. Empty: no network at all.
    pub allowed_hosts: Vec<String>,
}

/// A module's config: values its jobs read through `wasi:config/store`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// Plain values, shown back by the API.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Secret values: stored encrypted with the server's key, never shown, and cut
    /// out of the job's log if a guest writes one there.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// A module's config as the API shows it: values, and the names of its secrets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    /// The plain values.
    pub values: BTreeMap<String, String>,
    /// The names of the secrets (their values are never shown).
    pub secrets: Vec<String>,
}

/// Most config entries (values and secrets together) a module may have.
const MAX_ENTRIES: usize = 64;
/// Longest config value or secret, in bytes.
const MAX_VALUE_BYTES: usize = 16 << 10;

/// Validates an allow-list and returns its canonical entries; the error names the entry.
pub(super) fn check_allowed_hosts(entries: &[String]) -> Result<Vec<String>, ApiError> {
    crate::runtime::parse_allowed_hosts(entries)
        .map(|hosts| hosts.iter().map(ToString::to_string).collect())
        .map_err(|why| ApiError::InvalidRequest(format!("`allowed_hosts`: {why}")))
}

fn check_config(req: &ConfigRequest) -> Result<(), ApiError> {
    if req.values.len() + req.secrets.len() > MAX_ENTRIES {
        return Err(ApiError::InvalidRequest(format!(
            "a module may have at most {MAX_ENTRIES} config entries (values and secrets together)"
        )));
    }
    for (field, map) in [("values", &req.values), ("secrets", &req.secrets)] {
        for (key, value) in map {
            let key_ok = !key.is_empty()
                && key.len() <= 128
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !key_ok {
                return Err(ApiError::InvalidRequest(format!(
                    "`{field}`: name `{key}` must be 1–128 of A-Z, a-z, 0-9, `_`, `-` and `.`"
                )));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(ApiError::InvalidRequest(format!(
                    "`{field}.{key}` is {} bytes; a value may have at most {MAX_VALUE_BYTES}",
                    value.len()
                )));
            }
        }
    }
    if let Some(key) = req.values.keys().find(|k| req.secrets.contains_key(*k)) {
        return Err(ApiError::InvalidRequest(format!(
            "`{key}` is in both `values` and `secrets`; a name is one or the other"
        )));
    }
    Ok(())
}

/// 404 unless the tenant has module `name`.
async fn require_module(state: &AppState, tenant: &str, name: &str) -> Result<(), ApiError> {
    check_name(name)?;
    match state.store.get_module(tenant, name).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::ModuleNotFound(name.to_owned())),
    }
}

/// Replace a module's allow-list. `[]` takes its network away.
#[utoipa::path(put, path = "/v1/modules/{name}/policy", tag = "modules",
    params(("name" = String, Path, description = "module name")),
    request_body = Policy,
    responses(
        (status = 200, description = "the module's allow-list now", body = Policy),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "an entry is not `scheme://host[:port]` (the detail names it)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    request: Request,
) -> Result<axum::Json<Policy>, ApiError> {
    auth.require(Scope::ModulesWrite)?;
    let Json(body) = Json::<Policy>::from_request(request, &state).await?;
    let hosts = check_allowed_hosts(&body.allowed_hosts)?;
    require_module(&state, auth.tenant(), &name).await?;
    state
        .store
        .set_allowed_hosts(auth.tenant(), &name, &hosts)
        .await?;
    Ok(axum::Json(Policy {
        allowed_hosts: hosts,
    }))
}

/// Replace a module's config values and secrets (both, as given).
#[utoipa::path(put, path = "/v1/modules/{name}/config", tag = "modules",
    params(("name" = String, Path, description = "module name")),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "the module's config now (secrets by name only)", body = ConfigView),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a bad name or value, or secrets on a server without a secret key", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_config(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    request: Request,
) -> Result<axum::Json<ConfigView>, ApiError> {
    auth.require(Scope::ModulesWrite)?;
    let Json(body) = Json::<ConfigRequest>::from_request(request, &state).await?;
    check_config(&body)?;
    let key = match (&state.config.secret_key, body.secrets.is_empty()) {
        (_, true) => None,
        (Some(key), false) => Some(key),
        (None, false) => {
            return Err(ApiError::InvalidRequest(
                "`secrets`: this server has no secret key to encrypt them with; start it with --secret-key (or WASMQ_SECRET_KEY): 32 random bytes as hex, e.g. `openssl rand -hex 32`".into(),
            ));
        }
    };
    require_module(&state, auth.tenant(), &name).await?;
    let sealed: BTreeMap<String, String> = body
        .secrets
        .iter()
        .map(|(k, v)| {
            let key = key.expect("checked above");
            (k.clone(), key.seal(auth.tenant(), &name, k, v))
        })
        .collect();
    state
        .store
        .set_module_config(auth.tenant(), &name, &body.values, &sealed)
        .await?;
    Ok(axum::Json(ConfigView {
        values: body.values,
        secrets: sealed.into_keys().collect(),
    }))
}

/// A module's config: its values, and its secrets by name.
#[utoipa::path(get, path = "/v1/modules/{name}/config", tag = "modules",
    params(("name" = String, Path, description = "module name")),
    responses(
        (status = 200, body = ConfigView),
        (status = 404, body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_config(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<axum::Json<ConfigView>, ApiError> {
    auth.require(Scope::ModulesWrite)?;
    require_module(&state, auth.tenant(), &name).await?;
    let settings = state.store.module_settings(auth.tenant(), &name).await?;
    Ok(axum::Json(ConfigView {
        values: settings.values,
        secrets: settings.secrets.into_keys().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_values_and_overlaps_are_checked() {
        let ok = ConfigRequest {
            values: [("region".into(), "eu".into())].into(),
            secrets: [("api_token".into(), "s3cret".into())].into(),
        };
        assert!(check_config(&ok).is_ok());
        let both = ConfigRequest {
            values: [("token".into(), "a".into())].into(),
            secrets: [("token".into(), "b".into())].into(),
        };
        assert!(
            check_config(&both)
                .unwrap_err()
                .to_string()
                .contains("both")
        );
        let bad_name = ConfigRequest {
            values: [("no spaces".into(), "a".into())].into(),
            ..Default::default()
        };
        assert!(
            check_config(&bad_name)
                .unwrap_err()
                .to_string()
                .contains("`values`: name `no spaces`")
        );
    }
}
