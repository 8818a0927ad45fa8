//! The dependencies of an enqueue request: `depends_on` ids, and in a batch
//! `depends_on_index` of earlier items, checked before the store sees them (the store
//! checks that the ids are the tenant's jobs).

use super::ApiError;
use super::jobs::EnqueueRequest;
use crate::queue::{self, Dependency};

/// The dependencies of a request (`depends_on_index` only in a batch, `batch`).
pub(super) fn dependencies_of(
    req: &EnqueueRequest,
    batch: bool,
) -> Result<Vec<Dependency>, ApiError> {
    let ids = req.depends_on.iter().flatten();
    let indexes = req.depends_on_index.iter().flatten();
    if !batch && indexes.clone().next().is_some() {
        return Err(ApiError::InvalidRequest(
            "`depends_on_index` names jobs of a batch: use `depends_on` outside one".into(),
        ));
    }
    if let Some(id) = ids.clone().find(|id| **id <= 0) {
        return Err(ApiError::InvalidRequest(format!(
            "`depends_on`: {id} is not a job id"
        )));
    }
    let all: Vec<Dependency> = ids
        .map(|id| Dependency::Job(*id))
        .chain(indexes.map(|at| Dependency::Earlier(*at)))
        .collect();
    if all.len() > queue::deps::MAX_DEPENDENCIES {
        return Err(ApiError::InvalidRequest(format!(
            "a job may depend on at most {} jobs",
            queue::deps::MAX_DEPENDENCIES
        )));
    }
    Ok(all)
}
