//! A module's grants for one attempt: its allow-list and its config, secrets opened.
//!
//! Read only for modules that import outbound HTTP or config (`Prepared::wants_grants`),
//! so other jobs pay no extra statement. A job run ahead of its insert gets no network
//! whatever its module's policy says now: an attempt of a job that may never be stored
//! must have no effect outside its sandbox (the enqueue sets `may_run_ahead` false for them;
//! this covers a policy set between that enqueue and this attempt).

use std::sync::Arc;

use crate::queue::{ErrorKind, Finish, Job, JobError, Store};
use crate::runtime::{Grants, parse_allowed_hosts};
use crate::secrets::SecretKey;

/// Reads and opens the grants of `job`'s module; `Err` is the attempt's report.
pub(super) async fn grants_for(
    store: &Arc<dyn Store>,
    key: Option<&SecretKey>,
    job: &Job,
    ahead: bool,
) -> Result<Grants, Finish> {
    let settings = match store.module_settings(&job.tenant, &job.module).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(job = job.id, error = %e, "reading a module's settings failed");
            return Err(failed(job, "the store was unavailable".into()));
        }
    };
    let allowed_hosts = if ahead {
        Vec::new()
    } else {
        // Stored entries were validated on the way in; one that no longer parses (a
        // stricter grammar) is dropped, which only takes access away.
        parse_allowed_hosts(&settings.allowed_hosts).unwrap_or_else(|e| {
            tracing::warn!(job = job.id, module = %job.module, error = %e, "a stored allow-list does not parse; no network");
            Vec::new()
        })
    };
    let mut config: Vec<(String, String)> = settings.values.into_iter().collect();
    let mut secrets = Vec::with_capacity(settings.secrets.len());
    if !settings.secrets.is_empty() {
        let Some(key) = key else {
            return Err(failed(
                job,
                "the module has secrets and this worker has no secret key (set --secret-key or WASMQ_SECRET_KEY)".into(),
            ));
        };
        for (name, sealed) in settings.secrets {
            match key.open(&job.tenant, &job.module, &name, &sealed) {
                Ok(value) => {
                    secrets.push(value.clone());
                    config.push((name, value));
                }
                Err(e) => return Err(failed(job, format!("secret `{name}`: {e}"))),
            }
        }
    }
    Ok(Grants {
        allowed_hosts,
        config,
        secrets,
    })
}

/// The attempt's report when its grants could not be had: retried while attempts
/// remain (the operator can fix the key or the store), in the product's words.
fn failed(job: &Job, why: String) -> Finish {
    let retry = job.attempt < job.max_attempts;
    let error = JobError::new(
        ErrorKind::Trap,
        format!(
            "could not prepare module `{}`'s settings: {why}; {}",
            job.module,
            if retry { "retrying" } else { "giving up" }
        ),
    );
    super::execute::retry_or_fail(job, retry, error)
}
