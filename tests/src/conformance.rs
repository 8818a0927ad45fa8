//! The conformance suite of [`Store`]: what every backend must do, as a user would notice it.
//!
//! Each case is a `pub async fn(Arc<dyn Store>)` that expects a store of its own (an empty
//! database): rescue and prune act on the whole store. A backend's test file is three lines:
//!
//! ```text
//! use wasmq_tests::store_conformance_tests;
//! store_conformance_tests!(std::sync::Arc::new(
//!     wasmq_host::queue::postgres::PgStore::connect(&wasmq_tests::pg::fresh_database().await, 8)
//!         .await
//!         .unwrap(),
//! ));
//! ```
//!
//! which expands to one `#[tokio::test]` per case, each with a fresh store. A store that
//! hands jobs to idle workers of its process ([`Store::handoff`]) also runs the hand-off
//! cases, with `store_handoff_tests!` and the same expression; each of them fails on a
//! store without a hand-off, so no case passes by doing nothing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use wasmq_host::queue::handoff::{Handed, Handoff};
use wasmq_host::queue::{
    ChildJob, ErrorKind, Finish, Job, JobError, JobFilter, JobState, Limits, Module, ModuleKind,
    NewJob, NewModule, Outcome, Progress, Scope, StoreError, StoreEvent, Usage,
};

/// Re-exported for [`store_conformance_tests!`].
pub use wasmq_host::queue::Store;

mod bounds;
mod children;
mod claims;
mod coalesce;
mod control;
mod deps;
mod enqueue;
mod fairness;
mod handoff;
mod leases;
mod limits;
mod listing;
mod modules;
mod pauses;
mod schedules;
mod tenants;
pub use bounds::*;
pub use children::*;
pub use claims::*;
pub use coalesce::*;
pub use control::*;
pub use deps::*;
pub use enqueue::*;
pub use fairness::*;
pub use handoff::*;
pub use leases::*;
pub use limits::*;
pub use listing::*;
pub use modules::*;
pub use pauses::*;
pub use schedules::*;
pub use tenants::*;

/// Expands to one `#[tokio::test]` per conformance case; `$make` is an expression (it may
/// `.await`) giving a fresh `Arc<dyn Store>`-compatible store, evaluated once per case.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::store_conformance_tests!(@cases $make;
            enqueue_then_get_round_trips,
            bulk_enqueue_of_5000_in_one_call,
            a_mixed_batch_answers_what_is_stored,
            repeated_batches_keep_their_order,
            keyed_and_keyless_jobs_of_one_batch_keep_their_order,
            idempotency_key_across_calls,
            idempotency_key_within_one_batch,
            enqueue_of_unknown_module_fails,
            claim_takes_priority_then_run_at,
            scheduled_job_waits_for_its_run_at,
            concurrent_claimers_never_share_a_job,
            finish_complete_records_result_once,
            finish_retry_then_fail_keeps_history,
            finish_of_stale_attempt_is_refused,
            expired_lease_is_rescued_as_lost,
            exhausted_lost_job_fails_as_lost,
            heartbeat_extends_the_lease,
            progress_is_visible_while_running,
            cancel_waiting_job_is_immediate,
            cancel_running_job_is_requested,
            prune_removes_only_old_finished_jobs,
            list_filters_and_pages_newest_first,
            a_schedules_jobs_are_listed_by_its_name,
            module_versions_and_bytes,
            deleted_module_keeps_bytes_for_waiting_jobs,
            subscribers_hear_enqueues_and_finishes,
            keys_authenticate_until_revoked,
            keys_are_checked_whole_and_per_tenant,
            count_jobs_by_queue_and_state,
            a_huge_error_message_is_stored_cut,
            a_job_retried_100_times_keeps_a_bounded_history,
            listings_leave_out_big_inputs_and_results,
            job_state_is_read_alone,
            nul_characters_in_a_report_are_stored_replaced,
            a_failed_or_cancelled_job_is_retried_once_more,
            schedules_put_replace_list_delete_per_tenant,
            a_due_schedule_advances_once,
            paused_schedules_are_never_due,
            a_schedule_shows_its_last_job_and_error,
            two_schedulers_make_one_job_per_tick,
            a_tick_of_a_deleted_module_is_recorded,
            missed_ticks_are_skipped_or_caught_up_once,
            a_paused_queue_accepts_jobs_but_none_is_claimed,
            a_running_job_of_a_paused_queue_finishes,
            has_work_counts_running_and_due_unpaused_jobs,
            a_coalesce_key_gathers_enqueues_into_one_waiting_job,
            a_coalesced_job_never_runs_later_than_its_cap,
            a_started_job_gathers_no_more_enqueues,
            a_retried_coalesced_job_leaves_the_key_to_the_waiting_one,
            coalesce_keys_within_and_across_batches,
            a_coalesce_key_refuses_what_has_no_meaning_beside_it,
            concurrent_enqueues_of_a_key_make_one_job,
            a_backlog_of_one_tenant_does_not_starve_another,
            many_tenants_are_served_one_job_each_per_claim,
            a_claim_for_one_tenant_takes_only_its_jobs,
            a_paused_tenant_is_passed_over_and_the_others_are_served,
            a_dependent_waits_until_its_dependencies_complete,
            a_fan_in_of_1000_releases_its_dependent_once,
            a_failure_cancels_the_chain_below_it,
            dependencies_already_finished_decide_at_once,
            dependencies_on_unknown_jobs_are_refused,
            a_batch_names_earlier_jobs_by_index,
            a_dependent_enqueued_during_the_finish_is_never_stranded,
            tenant_quotas_change_field_by_field,
            tenant_usage_is_counted_per_tenant,
            keys_with_jobs_are_those_that_make_no_job,
            a_rescued_failure_cancels_its_dependents,
            children_are_stored_only_with_a_completion,
            a_refused_or_repeated_report_stores_no_more_children,
            keyed_and_delayed_children,
            a_claim_never_takes_a_tenant_past_its_max_running,
            released_cancelled_and_rescued_jobs_give_their_slot_back,
            the_default_max_running_caps_tenants_without_their_own,
            a_queue_limit_caps_its_queue_for_its_tenant,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $crate::store_conformance_tests!(@each $make; $($case),*);
    };
    (@each $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::conformance::Store> = $make;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

/// The cases of a store with a hand-off ([`Store::handoff`]): one `#[tokio::test]` each,
/// as [`store_conformance_tests!`] makes them.
#[macro_export]
macro_rules! store_handoff_tests {
    ($make:expr $(,)?) => {
        $crate::store_conformance_tests!(@each $make;
            a_handed_job_reaches_its_taker_once,
            a_job_for_a_taker_that_went_away_waits_for_a_claim,
            a_handed_jobs_huge_error_is_stored_cut,
            a_job_that_may_not_run_ahead_is_handed_once_stored,
            a_paused_queues_job_is_not_handed_over,
            a_capped_job_is_not_handed_over,
            a_handed_jobs_children_are_stored_with_it,
        );
    };
}

const WAIT: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(60);

/// A tenant name no other case uses.
fn tenant() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "tenant-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Stores module `name` for `tenant` with `bytes`.
async fn put(store: &Arc<dyn Store>, tenant: &str, name: &str, bytes: &[u8]) -> Module {
    store
        .put_module(NewModule {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            kind: ModuleKind::Component,
            digest: sha256_hex(bytes),
            bytes: bytes.to_vec(),
            limits: Limits::default(),
        })
        .await
        .expect("put_module")
        .module
}

fn job(tenant: &str, module: &str, input: &[u8]) -> NewJob {
    NewJob {
        tenant: tenant.to_owned(),
        ..NewJob::new(module, input)
    }
}

async fn enqueue_one(store: &Arc<dyn Store>, new: NewJob) -> Job {
    let mut out = store.enqueue(vec![new]).await.expect("enqueue");
    assert_eq!(out.len(), 1);
    let enqueued = out.pop().unwrap();
    assert!(!enqueued.duplicate);
    enqueued.job
}

async fn get(store: &Arc<dyn Store>, tenant: &str, id: i64) -> Job {
    store
        .get(tenant, id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("job {id} should exist"))
}

async fn claim_one(store: &Arc<dyn Store>, queue: &str, worker: &str, lease: Duration) -> Job {
    let mut jobs = store.claim(queue, worker, 1, lease).await.expect("claim");
    assert_eq!(jobs.len(), 1, "one job should be claimable in {queue}");
    jobs.pop().unwrap()
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for an event matching `wanted`, skipping others.
async fn expect_event(
    events: &mut broadcast::Receiver<StoreEvent>,
    what: &str,
    wanted: impl Fn(&StoreEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if wanted(&event) => return,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended while waiting for {what}: {e}"),
            Err(_) => panic!("no event for {what} within {WAIT:?}"),
        }
    }
}

async fn rescue(store: &Arc<dyn Store>) -> wasmq_host::queue::RescueReport {
    eventually("rescue to run", || async {
        let report = store.rescue().await.expect("rescue");
        (!report.skipped).then_some(report)
    })
    .await
}

/// The hand-off of a store whose tests declare one (`store_handoff_tests!`).
fn declared_handoff(store: &Arc<dyn Store>) -> &Arc<Handoff> {
    store
        .handoff()
        .expect("a store that runs the hand-off cases must have a hand-off")
}

fn retry_now(message: &str) -> Outcome {
    Outcome::Retry {
        error: JobError::new(ErrorKind::TaskError, message),
        retry_at: Utc::now(),
    }
}
