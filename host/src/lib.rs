//! wasmq: a durable job queue whose jobs are WebAssembly.
//!
//! - [`runtime`]: the sandbox that runs one attempt in a fresh wasmtime instance.
//! - [`queue`]: the durable job store (PostgreSQL, or embedded SQLite on one node), behind
//!   the [`queue::Store`] trait.
//! - [`worker`]: the pool that claims jobs, runs them in the sandbox and reports back.
//! - [`api`]: the HTTP API (axum), the only module that knows HTTP and JSON.
//! - [`ui`]: the operator's dashboard at `/ui`, HTML over the same store calls as the API.
//! - [`schedule`]: periodic jobs: cron expressions and the scheduler every node runs.
//! - [`metrics`]: process counters and histograms for `/metrics`.
//! - [`cli`]: the `wasmq` command line.
//! - [`secrets`]: module secrets sealed at rest under the server's key.
//! - [`text`]: bounded messages (what a guest or store can make long is cut to fit).
//! - [`units`]: sizes and durations as people write them (`64MiB`, `30s`), parsed totally.
//!
//! See ARCHITECTURE.md for the code map and the invariants between these modules.

pub mod api;
pub mod cli;
pub mod metrics;
pub mod queue;
pub mod runtime;
pub mod schedule;
pub mod secrets;
pub mod text;
pub mod ui;
pub mod units;
pub mod worker;
