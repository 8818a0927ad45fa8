//! The rest of the store's vocabulary: listings, modules, events and errors.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Job, JobState, Limits};

/// Which jobs [`super::Store::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this module name.
    pub module: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs made by this schedule's ticks.
    pub schedule: Option<String>,
    /// Only the children of this job.
    pub parent: Option<i64>,
    /// At most this many (clamped to 1..=1000; 0 means 100).
    pub limit: u32,
    /// Only jobs with an id below this: the `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// One page of [`Store::list`] (whole jobs) or [`Store::list_summaries`], newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T = Job> {
    /// The jobs, by id descending.
    pub jobs: Vec<T>,
    /// Pass as [`JobFilter::cursor`] for the next page; `None` when this is the last.
    pub next_cursor: Option<i64>,
}

/// What a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component of the `wasmq:task` world.
    Component,
    /// A WASI command module (core Wasm, `_start`).
    Command,
}

impl ModuleKind {
    /// The stored name: `component` or `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Component => "component",
            ModuleKind::Command => "command",
        }
    }
}

impl FromStr for ModuleKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "component" => Ok(ModuleKind::Component),
            "command" => Ok(ModuleKind::Command),
            other => Err(StoreError::Invalid(format!(
                "`{other}` is not a module kind"
            ))),
        }
    }
}

/// A module version to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModule {
    /// The owner.
    pub tenant: String,
    /// The name jobs are enqueued by.
    pub name: String,
    /// What it is (the caller validated it by compiling).
    pub kind: ModuleKind,
    /// sha256 of `bytes`, lower-case hex. A backend may verify it; PostgreSQL does.
    pub digest: String,
    /// The Wasm bytes.
    pub bytes: Vec<u8>,
    /// Default limits of its jobs.
    pub limits: Limits,
}

/// One stored version of a module (without its bytes: see [`Store::module_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The owner.
    pub tenant: String,
    /// The name.
    pub name: String,
    /// 1, 2, … per tenant and name.
    pub version: u32,
    /// sha256 of the bytes, lower-case hex.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// What it is.
    pub kind: ModuleKind,
    /// Default limits of its jobs.
    pub limits: Limits,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

/// The answer to [`Store::put_module`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutModule {
    /// The latest version after the call.
    pub module: Module,
    /// True when a new version was stored; false when the latest version already had the
    /// same digest, kind and limits (the call changed nothing).
    pub created: bool,
}

/// What a module's jobs may reach, set per module name (it applies to every version,
/// and a new upload keeps it). Default: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSettings {
    /// Canonical allow-list entries (`https://api.example.com`); empty: no network.
    pub allowed_hosts: Vec<String>,
    /// Config values, readable by the guest.
    pub values: std::collections::BTreeMap<String, String>,
    /// Secrets, sealed under the server's key ([`crate::secrets`]); never shown.
    pub secrets: std::collections::BTreeMap<String, String>,
}

/// Something that happened in the store, possibly on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Jobs became available in `queue`: idle workers of that queue should claim.
    JobsAvailable {
        /// The queue.
        queue: String,
    },
    /// A user asked to cancel running job `id`: its worker should interrupt it.
    CancelRequested {
        /// The job.
        id: i64,
    },
    /// Jobs finished for good (completed, failed or cancelled): long-polls should look.
    JobsFinished {
        /// The jobs.
        ids: Vec<i64>,
    },
    /// A schedule was put or deleted: schedulers should read their next tick again.
    SchedulesChanged,
    /// Another node paused or resumed `queue` for a tenant: the store reads its pauses
    /// again before the next claim of it.
    QueuePauseChanged {
        /// The queue.
        queue: String,
    },
    /// The notification connection was lost and is back: events may have been missed, so
    /// every waiter should look (workers claim, long-polls re-read).
    Reconnected,
}

/// Errors of the store. Messages are for people and never contain SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (in this tenant).
    #[error("not found")]
    NotFound,
    /// A job names a module that has no stored version in its tenant.
    #[error("module `{module}` does not exist; upload it first")]
    ModuleNotFound {
        /// The module name.
        module: String,
    },
    /// The request conflicts with what is stored (e.g. a uniqueness rule).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed (e.g. a digest that does not match the bytes).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database cannot be reached or is restarting; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure (details are in the log, not here).
    #[error("{0}")]
    Database(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed (the database was unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// One row of [`Store::count_jobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many jobs.
    pub count: u64,
}

/// One queue of a tenant, as [`Store::queues`] tells it: its unfinished jobs by state and
/// whether the tenant paused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue name.
    pub name: String,
    /// Whether the tenant paused it: its jobs are not claimed on any node.
    pub paused: bool,
    /// Jobs waiting for jobs they depend on.
    pub waiting: u64,
    /// Jobs waiting for their `run_at`.
    pub scheduled: u64,
    /// Jobs due now.
    pub available: u64,
    /// Jobs waiting for a retry.
    pub retryable: u64,
    /// Jobs running.
    pub running: u64,
    /// The tenant's limit of running jobs of this queue, over all nodes (`None`: none).
    pub max_running: Option<u64>,
}

/// A tenant's limit of running jobs in one queue, enforced by every node's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimit {
    /// The tenant.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// Jobs of the tenant in the queue running at once, over all nodes.
    pub max_running: u64,
}
