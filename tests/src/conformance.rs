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
    ErrorKind, Finish, Job, JobError, JobFilter, JobState, Limits, Module, ModuleKind, NewJob,
    NewModule, Outcome, Progress, Scope, StoreError, StoreEvent, Usage,
};

/// Re-exported for [`store_conformance_tests!`].
pub use wasmq_host::queue::Store;

mod bounds;
pub use bounds::*;

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

/// Enqueue stores every field, and `get` gives it back (to its tenant only).
pub async fn enqueue_then_get_round_trips(store: Arc<dyn Store>) {
    let t = tenant();
    let module = put(&store, &t, "resize", b"\0asm v1").await;
    let limits = Limits {
        fuel: Some(1_000),
        timeout_ms: Some(2_500),
        memory_bytes: Some(1 << 20),
        output_bytes: Some(4096),
        log_bytes: Some(512),
    };
    let before = Utc::now() - chrono::Duration::seconds(5);
    let new = NewJob {
        queue: "images".into(),
        priority: 7,
        max_attempts: 5,
        limits: limits.clone(),
        idempotency_key: Some("order-1".into()),
        ..job(&t, "resize", &[0, 1, 2, 255])
    };
    let stored = enqueue_one(&store, new).await;
    assert!(stored.id > 0);
    assert_eq!(stored.tenant, t);
    assert_eq!(stored.module, "resize");
    assert_eq!(stored.digest, module.digest, "the latest version is pinned");
    assert_eq!(stored.queue, "images");
    assert_eq!(stored.priority, 7);
    assert_eq!(stored.input, vec![0, 1, 2, 255]);
    assert_eq!(stored.state, JobState::Available);
    assert_eq!(stored.attempt, 0);
    assert_eq!(stored.max_attempts, 5);
    assert_eq!(stored.limits, limits);
    assert_eq!(stored.idempotency_key.as_deref(), Some("order-1"));
    assert!(stored.created_at > before && stored.run_at > before);
    assert!(stored.result.is_none() && stored.error.is_none() && stored.history.is_empty());
    assert!(stored.started_at.is_none() && stored.finished_at.is_none());

    assert_eq!(get(&store, &t, stored.id).await, stored);
    assert_eq!(store.get("someone-else", stored.id).await.unwrap(), None);
    assert_eq!(store.get(&t, stored.id + 1_000_000).await.unwrap(), None);
    store.ping().await.expect("ping");
}

/// 5,000 jobs go in with one call, in input order, each with its own id.
pub async fn bulk_enqueue_of_5000_in_one_call(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "bulk", b"bulk").await;
    let jobs: Vec<NewJob> = (0..5_000u32)
        .map(|i| job(&t, "bulk", &i.to_le_bytes()))
        .collect();
    let started = Instant::now();
    let out = store.enqueue(jobs).await.expect("bulk enqueue");
    let elapsed = started.elapsed();
    eprintln!("bulk enqueue of 5000 jobs: {elapsed:?}");
    assert_eq!(out.len(), 5_000);
    let ids: HashSet<i64> = out.iter().map(|e| e.job.id).collect();
    assert_eq!(ids.len(), 5_000, "every job gets its own id");
    for (i, e) in out.iter().enumerate() {
        assert!(!e.duplicate);
        assert_eq!(
            e.job.input,
            (i as u32).to_le_bytes(),
            "answers are in input order"
        );
        assert_eq!(e.job.state, JobState::Available);
    }
    let page = store
        .list(
            &t,
            &JobFilter {
                limit: 1,
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.jobs[0].id, out.iter().map(|e| e.job.id).max().unwrap());
}

/// A batch without idempotency keys mixing modules (one pinned to an older version), queues,
/// limits, priorities, attempts and run times: each answer is exactly the job `get` then
/// returns, with the state and the pinned version it should have.
pub async fn a_mixed_batch_answers_what_is_stored(store: Arc<dyn Store>) {
    let t = tenant();
    let old = put(&store, &t, "a", b"a v1").await;
    let latest = put(&store, &t, "a", b"a v2").await;
    let other = put(&store, &t, "b", b"b").await;
    let limits = Limits {
        fuel: Some(5_000),
        log_bytes: Some(64),
        ..Limits::default()
    };
    // Nanoseconds: the store keeps microseconds, and its answer must say so too.
    let later = Utc::now() + chrono::Duration::hours(1) + chrono::Duration::nanoseconds(789);
    let earlier = Utc::now() - chrono::Duration::hours(1) + chrono::Duration::nanoseconds(789);
    let jobs = vec![
        job(&t, "a", b"unpinned"),
        NewJob {
            digest: Some(old.digest.clone()),
            queue: "slow".into(),
            priority: -3,
            ..job(&t, "a", b"pinned to v1")
        },
        NewJob {
            limits: limits.clone(),
            max_attempts: 9,
            run_at: Some(later),
            ..job(&t, "b", &[0, 255])
        },
        NewJob {
            run_at: Some(earlier),
            priority: 4,
            ..job(&t, "b", b"")
        },
        NewJob {
            queue: "slow".into(),
            limits,
            ..job(&t, "a", b"unpinned, other kind")
        },
    ];
    let out = store.enqueue(jobs.clone()).await.expect("mixed batch");
    assert_eq!(out.len(), jobs.len());
    for (e, new) in out.iter().zip(&jobs) {
        assert!(!e.duplicate);
        assert_eq!(e.job.input, new.input, "answers are in input order");
        assert_eq!(
            e.job,
            get(&store, &t, e.job.id).await,
            "the answer is what was stored"
        );
    }
    let digests: Vec<&str> = out.iter().map(|e| e.job.digest.as_str()).collect();
    assert_eq!(
        digests,
        [
            &latest.digest,
            &old.digest,
            &other.digest,
            &other.digest,
            &latest.digest
        ]
    );
    let states: Vec<JobState> = out.iter().map(|e| e.job.state).collect();
    assert_eq!(
        states,
        [
            JobState::Available,
            JobState::Available,
            JobState::Scheduled,
            JobState::Available,
            JobState::Available
        ]
    );
    assert_eq!(
        out[2].job.run_at.timestamp_micros(),
        later.timestamp_micros()
    );
    assert_eq!(
        out[3].job.run_at.timestamp_micros(),
        earlier.timestamp_micros()
    );
    let ids: Vec<i64> = out.iter().map(|e| e.job.id).collect();
    assert!(
        ids.is_sorted_by(|a, b| a < b),
        "ids rise in batch order: {ids:?}"
    );

    // Every job different (a store may split such a batch): still in order, still
    // what is stored.
    let jobs: Vec<NewJob> = (0..150u64)
        .map(|i| NewJob {
            limits: Limits {
                fuel: Some(1_000 + i),
                ..Limits::default()
            },
            ..job(&t, "b", &i.to_le_bytes())
        })
        .collect();
    let out = store
        .enqueue(jobs.clone())
        .await
        .expect("batch of 150 kinds");
    assert_eq!(out.len(), jobs.len());
    for (e, new) in out.iter().zip(&jobs) {
        assert_eq!(e.job.input, new.input, "answers are in input order");
        assert_eq!(e.job, get(&store, &t, e.job.id).await);
    }
    let ids: Vec<i64> = out.iter().map(|e| e.job.id).collect();
    assert!(ids.is_sorted_by(|a, b| a < b), "ids rise in batch order");
}

/// Batch after batch (so a backend's statement cache has settled on one plan), with and
/// without idempotency keys, each answer lines up with its input.
pub async fn repeated_batches_keep_their_order(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "batches", b"batches").await;
    for round in 0..8u32 {
        let keyed = round % 2 == 1;
        let jobs: Vec<NewJob> = (0..1_000u32)
            .map(|i| {
                let input = (round * 1_000 + i).to_le_bytes();
                NewJob {
                    idempotency_key: keyed.then(|| format!("k-{round}-{i}")),
                    ..job(&t, "batches", &input)
                }
            })
            .collect();
        let out = store.enqueue(jobs).await.expect("batch enqueue");
        assert_eq!(out.len(), 1_000, "round {round}");
        for (i, e) in out.iter().enumerate() {
            assert!(!e.duplicate, "round {round}, job {i}");
            assert_eq!(
                e.job.input,
                (round * 1_000 + i as u32).to_le_bytes(),
                "round {round}: answers are in input order"
            );
        }
    }
}

/// A batch of keyless jobs with a few keyed ones among them (one key given twice): every
/// answer is in input order and is what was stored, new jobs' ids rise in batch order,
/// and the key given again answers the job that took it first.
pub async fn keyed_and_keyless_jobs_of_one_batch_keep_their_order(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "mixed", b"mixed").await;
    let key = |i: u32| match i {
        7 | 450 => Some("twice".to_owned()),
        i if i % 100 == 99 => Some(format!("k-{i}")),
        _ => None,
    };
    let jobs: Vec<NewJob> = (0..600u32)
        .map(|i| NewJob {
            idempotency_key: key(i),
            ..job(&t, "mixed", &i.to_le_bytes())
        })
        .collect();
    let out = store.enqueue(jobs.clone()).await.expect("mixed batch");
    assert_eq!(out.len(), jobs.len());
    let mut ids = Vec::new();
    for (i, (e, new)) in out.iter().zip(&jobs).enumerate() {
        if i == 450 {
            assert!(e.duplicate, "the key given again");
            assert_eq!(e.job.id, out[7].job.id);
            assert_eq!(e.job.input, 7u32.to_le_bytes());
            continue;
        }
        assert!(!e.duplicate, "job {i}");
        assert_eq!(
            e.job.input, new.input,
            "job {i}: answers are in input order"
        );
        assert_eq!(e.job.idempotency_key, new.idempotency_key, "job {i}");
        assert_eq!(e.job, get(&store, &t, e.job.id).await, "job {i} as stored");
        ids.push(e.job.id);
    }
    assert!(ids.is_sorted_by(|a, b| a < b), "ids rise in batch order");
    let stored = store
        .count_jobs()
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    assert_eq!(stored, 599, "599 new jobs, one duplicate");
}

/// A key enqueued again returns the first job, marked duplicate, and creates nothing.
pub async fn idempotency_key_across_calls(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "mail", b"mail").await;
    let first = enqueue_one(
        &store,
        NewJob {
            idempotency_key: Some("welcome-42".into()),
            ..job(&t, "mail", b"first")
        },
    )
    .await;
    let again = store
        .enqueue(vec![NewJob {
            idempotency_key: Some("welcome-42".into()),
            ..job(&t, "mail", b"second")
        }])
        .await
        .unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].job.id, first.id);
    assert_eq!(again[0].job.input, b"first");

    // The key is per tenant.
    let other = tenant();
    put(&store, &other, "mail", b"mail").await;
    let theirs = enqueue_one(
        &store,
        NewJob {
            idempotency_key: Some("welcome-42".into()),
            ..job(&other, "mail", b"theirs")
        },
    )
    .await;
    assert_ne!(theirs.id, first.id);
    let page = store.list(&t, &JobFilter::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 1, "no second job was created");
}

/// Inside one batch, the first job with a key wins and later ones are its duplicates.
pub async fn idempotency_key_within_one_batch(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "mail", b"mail").await;
    let existing = enqueue_one(
        &store,
        NewJob {
            idempotency_key: Some("old".into()),
            ..job(&t, "mail", b"old")
        },
    )
    .await;
    let keyed = |key: &str, input: &[u8]| NewJob {
        idempotency_key: Some(key.into()),
        ..job(&t, "mail", input)
    };
    let out = store
        .enqueue(vec![
            keyed("a", b"a1"),
            job(&t, "mail", b"plain1"),
            keyed("a", b"a2"),
            keyed("old", b"old2"),
            keyed("b", b"b1"),
            job(&t, "mail", b"plain2"),
            keyed("a", b"a3"),
        ])
        .await
        .unwrap();
    let dup: Vec<bool> = out.iter().map(|e| e.duplicate).collect();
    assert_eq!(dup, [false, false, true, true, false, false, true]);
    assert_eq!(out[2].job.id, out[0].job.id);
    assert_eq!(out[6].job.id, out[0].job.id);
    assert_eq!(out[2].job.input, b"a1");
    assert_eq!(out[3].job.id, existing.id);
    assert_ne!(
        out[1].job.id, out[5].job.id,
        "jobs without keys never collide"
    );
    let page = store.list(&t, &JobFilter::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 5, "old, a, plain1, b, plain2");
}

/// A job for a module with no version is refused, and so is its whole batch.
pub async fn enqueue_of_unknown_module_fails(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "known", b"known").await;
    let err = store
        .enqueue(vec![job(&t, "known", b""), job(&t, "nope", b"")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::ModuleNotFound {
            module: "nope".into()
        }
    );
    let page = store.list(&t, &JobFilter::default()).await.unwrap();
    assert!(page.jobs.is_empty(), "the batch is one transaction");
    // Another tenant's module of that name does not count.
    let err = store
        .enqueue(vec![job(&tenant(), "known", b"")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ModuleNotFound { .. }), "{err:?}");
}

/// Higher priority first, then the earlier run_at, then the older job.
pub async fn claim_takes_priority_then_run_at(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let now = Utc::now();
    let at = |secs: i64| Some(now - chrono::Duration::seconds(secs));
    let spec = [
        ("low-old", -1i16, at(30)),
        ("mid-new", 0, at(1)),
        ("high-new", 5, at(1)),
        ("mid-old", 0, at(20)),
        ("high-old", 5, at(10)),
    ];
    let jobs = spec
        .iter()
        .map(|(name, priority, run_at)| NewJob {
            queue: "ordered".into(),
            priority: *priority,
            run_at: *run_at,
            ..job(&t, "m", name.as_bytes())
        })
        .collect();
    store.enqueue(jobs).await.unwrap();
    let first = store.claim("ordered", "w1", 2, LEASE).await.unwrap();
    let rest = store.claim("ordered", "w1", 10, LEASE).await.unwrap();
    let order: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|j| String::from_utf8(j.input.clone()).unwrap())
        .collect();
    assert_eq!(
        order,
        ["high-old", "high-new", "mid-old", "mid-new", "low-old"]
    );
    for job in first.iter().chain(&rest) {
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.worker_id.as_deref(), Some("w1"));
        assert!(job.started_at.is_some() && job.lease_expires_at.is_some());
    }
    assert!(
        store
            .claim("other-queue", "w1", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim("ordered", "w1", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A job scheduled a second ahead is not claimable before then, and is after.
pub async fn scheduled_job_waits_for_its_run_at(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let run_at = Utc::now() + chrono::Duration::seconds(1);
    let scheduled = enqueue_one(
        &store,
        NewJob {
            queue: "later".into(),
            run_at: Some(run_at),
            ..job(&t, "m", b"")
        },
    )
    .await;
    assert_eq!(scheduled.state, JobState::Scheduled);
    assert!(
        store
            .claim("later", "w", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let promoted = enqueue_one(
        &store,
        NewJob {
            queue: "promoted".into(),
            run_at: Some(run_at),
            ..job(&t, "m", b"")
        },
    )
    .await;

    let claimed = eventually("the scheduled job to be claimable", || async {
        store.claim("later", "w", 10, LEASE).await.unwrap().pop()
    })
    .await;
    assert_eq!(claimed.id, scheduled.id);
    assert!(Utc::now() >= run_at, "claimed before its run_at");

    // The scheduler makes listings truthful once run_at has passed.
    eventually("the scheduled job to become available", || async {
        store.promote_scheduled().await.unwrap();
        (get(&store, &t, promoted.id).await.state == JobState::Available).then_some(())
    })
    .await;
}

/// Four claimers racing over 2,000 jobs receive every job exactly once.
pub async fn concurrent_claimers_never_share_a_job(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let jobs = (0..2_000u32)
        .map(|i| NewJob {
            queue: "race".into(),
            ..job(&t, "m", &i.to_le_bytes())
        })
        .collect();
    let ids: HashSet<i64> = store
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let worker = format!("worker-{w}");
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim("race", &worker, 50, LEASE).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    let finishes = claimed
                        .iter()
                        .map(|j| Finish::new(j.id, j.attempt, Outcome::Complete { result: vec![] }))
                        .collect();
                    let applied = store.finish(finishes).await.unwrap();
                    assert!(applied.iter().all(|a| *a));
                    mine.extend(claimed.iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for task in tasks {
        for id in task.await.unwrap() {
            *seen.entry(id).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "4 claimers claimed and completed 2000 jobs in {elapsed:?} ({:.0} jobs/s)",
        2_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(seen.len(), 2_000, "every job was claimed");
    assert!(seen.values().all(|n| *n == 1), "no job was claimed twice");
    assert_eq!(seen.keys().copied().collect::<HashSet<_>>(), ids);
}

/// Completing stores the result, usage, log and progress; a second report is refused.
pub async fn finish_complete_records_result_once(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"in")).await;
    let running = claim_one(&store, "default", "w", LEASE).await;
    assert_eq!(running.id, queued.id);
    let report = Finish {
        usage: Usage {
            fuel: 123,
            memory_peak_bytes: 65_536,
            duration_ms: 7,
            ..Usage::default()
        },
        log: "hello\n".into(),
        log_dropped: 3,
        progress: Some(Progress {
            percent: 100,
            note: Some("done".into()),
        }),
        ..Finish::new(
            running.id,
            running.attempt,
            Outcome::Complete {
                result: b"out".to_vec(),
            },
        )
    };
    assert_eq!(store.finish(vec![report.clone()]).await.unwrap(), [true]);
    let done = get(&store, &t, queued.id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result.as_deref(), Some(&b"out"[..]));
    assert_eq!(done.usage, Some(report.usage.clone()));
    assert_eq!(done.log, "hello\n");
    assert_eq!(done.log_dropped, 3);
    assert_eq!(done.progress, report.progress);
    assert!(done.error.is_none() && done.history.is_empty());
    assert!(done.finished_at.is_some());
    assert!(done.worker_id.is_none() && done.lease_expires_at.is_none());

    let again = Finish::new(
        running.id,
        running.attempt,
        Outcome::Complete {
            result: b"other".to_vec(),
        },
    );
    assert_eq!(
        store.finish(vec![again.clone(), again]).await.unwrap(),
        [false, false]
    );
    assert_eq!(get(&store, &t, queued.id).await, done, "completed once");
    assert!(
        store
            .claim("default", "w", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A retried attempt waits for its retry time with its error in the history; a failure is
/// final and adds to the same history.
pub async fn finish_retry_then_fail_keeps_history(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let first = claim_one(&store, "default", "w", LEASE).await;
    let later = Utc::now() + chrono::Duration::hours(1);
    let retry = Outcome::Retry {
        error: JobError::new(ErrorKind::TaskError, "upstream said 503"),
        retry_at: later,
    };
    assert_eq!(
        store
            .finish(vec![Finish::new(first.id, 1, retry)])
            .await
            .unwrap(),
        [true]
    );
    let waiting = get(&store, &t, queued.id).await;
    assert_eq!(waiting.state, JobState::Retryable);
    assert_eq!((waiting.run_at - later).num_milliseconds().abs(), 0);
    assert!(waiting.finished_at.is_none());
    assert_eq!(waiting.error.as_ref().unwrap().kind, ErrorKind::TaskError);
    assert_eq!(waiting.history.len(), 1);
    assert_eq!(waiting.history[0].attempt, 1);
    assert_eq!(waiting.history[0].kind, ErrorKind::TaskError);
    assert_eq!(waiting.history[0].message, "upstream said 503");
    assert!(
        store
            .claim("default", "w", 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "not before its retry time"
    );

    // Another job: retried at once twice, then failed fatally.
    let queued = enqueue_one(
        &store,
        NewJob {
            queue: "flaky".into(),
            ..job(&t, "m", b"")
        },
    )
    .await;
    for attempt in 1..=2 {
        let running = claim_one(&store, "flaky", "w", LEASE).await;
        assert_eq!(running.attempt, attempt);
        let retry = Finish::new(running.id, attempt, retry_now("again"));
        assert_eq!(store.finish(vec![retry]).await.unwrap(), [true]);
    }
    let third = claim_one(&store, "flaky", "w", LEASE).await;
    assert_eq!(third.attempt, 3);
    let fail = Outcome::Fail {
        error: JobError::new(ErrorKind::Trap, "wasm trap: unreachable"),
    };
    assert_eq!(
        store
            .finish(vec![Finish::new(third.id, 3, fail)])
            .await
            .unwrap(),
        [true]
    );
    let failed = get(&store, &t, queued.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        failed.error,
        Some(JobError::new(ErrorKind::Trap, "wasm trap: unreachable"))
    );
    let kinds: Vec<(u32, ErrorKind)> = failed.history.iter().map(|h| (h.attempt, h.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, ErrorKind::TaskError),
            (2, ErrorKind::TaskError),
            (3, ErrorKind::Trap)
        ]
    );
    assert!(failed.finished_at.is_some());
}

/// A report from an attempt that was rescued and re-run elsewhere does not finish the job.
pub async fn finish_of_stale_attempt_is_refused(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let slow = claim_one(&store, "default", "slow", Duration::ZERO).await;
    let report = rescue(&store).await;
    assert_eq!(report.retried, [queued.id]);
    let fast = claim_one(&store, "default", "fast", LEASE).await;
    assert_eq!(fast.attempt, 2);

    let late = Finish::new(
        slow.id,
        slow.attempt,
        Outcome::Complete {
            result: b"late".to_vec(),
        },
    );
    assert_eq!(store.finish(vec![late]).await.unwrap(), [false]);
    let still = get(&store, &t, queued.id).await;
    assert_eq!(still.state, JobState::Running);
    assert_eq!(still.worker_id.as_deref(), Some("fast"));

    let hb = store.heartbeat("slow", &[queued.id], LEASE).await.unwrap();
    assert_eq!(
        hb.lost,
        [queued.id],
        "the slow worker is told it lost the job"
    );

    let on_time = Finish::new(
        fast.id,
        fast.attempt,
        Outcome::Complete {
            result: b"on time".to_vec(),
        },
    );
    assert_eq!(store.finish(vec![on_time]).await.unwrap(), [true]);
    let done = get(&store, &t, queued.id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result.as_deref(), Some(&b"on time"[..]));
    assert_eq!(done.history.len(), 1);
    assert_eq!(done.history[0].kind, ErrorKind::Lost);
    assert_eq!(done.history[0].attempt, 1);
}

/// A job whose worker stopped renewing its lease runs again, and the user sees the lost
/// attempt in its history.
pub async fn expired_lease_is_rescued_as_lost(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let held = claim_one(&store, "default", "kept", LEASE).await;
    let other = enqueue_one(&store, job(&t, "m", b"")).await;
    // Shaped like a default worker id: host name, pid, random suffix.
    claim_one(&store, "default", "db-host-7-4242-beef", Duration::ZERO).await;
    let report = rescue(&store).await;
    assert_eq!(report.retried, [other.id]);
    assert!(report.failed.is_empty() && report.cancelled.is_empty());
    assert_eq!(get(&store, &t, held.id).await.state, JobState::Running);

    let lost = get(&store, &t, other.id).await;
    assert_eq!(lost.state, JobState::Retryable);
    assert_eq!(lost.error.as_ref().unwrap().kind, ErrorKind::Lost);
    assert_eq!(lost.history.len(), 1);
    assert_eq!(lost.history[0].kind, ErrorKind::Lost);
    // The tenant is told what happened, not which host or process held the job.
    for message in [
        &lost.error.as_ref().unwrap().message,
        &lost.history[0].message,
    ] {
        assert!(message.contains("stopped renewing its lease"), "{message}");
        for part in ["db-host", "4242", "beef"] {
            assert!(!message.contains(part), "{message} names the worker");
        }
    }
    assert!(lost.worker_id.is_none());
    let again = claim_one(&store, "default", "w2", LEASE).await;
    assert_eq!((again.id, again.attempt), (other.id, 2));
    assert_ne!(queued.id, other.id);
}

/// A lost job with no attempt left fails with error kind `lost`.
pub async fn exhausted_lost_job_fails_as_lost(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(
        &store,
        NewJob {
            max_attempts: 1,
            ..job(&t, "m", b"")
        },
    )
    .await;
    claim_one(&store, "default", "vanished", Duration::ZERO).await;
    let report = rescue(&store).await;
    assert_eq!(report.failed, [queued.id]);
    let failed = get(&store, &t, queued.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.error.as_ref().unwrap().kind, ErrorKind::Lost);
    assert_eq!(failed.history.len(), 1);
    assert!(failed.finished_at.is_some());
    assert!(
        store
            .claim("default", "w", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(rescue(&store).await.failed.is_empty(), "rescued once");
}

/// A heartbeat keeps a job from being rescued, and only its own worker's heartbeat counts.
pub async fn heartbeat_extends_the_lease(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let running = claim_one(&store, "default", "w", Duration::ZERO).await;
    let stranger = store
        .heartbeat("stranger", &[running.id], LEASE)
        .await
        .unwrap();
    assert_eq!(stranger.lost, [running.id]);
    let hb = store.heartbeat("w", &[running.id], LEASE).await.unwrap();
    assert!(hb.lost.is_empty() && hb.cancel_requested.is_empty());
    let report = rescue(&store).await;
    assert!(report.retried.is_empty(), "a renewed lease is not rescued");
    let job = get(&store, &t, queued.id).await;
    assert_eq!(job.state, JobState::Running);
    assert!(job.lease_expires_at.unwrap() > Utc::now() + chrono::Duration::seconds(30));
}

/// Progress reported by the running attempt is visible; a stale attempt's is not taken.
pub async fn progress_is_visible_while_running(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let running = claim_one(&store, "default", "w", LEASE).await;
    let half = Progress {
        percent: 50,
        note: Some("halfway".into()),
    };
    assert!(
        store
            .set_progress(running.id, 1, half.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        get(&store, &t, queued.id).await.progress,
        Some(half.clone())
    );
    let stale = Progress {
        percent: 99,
        note: None,
    };
    assert!(!store.set_progress(running.id, 2, stale).await.unwrap());
    assert_eq!(get(&store, &t, queued.id).await.progress, Some(half));
}

/// Cancelling a waiting job cancels it at once; another tenant cannot.
pub async fn cancel_waiting_job_is_immediate(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let scheduled = enqueue_one(
        &store,
        NewJob {
            run_at: Some(Utc::now() + chrono::Duration::hours(1)),
            ..job(&t, "m", b"")
        },
    )
    .await;
    assert_eq!(store.cancel("someone-else", queued.id).await.unwrap(), None);
    assert_eq!(get(&store, &t, queued.id).await.state, JobState::Available);
    for id in [queued.id, scheduled.id] {
        let cancelled = store.cancel(&t, id).await.unwrap().unwrap();
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert_eq!(cancelled.error.as_ref().unwrap().kind, ErrorKind::Cancelled);
        assert!(cancelled.finished_at.is_some());
        let again = store.cancel(&t, id).await.unwrap().unwrap();
        assert_eq!(again, cancelled, "cancelling twice changes nothing");
    }
    assert!(
        store
            .claim("default", "w", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.cancel(&t, queued.id + 1_000_000).await.unwrap(), None);

    // A finished job is returned as it is.
    let other = enqueue_one(&store, job(&t, "m", b"")).await;
    let running = claim_one(&store, "default", "w", LEASE).await;
    let complete = Outcome::Complete { result: vec![1] };
    store
        .finish(vec![Finish::new(running.id, 1, complete)])
        .await
        .unwrap();
    let completed = store.cancel(&t, other.id).await.unwrap().unwrap();
    assert_eq!(completed.state, JobState::Completed);
    assert_eq!(completed.result, Some(vec![1]));
}

/// Cancelling a running job asks its worker (heartbeat and event) to stop it.
pub async fn cancel_running_job_is_requested(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let running = claim_one(&store, "default", "w", LEASE).await;
    let mut events = store.subscribe();
    let requested = store.cancel(&t, queued.id).await.unwrap().unwrap();
    assert_eq!(requested.state, JobState::Running);
    assert!(requested.cancel_requested);
    expect_event(&mut events, "CancelRequested", |e| {
        *e == StoreEvent::CancelRequested { id: queued.id }
    })
    .await;
    let hb = store.heartbeat("w", &[running.id], LEASE).await.unwrap();
    assert_eq!(hb.cancel_requested, [running.id]);
    assert_eq!(
        store
            .finish(vec![Finish::new(running.id, 1, Outcome::Cancelled)])
            .await
            .unwrap(),
        [true]
    );
    let cancelled = get(&store, &t, queued.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.error.as_ref().unwrap().kind, ErrorKind::Cancelled);
    assert_eq!(cancelled.history.last().unwrap().kind, ErrorKind::Cancelled);

    // A cancelled job whose worker vanished is cancelled by the rescuer, not retried.
    let second = enqueue_one(&store, job(&t, "m", b"")).await;
    claim_one(&store, "default", "gone-host-4242", Duration::ZERO).await;
    store.cancel(&t, second.id).await.unwrap();
    assert_eq!(rescue(&store).await.cancelled, [second.id]);
    let cancelled = get(&store, &t, second.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    let message = &cancelled.error.as_ref().unwrap().message;
    assert!(message.contains("vanished"), "{message}");
    assert!(
        !message.contains("gone-host") && !message.contains("4242"),
        "{message}"
    );
}

/// Prune deletes finished jobs older than asked, and nothing else.
pub async fn prune_removes_only_old_finished_jobs(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(enqueue_one(&store, job(&t, "m", b"")).await.id);
    }
    let (completed, failed, cancelled, waiting) = (ids[0], ids[1], ids[2], ids[3]);
    let running = enqueue_one(
        &store,
        NewJob {
            queue: "busy".into(),
            ..job(&t, "m", b"")
        },
    )
    .await;
    let claimed = store.claim("default", "w", 2, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    claim_one(&store, "busy", "w", LEASE).await;
    store
        .finish(vec![
            Finish::new(completed, 1, Outcome::Complete { result: vec![] }),
            Finish::new(
                failed,
                1,
                Outcome::Fail {
                    error: JobError::new(ErrorKind::Timeout, "30s"),
                },
            ),
        ])
        .await
        .unwrap();
    store.cancel(&t, cancelled).await.unwrap();

    assert_eq!(store.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(
        store
            .list(&t, &JobFilter::default())
            .await
            .unwrap()
            .jobs
            .len(),
        5
    );
    eventually("prune to delete the three finished jobs", || async {
        (store.prune(Duration::ZERO).await.unwrap() > 0).then_some(())
    })
    .await;
    let left: HashSet<i64> = store
        .list(&t, &JobFilter::default())
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, HashSet::from([waiting, running.id]));
    for id in [completed, failed, cancelled] {
        assert_eq!(store.get(&t, id).await.unwrap(), None);
    }
}

/// Every job of `tenant`, listed `limit` at a time by following the cursor.
async fn list_all(store: &Arc<dyn Store>, tenant: &str, limit: u32) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let filter = JobFilter {
            limit,
            cursor,
            ..JobFilter::default()
        };
        let page = store.list(tenant, &filter).await.unwrap();
        assert!(page.jobs.len() <= limit as usize);
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return jobs,
        }
    }
}

/// Listings are newest first, filter by state, module and queue, and page by cursor.
pub async fn list_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "a", b"a").await;
    put(&store, &t, "b", b"b").await;
    let jobs = (0..25)
        .map(|i| NewJob {
            queue: if i % 2 == 0 { "even" } else { "odd" }.into(),
            ..job(&t, if i % 5 == 0 { "b" } else { "a" }, &[i])
        })
        .collect();
    let all: Vec<i64> = store
        .enqueue(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();
    let running = store.claim("odd", "w", 3, LEASE).await.unwrap();

    let paged = list_all(&store, &t, 10).await;
    let mut newest_first = all.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(paged.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);

    let list = |filter: JobFilter| {
        let store = store.clone();
        let t = t.clone();
        async move { store.list(&t, &filter).await.unwrap().jobs }
    };
    let by_module = list(JobFilter {
        module: Some("b".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(by_module.len(), 5);
    assert!(by_module.iter().all(|j| j.module == "b"));
    let by_queue = list(JobFilter {
        queue: Some("even".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(by_queue.len(), 13);
    assert!(by_queue.iter().all(|j| j.queue == "even"));
    let by_state = list(JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    })
    .await;
    let mut running_ids: Vec<i64> = running.iter().map(|j| j.id).collect();
    running_ids.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        by_state.iter().map(|j| j.id).collect::<Vec<_>>(),
        running_ids
    );
    // Finished jobs, by state (stores may index some states and not others).
    store
        .finish(vec![
            Finish::new(
                running[0].id,
                running[0].attempt,
                Outcome::Complete { result: vec![] },
            ),
            Finish::new(
                running[1].id,
                running[1].attempt,
                Outcome::Fail {
                    error: JobError::new(ErrorKind::Trap, "boom"),
                },
            ),
        ])
        .await
        .unwrap();
    for (state, id) in [
        (JobState::Completed, running[0].id),
        (JobState::Failed, running[1].id),
        (JobState::Running, running[2].id),
    ] {
        let ids: Vec<i64> = list(JobFilter {
            state: Some(state),
            ..JobFilter::default()
        })
        .await
        .iter()
        .map(|j| j.id)
        .collect();
        assert_eq!(ids, [id], "listing {state:?} jobs");
    }
    let combined = list(JobFilter {
        state: Some(JobState::Available),
        module: Some("a".into()),
        queue: Some("odd".into()),
        ..JobFilter::default()
    })
    .await;
    assert!(
        combined
            .iter()
            .all(|j| j.state == JobState::Available && j.module == "a" && j.queue == "odd")
    );
    let running_a = running.iter().filter(|j| j.module == "a").count();
    assert_eq!(
        combined.len(),
        10 - running_a,
        "odd jobs of module a, less the claimed ones"
    );
    // Four states now (available, running, completed, failed): pages of three still come
    // newest first across them, and a filter applies in every state.
    let paged = list_all(&store, &t, 3).await;
    assert_eq!(paged.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);
    let states: HashSet<JobState> = paged.iter().map(|j| j.state).collect();
    assert_eq!(states.len(), 4, "{states:?}");
    let odd_ids: Vec<i64> = list(JobFilter {
        queue: Some("odd".into()),
        ..JobFilter::default()
    })
    .await
    .iter()
    .map(|j| j.id)
    .collect();
    let mut expected: Vec<i64> = all.iter().skip(1).step_by(2).copied().collect();
    expected.reverse();
    assert_eq!(odd_ids, expected, "odd jobs in every state, newest first");
    assert!(
        store
            .list("someone-else", &JobFilter::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}

/// The same bytes again keep the version; new bytes make version 2; bytes by digest.
pub async fn module_versions_and_bytes(store: Arc<dyn Store>) {
    let t = tenant();
    let v1 = store
        .put_module(NewModule {
            tenant: t.clone(),
            name: "thumb".into(),
            kind: ModuleKind::Component,
            digest: sha256_hex(b"one"),
            bytes: b"one".to_vec(),
            limits: Limits {
                fuel: Some(10),
                ..Limits::default()
            },
        })
        .await
        .unwrap();
    assert!(v1.created);
    assert_eq!(v1.module.version, 1);
    assert_eq!(v1.module.size, 3);
    assert_eq!(v1.module.limits.fuel, Some(10));
    let same = store
        .put_module(NewModule {
            tenant: t.clone(),
            name: "thumb".into(),
            kind: ModuleKind::Component,
            digest: sha256_hex(b"one"),
            bytes: b"one".to_vec(),
            limits: v1.module.limits.clone(),
        })
        .await
        .unwrap();
    assert!(!same.created);
    assert_eq!(same.module, v1.module);
    let v2 = put(&store, &t, "thumb", b"two!").await;
    assert_eq!(v2.version, 2);
    assert_eq!(
        store.get_module(&t, "thumb").await.unwrap(),
        Some(v2.clone())
    );
    let versions: Vec<u32> = store
        .module_versions(&t, "thumb")
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [2, 1]);
    put(&store, &t, "another", b"one").await;
    let names: Vec<(String, u32)> = store
        .list_modules(&t)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.version))
        .collect();
    assert_eq!(names, [("another".into(), 1), ("thumb".into(), 2)]);
    assert_eq!(
        store
            .module_bytes(&v1.module.digest)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        store.module_bytes(&v2.digest).await.unwrap().as_deref(),
        Some(&b"two!"[..])
    );
    assert_eq!(
        store.module_bytes(&sha256_hex(b"none")).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_module("someone-else", "thumb").await.unwrap(),
        None
    );

    let wrong = store
        .put_module(NewModule {
            tenant: t.clone(),
            name: "thumb".into(),
            kind: ModuleKind::Command,
            digest: sha256_hex(b"not these bytes"),
            bytes: b"three".to_vec(),
            limits: Limits::default(),
        })
        .await;
    assert!(matches!(wrong, Err(StoreError::Invalid(_))), "{wrong:?}");
    assert_eq!(store.get_module(&t, "thumb").await.unwrap(), Some(v2));
}

/// Deleting a module keeps its bytes for jobs that still wait for them.
pub async fn deleted_module_keeps_bytes_for_waiting_jobs(store: Arc<dyn Store>) {
    let t = tenant();
    let module = put(&store, &t, "gone", b"gone soon").await;
    let queued = enqueue_one(&store, job(&t, "gone", b"")).await;
    store.delete_module(&t, "gone").await.unwrap();
    assert_eq!(store.get_module(&t, "gone").await.unwrap(), None);
    assert!(store.module_versions(&t, "gone").await.unwrap().is_empty());
    assert_eq!(
        store.delete_module(&t, "gone").await,
        Err(StoreError::NotFound)
    );
    let err = store.enqueue(vec![job(&t, "gone", b"")]).await.unwrap_err();
    assert!(matches!(err, StoreError::ModuleNotFound { .. }), "{err:?}");

    let running = claim_one(&store, "default", "w", LEASE).await;
    assert_eq!(running.digest, module.digest);
    assert_eq!(
        store
            .module_bytes(&running.digest)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"gone soon"[..]),
        "a pinned job still runs"
    );
    store
        .finish(vec![Finish::new(
            queued.id,
            1,
            Outcome::Complete { result: vec![] },
        )])
        .await
        .unwrap();
    eventually("prune to remove the finished job", || async {
        (store.prune(Duration::ZERO).await.unwrap() > 0).then_some(())
    })
    .await;
    assert_eq!(store.module_bytes(&module.digest).await.unwrap(), None);
}

/// Subscribers hear of available jobs (idle workers wake) and finished ones (long-polls).
pub async fn subscribers_hear_enqueues_and_finishes(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let mut events = store.subscribe();
    let queued = enqueue_one(
        &store,
        NewJob {
            queue: "wake-me".into(),
            ..job(&t, "m", b"")
        },
    )
    .await;
    expect_event(&mut events, "JobsAvailable", |e| {
        *e == StoreEvent::JobsAvailable {
            queue: "wake-me".into(),
        }
    })
    .await;
    let running = claim_one(&store, "wake-me", "w", LEASE).await;
    store
        .finish(vec![Finish::new(
            running.id,
            1,
            Outcome::Complete { result: vec![] },
        )])
        .await
        .unwrap();
    expect_event(
        &mut events,
        "JobsFinished",
        |e| matches!(e, StoreEvent::JobsFinished { ids } if ids.contains(&queued.id)),
    )
    .await;
}

/// A created key authenticates as its tenant with its scopes until it is revoked.
pub async fn keys_authenticate_until_revoked(store: Arc<dyn Store>) {
    let t = tenant();
    let key = store
        .create_key(&t, Some("ci"), &[Scope::JobsRead, Scope::JobsWrite])
        .await
        .unwrap();
    assert!(
        key.key.starts_with(&format!("wq_{}_", key.id)),
        "{}",
        key.key
    );
    let who = store
        .authenticate(&key.key)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(who.tenant, t);
    assert_eq!(who.key_id, key.id);
    let mut scopes = who.scopes.clone();
    scopes.sort();
    assert_eq!(scopes, vec![Scope::JobsWrite, Scope::JobsRead]);
    assert!(who.allows(Scope::JobsRead));
    assert!(!who.allows(Scope::ModulesWrite));

    assert!(
        !store.revoke_key("someone-else", &key.id).await.unwrap(),
        "only its tenant may revoke it"
    );
    assert!(store.authenticate(&key.key).await.unwrap().is_some());
    assert!(store.revoke_key(&t, &key.id).await.unwrap());
    assert!(
        store.authenticate(&key.key).await.unwrap().is_none(),
        "revoked"
    );
    assert!(
        !store.revoke_key(&t, &key.id).await.unwrap(),
        "already revoked"
    );
}

/// A key with a wrong secret, a malformed key, or an unknown id authenticates nobody;
/// bad tenants and empty scopes are refused.
pub async fn keys_are_checked_whole_and_per_tenant(store: Arc<dyn Store>) {
    let t = tenant();
    let key = store.create_key(&t, None, &[Scope::Admin]).await.unwrap();
    let other = store
        .create_key(&tenant(), None, &[Scope::Admin])
        .await
        .unwrap();
    let mut forged = key.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert!(store.authenticate(&forged).await.unwrap().is_none());
    // The id of one key with the secret of another.
    let secret = other.key.rsplit('_').next().unwrap();
    let mixed = format!("wq_{}_{secret}", key.id);
    assert!(store.authenticate(&mixed).await.unwrap().is_none());
    for junk in ["", "wq_", "Bearer x", "wq_zz_zz", &key.id] {
        assert!(store.authenticate(junk).await.unwrap().is_none(), "{junk}");
    }
    assert!(matches!(
        store.create_key(&t, None, &[]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_key("Not A Tenant", None, &[Scope::Admin])
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_ne!(key.key, other.key);
}

/// `count_jobs` tells how many jobs each queue holds in each state.
pub async fn count_jobs_by_queue_and_state(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    for queue in ["count-a", "count-a", "count-b"] {
        enqueue_one(
            &store,
            NewJob {
                queue: queue.into(),
                ..job(&t, "m", b"")
            },
        )
        .await;
    }
    claim_one(&store, "count-b", "w", LEASE).await;
    let counts: HashMap<(String, JobState), u64> = store
        .count_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|c| ((c.queue, c.state), c.count))
        .collect();
    assert_eq!(
        counts.get(&("count-a".into(), JobState::Available)),
        Some(&2)
    );
    assert_eq!(counts.get(&("count-b".into(), JobState::Running)), Some(&1));
    assert_eq!(counts.get(&("count-b".into(), JobState::Available)), None);
}

/// A worker loop (here the test itself) registered with the store's hand-off and offering
/// a slot is given a lone due job of its queue, and only that one: the next finds the slot
/// taken and waits for a claim. Whether the job comes stored (running, attempt 1, for the
/// taker's worker) or to be run ahead (its report then stored with it) is the store's
/// choice; either way the job ends up as the taker reported it.
pub async fn a_handed_job_reaches_its_taker_once(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let (taker, mut handed) = handoff.register("handed", "taker-1", Duration::from_secs(30));
    taker.offer(1);
    let new = |input: &[u8]| NewJob {
        queue: "handed".into(),
        ..job(&t, "m", input)
    };
    let enqueue = {
        let store = store.clone();
        let new = new(b"first");
        tokio::spawn(async move { enqueue_one(&store, new).await })
    };
    let got = tokio::time::timeout(Duration::from_secs(10), handed.recv())
        .await
        .expect("the job is handed over")
        .expect("the taker is registered");
    assert_eq!(got.job.input, b"first");
    assert_eq!((got.job.state, got.job.attempt), (JobState::Running, 1));
    assert_eq!(got.job.worker_id.as_deref(), Some("taker-1"));
    let done = Outcome::Complete {
        result: b"ok".to_vec(),
    };
    let id = got.job.id;
    let answered = report_handed(&store, got, enqueue, done).await;
    assert_eq!(answered.id, id);
    let stored = store.get(&t, id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Completed);
    assert_eq!(stored.attempt, 1);
    assert_eq!(stored.result.as_deref(), Some(&b"ok"[..]));

    // The one offered slot is taken: the next job waits for a claim.
    let second = enqueue_one(&store, new(b"second")).await;
    assert_eq!((second.state, second.attempt), (JobState::Available, 0));
    assert!(handed.try_recv().is_err(), "nothing else was handed over");
    let claimed = store
        .claim("handed", "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![second.id]
    );
}

/// Reports `outcome` for the handed job `got` as its taker would, and returns the answer
/// of its `enqueue`. Run ahead, the report goes back to the enqueue, which stores it with
/// the job; or, if the enqueue stopped waiting, it stored the job running and says so,
/// and the report goes to the store as a claimed job's.
pub(crate) async fn report_handed(
    store: &Arc<dyn Store>,
    got: Handed,
    enqueue: tokio::task::JoinHandle<Job>,
    outcome: Outcome,
) -> Job {
    let report = Finish::new(got.job.id, 1, outcome);
    let report = match got.ahead {
        Some(ahead) => match ahead.report.send(report) {
            Ok(()) => return enqueue.await.unwrap(),
            Err(report) => {
                assert_eq!(ahead.committed.await, Ok(true), "stored running");
                report
            }
        },
        None => report,
    };
    let answered = enqueue.await.unwrap();
    assert_eq!(answered.state, JobState::Running);
    assert_eq!(store.finish(vec![report]).await.unwrap(), vec![true]);
    answered
}

/// A job handed to a taker that has gone away (its loop stopped, the receiver dropped)
/// is not lost: it waits in its queue, its attempt not counted, for any worker's claim.
pub async fn a_job_for_a_taker_that_went_away_waits_for_a_claim(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let (taker, handed) = handoff.register("gone", "taker-2", Duration::from_secs(30));
    taker.offer(1);
    drop(handed);
    let e = enqueue_one(
        &store,
        NewJob {
            queue: "gone".into(),
            ..job(&t, "m", b"x")
        },
    )
    .await;
    let stored = store.get(&t, e.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.attempt), (JobState::Available, 0));
    assert!(stored.worker_id.is_none());
    let claimed = store
        .claim("gone", "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![e.id]);
    drop(taker);
}
