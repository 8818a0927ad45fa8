//! The job store: enqueue, claim, heartbeat, finish, rescue, cancel, list, prune, and the
//! module registry the jobs run.
//!
//! Everything durable goes through the [`Store`] trait. It has one implementation,
//! [`Queue`] (`policy/`), which owns every policy of the store once, over a narrow
//! [`Driver`] per backend that offers storage primitives only (River's driver interface
//! is the model): [`postgres::PgDriver`] ([`postgres::PgStore`] is the queue over it) and
//! [`sqlite::SqliteDriver`] ([`sqlite::SqliteStore`], one embedded file). Both pass the
//! conformance suite in `tests/src/conformance.rs`, the executable definition of the
//! semantics written down here.
//!
//! The import graph is a tree: `policy` uses `driver`, `handoff` and the types; the
//! drivers use `driver` and the types; `handoff` uses the types only.
//!
//! Nothing in this module knows about WebAssembly execution: a job is bytes in, bytes out,
//! plus the bookkeeping a user sees (state, attempts, error, usage, log, history).
//!
//! # A job's life
//!
//! ```text
//!  enqueue ──► scheduled ──(run_at passes)──► available ──claim──► running
//!     │            ▲                            ▲                    │
//!     └──► waiting ┴─(last dependency completes)┘                    │
//!              └──(a dependency failed or was cancelled)─► cancelled │
//!       retryable ◄──── Retry / lost lease ─────┼────────────────────┤
//!           └──────(run_at passes)──────────────┘                    │
//!                                   completed ◄── Complete ──────────┤
//!                                   failed    ◄── Fail / exhausted ──┤
//!                                   cancelled ◄── Cancelled ─────────┘
//! ```
//!
//! Jobs not started (`waiting`, `scheduled`, `available`, `retryable`) are cancelled at
//! once; a running job's cancellation is *requested* and reported to its worker by
//! [`Store::heartbeat`] and [`StoreEvent::CancelRequested`].

pub mod coalesce;
pub mod deps;
pub mod driver;
pub mod handoff;
mod job;
pub mod keys;
mod limits;
mod policy;
pub mod postgres;
mod report;
pub mod rows;
pub mod schedules;
pub mod sqlite;
mod store;
pub mod tenants;
mod types;

pub use coalesce::Coalesce;
pub use deps::Dependency;
pub use driver::{ControlRows, Driver, ScheduleRows, SettingsRows, TenantRows};
pub use job::*;
pub use keys::{NewKey, Principal, Scope};
pub use limits::Limits;
pub use policy::{Queue, event_channel};
pub use report::*;
pub use schedules::{CatchUp, NewSchedule, Schedule, ScheduleAdvance};
pub use store::Store;
pub use tenants::{Quota, QuotaChange, Quotas, TenantRow, TenantStore, TenantUsage};
pub use types::*;
