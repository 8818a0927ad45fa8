//! The API's own JSON: every answer body is a view here, made from the store's types with
//! `From`, so a change of a store row never changes the wire format, and every field has a
//! typed OpenAPI schema (a bare object only where the value is the user's own JSON).

mod job;
mod module;
mod schedule;
mod tenant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::queue;

pub use job::{JobPage, JobView};
pub use module::{ModuleList, ModuleView};
pub use schedule::{ScheduleList, ScheduleView};
pub use tenant::TenantView;

/// Limits of an attempt; a field left out is not set here (a job takes its module's
/// default, then the server's maximum for the module's language).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Fuel (Wasm instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall clock of one attempt, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Result size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Log kept, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
}

impl From<queue::Limits> for Limits {
    fn from(l: queue::Limits) -> Self {
        Limits {
            fuel: l.fuel,
            timeout_ms: l.timeout_ms,
            memory_bytes: l.memory_bytes,
            output_bytes: l.output_bytes,
            log_bytes: l.log_bytes,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the jobs it depends on to complete.
    Waiting,
    /// Waiting for its `run_at`, which is in the future.
    Scheduled,
    /// Ready to be claimed by a worker.
    Available,
    /// A worker runs it.
    Running,
    /// An attempt failed and attempts remain; waiting for its backoff.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Failed fatally, or every attempt failed.
    Failed,
    /// Cancelled before or while it ran.
    Cancelled,
}

impl From<queue::JobState> for JobState {
    fn from(s: queue::JobState) -> Self {
        match s {
            queue::JobState::Waiting => JobState::Waiting,
            queue::JobState::Scheduled => JobState::Scheduled,
            queue::JobState::Available => JobState::Available,
            queue::JobState::Running => JobState::Running,
            queue::JobState::Retryable => JobState::Retryable,
            queue::JobState::Completed => JobState::Completed,
            queue::JobState::Failed => JobState::Failed,
            queue::JobState::Cancelled => JobState::Cancelled,
        }
    }
}

/// JSON if the bytes are UTF-8 JSON, else base64.
pub(super) fn json_or_base64(bytes: &[u8]) -> (Option<serde_json::Value>, Option<String>) {
    match serde_json::from_slice(bytes) {
        Ok(value) => (Some(value), None),
        Err(_) => (None, Some(BASE64.encode(bytes))),
    }
}

/// Asserts that the view of `stored` is the JSON the store type itself gave, which was
/// the answer before the views: the wire format kept byte for byte.
#[cfg(test)]
fn same_json<S: Serialize, V: Serialize + From<S>>(stored: S) {
    let before = serde_json::to_string(&stored).unwrap();
    assert_eq!(serde_json::to_string(&V::from(stored)).unwrap(), before);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_states_serialise_as_the_store_types_did() {
        same_json::<_, Limits>(queue::Limits::default());
        same_json::<_, Limits>(queue::Limits {
            fuel: Some(5),
            log_bytes: Some(7),
            ..queue::Limits::default()
        });
        for state in queue::JobState::ALL {
            same_json::<_, JobState>(state);
        }
    }
}
