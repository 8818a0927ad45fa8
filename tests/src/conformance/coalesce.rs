//! Conformance cases for coalescing (debounce): one waiting job per tenant and key,
//! taking the latest enqueue's input, until it starts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use wasmq_host::queue::{
    Coalesce, ErrorKind, Finish, JobError, JobFilter, JobState, NewJob, Outcome, Store, StoreError,
};

use super::{LEASE, eventually, get, job, put, tenant};

const MINUTE: Duration = Duration::from_secs(60);

/// A job of module `m` in queue `q` with `input`, coalescing under `key`.
fn keyed(t: &str, key: &str, input: &[u8], window: Duration, max: Option<Duration>) -> NewJob {
    NewJob {
        queue: "q".into(),
        coalesce: Some(Coalesce {
            key: key.into(),
            window,
            max,
        }),
        ..job(t, "m", input)
    }
}

async fn jobs_of(store: &Arc<dyn Store>, t: &str) -> Vec<wasmq_host::queue::Job> {
    store
        .list(t, &JobFilter::default())
        .await
        .expect("list")
        .jobs
}

/// Claims the job of queue `q` once its run time has come.
async fn claim_when_due(store: &Arc<dyn Store>) -> wasmq_host::queue::Job {
    eventually("the coalesced job to be due", || async {
        store.claim("q", "w", 1, LEASE).await.expect("claim").pop()
    })
    .await
}

/// The first enqueue of a key makes a job that waits its window: scheduled, not
/// claimable now. The next one, before it starts, updates that job (input, priority)
/// and moves its run time, and adds none.
pub async fn a_coalesce_key_gathers_enqueues_into_one_waiting_job(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let before = Utc::now();
    let first = store
        .enqueue(vec![keyed(&t, "page:7", b"\"v1\"", MINUTE, None)])
        .await
        .unwrap()
        .remove(0);
    assert!(!first.coalesced && !first.duplicate);
    assert_eq!(first.job.state, JobState::Scheduled);
    assert!(first.job.run_at >= before + MINUTE - chrono::Duration::seconds(5));
    assert!(
        store.claim("q", "w", 10, LEASE).await.unwrap().is_empty(),
        "a coalescing job waits its window"
    );

    let second = store
        .enqueue(vec![NewJob {
            priority: 5,
            ..keyed(&t, "page:7", b"\"v2\"", 2 * MINUTE, None)
        }])
        .await
        .unwrap()
        .remove(0);
    assert!(second.coalesced && !second.duplicate);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.job.input, b"\"v2\"");
    assert_eq!(second.job.priority, 5);
    assert!(second.job.run_at > first.job.run_at, "the run time moved");
    let stored = get(&store, &t, first.job.id).await;
    assert_eq!(
        (stored.input.as_slice(), stored.state),
        (&b"\"v2\""[..], JobState::Scheduled)
    );
    assert_eq!(jobs_of(&store, &t).await.len(), 1);
}

/// `max` caps the run time at the first enqueue plus `max`, however long later windows
/// are; once the cap has passed, the next enqueue makes the job due at once.
pub async fn a_coalesced_job_never_runs_later_than_its_cap(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let cap = Duration::from_secs(90);
    let first = store
        .enqueue(vec![keyed(&t, "k", b"1", MINUTE, Some(cap))])
        .await
        .unwrap()
        .remove(0)
        .job;
    let later = store
        .enqueue(vec![keyed(&t, "k", b"2", Duration::from_secs(3600), None)])
        .await
        .unwrap()
        .remove(0);
    assert!(later.coalesced);
    let limit = first.created_at + cap;
    assert!(
        later.job.run_at <= limit + chrono::Duration::milliseconds(1),
        "run_at {} is past the cap {limit}",
        later.job.run_at
    );

    // A cap of a few milliseconds: passed by the second enqueue, which makes it due.
    let short = Duration::from_millis(20);
    let first = store
        .enqueue(vec![keyed(&t, "short", b"1", short, Some(short))])
        .await
        .unwrap()
        .remove(0)
        .job;
    let until = first.created_at + short;
    eventually("the cap to pass", || async {
        (Utc::now() > until).then_some(())
    })
    .await;
    let due = store
        .enqueue(vec![keyed(&t, "short", b"2", MINUTE, None)])
        .await
        .unwrap()
        .remove(0);
    assert!(due.coalesced);
    assert_eq!(due.job.state, JobState::Available);
    assert!(due.job.run_at <= until + chrono::Duration::milliseconds(1));
    let claimed = claim_when_due(&store).await;
    assert_eq!(
        (claimed.id, claimed.input.as_slice()),
        (first.id, &b"2"[..])
    );
}

/// Once its job has started, a key makes a new job; keys are per tenant.
pub async fn a_started_job_gathers_no_more_enqueues(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    put(&store, &other, "m", b"m").await;
    let window = Duration::from_millis(1);
    let first = store
        .enqueue(vec![keyed(&t, "k", b"1", window, None)])
        .await
        .unwrap()
        .remove(0)
        .job;
    let claimed = claim_when_due(&store).await;
    assert_eq!(claimed.id, first.id);
    let next = store
        .enqueue(vec![keyed(&t, "k", b"2", MINUTE, None)])
        .await
        .unwrap()
        .remove(0);
    assert!(!next.coalesced);
    assert_ne!(next.job.id, first.id);
    assert_eq!(next.job.state, JobState::Scheduled);
    assert_eq!(
        get(&store, &t, first.id).await.input,
        b"1",
        "the running job is left alone"
    );

    let theirs = store
        .enqueue(vec![keyed(&other, "k", b"3", MINUTE, None)])
        .await
        .unwrap()
        .remove(0);
    assert!(!theirs.coalesced, "another tenant's key is another key");
    assert_eq!(jobs_of(&store, &other).await.len(), 1);
}

/// A failed job of a key, retried, runs as itself: the key's newer waiting job still
/// gathers the enqueues.
pub async fn a_retried_coalesced_job_leaves_the_key_to_the_waiting_one(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let window = Duration::from_millis(1);
    let old = store
        .enqueue(vec![keyed(&t, "k", b"old", window, None)])
        .await
        .unwrap()
        .remove(0)
        .job;
    let claimed = claim_when_due(&store).await;
    let fail = Outcome::Fail {
        error: JobError::new(ErrorKind::TaskError, "no"),
    };
    store
        .finish(vec![Finish::new(claimed.id, 1, fail)])
        .await
        .unwrap();
    let waiting = store
        .enqueue(vec![keyed(&t, "k", b"new", MINUTE, None)])
        .await
        .unwrap()
        .remove(0)
        .job;
    let again = store.retry(&t, old.id).await.unwrap().expect("retried");
    assert_eq!(again.state, JobState::Available);
    let next = store
        .enqueue(vec![keyed(&t, "k", b"newer", MINUTE, None)])
        .await
        .unwrap()
        .remove(0);
    assert!(next.coalesced);
    assert_eq!(next.job.id, waiting.id);
    assert_eq!(get(&store, &t, old.id).await.input, b"old");
}

/// In a batch, items of one key coalesce with each other (the last wins) and with a
/// waiting job; the answer marks every item that did not make a job.
pub async fn coalesce_keys_within_and_across_batches(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let answers = store
        .enqueue(vec![
            keyed(&t, "a", b"1", MINUTE, None),
            job(&t, "m", b"plain"),
            keyed(&t, "a", b"2", MINUTE, None),
            keyed(&t, "b", b"3", MINUTE, None),
        ])
        .await
        .unwrap();
    let marks: Vec<bool> = answers.iter().map(|e| e.coalesced).collect();
    assert_eq!(marks, [false, false, true, false]);
    assert_eq!(answers[0].job.id, answers[2].job.id);
    let ids: HashSet<i64> = answers.iter().map(|e| e.job.id).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(get(&store, &t, answers[0].job.id).await.input, b"2");

    let again = store
        .enqueue(vec![
            keyed(&t, "b", b"4", MINUTE, None),
            keyed(&t, "c", b"5", MINUTE, None),
        ])
        .await
        .unwrap();
    assert!(again[0].coalesced && !again[1].coalesced);
    assert_eq!(again[0].job.id, answers[3].job.id);
    assert_eq!(get(&store, &t, answers[3].job.id).await.input, b"4");
    assert_eq!(jobs_of(&store, &t).await.len(), 4);
}

/// A key with an idempotency key or a run time, or a window out of bounds, is refused
/// and nothing of the batch is stored.
pub async fn a_coalesce_key_refuses_what_has_no_meaning_beside_it(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let bad = [
        NewJob {
            idempotency_key: Some("i".into()),
            ..keyed(&t, "k", b"1", MINUTE, None)
        },
        NewJob {
            run_at: Some(Utc::now()),
            ..keyed(&t, "k", b"1", MINUTE, None)
        },
        keyed(&t, "k", b"1", Duration::ZERO, None),
        keyed(&t, "k", b"1", MINUTE, Some(Duration::from_secs(1))),
        keyed(&t, "", b"1", MINUTE, None),
    ];
    for new in bad {
        let refused = store.enqueue(vec![job(&t, "m", b"ok"), new]).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
    }
    assert!(jobs_of(&store, &t).await.is_empty());
}

/// Many enqueues of one key at once leave one job, whose input is one of theirs; every
/// answer names it and exactly one made it.
pub async fn concurrent_enqueues_of_a_key_make_one_job(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            let new = keyed(&t, "hot", format!("{i}").as_bytes(), MINUTE, None);
            tokio::spawn(async move { store.enqueue(vec![new]).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().expect("enqueue").remove(0));
    }
    let ids: HashSet<i64> = answers.iter().map(|e| e.job.id).collect();
    assert_eq!(ids.len(), 1, "one job for the key");
    assert_eq!(answers.iter().filter(|e| !e.coalesced).count(), 1);
    let stored = jobs_of(&store, &t).await;
    assert_eq!(stored.len(), 1);
    let input: u32 = std::str::from_utf8(&stored[0].input)
        .unwrap()
        .parse()
        .unwrap();
    assert!(input < 24, "the input is one that was sent");
}
