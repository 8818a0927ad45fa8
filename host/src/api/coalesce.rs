//! The keys of an enqueue request: the rules of a client's key, and coalescing's fields
//! checked together (each refusal names its field).

use std::time::Duration;

use super::ApiError;
use super::jobs::EnqueueRequest;
use crate::queue;

/// Refuses a client's key (`field`): 1–255 bytes, not in the scheduler's namespace.
pub(super) fn check_key(field: &str, key: &str) -> Result<(), ApiError> {
    match crate::queue::keys::job_key_problem(field, key) {
        Some(problem) => Err(ApiError::InvalidRequest(problem)),
        None => Ok(()),
    }
}

/// The request's coalescing, checked: `coalesce_ms` and `coalesce_max_ms` need a
/// `coalesce_key`, which needs `coalesce_ms` and takes no other key or run time (the
/// window sets the run time; an idempotency key would answer an old job).
pub(super) fn coalesce_of(req: &EnqueueRequest) -> Result<Option<queue::Coalesce>, ApiError> {
    let Some(key) = &req.coalesce_key else {
        let stray = [
            ("coalesce_ms", req.coalesce_ms.is_some()),
            ("coalesce_max_ms", req.coalesce_max_ms.is_some()),
        ];
        return match stray.into_iter().find(|(_, given)| *given) {
            Some((field, _)) => Err(ApiError::InvalidRequest(format!(
                "`{field}` needs a `coalesce_key`"
            ))),
            None => Ok(None),
        };
    };
    check_key("coalesce_key", key)?;
    let clash = [
        ("idempotency_key", req.idempotency_key.is_some()),
        ("run_at", req.run_at.is_some()),
        ("delay_ms", req.delay_ms.is_some()),
    ];
    if let Some((field, _)) = clash.into_iter().find(|(_, given)| *given) {
        return Err(ApiError::InvalidRequest(format!(
            "`{field}` cannot be given with a `coalesce_key`: `coalesce_ms` sets when the \
             job runs, and the key updates the waiting job"
        )));
    }
    let Some(window) = req.coalesce_ms else {
        return Err(ApiError::InvalidRequest(
            "`coalesce_ms` is required with a `coalesce_key`".into(),
        ));
    };
    let coalesce = queue::Coalesce {
        key: key.clone(),
        window: Duration::from_millis(window),
        max: req.coalesce_max_ms.map(Duration::from_millis),
    };
    coalesce.check()?;
    Ok(Some(coalesce))
}
