//! Conformance cases for queue control: a failed or cancelled job run again.

use std::sync::Arc;

use wasmq_host::queue::{ErrorKind, Finish, JobError, JobState, Outcome, Store, StoreEvent};

use super::{LEASE, claim_one, enqueue_one, expect_event, get, job, put, tenant};

/// A failed job retried is available at once with no attempts counted and its history
/// kept, and runs again; a cancelled one too; a job in any other state, another tenant's
/// or an unknown one is left alone.
pub async fn a_failed_or_cancelled_job_is_retried_once_more(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"in")).await;
    let running = claim_one(&store, "default", "w", LEASE).await;
    assert!(
        store.retry(&t, running.id).await.unwrap().is_none(),
        "running: not retried"
    );
    let fail = Outcome::Fail {
        error: JobError::new(ErrorKind::TaskError, "no"),
    };
    store
        .finish(vec![Finish::new(running.id, 1, fail)])
        .await
        .unwrap();
    assert!(
        store.retry(&other, queued.id).await.unwrap().is_none(),
        "another tenant's"
    );
    assert!(
        store.retry(&t, queued.id + 1000).await.unwrap().is_none(),
        "unknown"
    );

    let mut events = store.subscribe();
    let again = store
        .retry(&t, queued.id)
        .await
        .unwrap()
        .expect("a failed job is retried");
    assert_eq!((again.state, again.attempt), (JobState::Available, 0));
    assert!(again.error.is_none() && again.finished_at.is_none());
    assert_eq!(
        again.history.len(),
        get(&store, &t, queued.id).await.history.len()
    );
    assert!(
        !again.history.is_empty(),
        "the failure is kept in the history"
    );
    expect_event(&mut events, "JobsAvailable", |e| {
        *e == StoreEvent::JobsAvailable {
            queue: "default".into(),
        }
    })
    .await;
    assert!(
        store.retry(&t, queued.id).await.unwrap().is_none(),
        "available: not again"
    );
    let rerun = claim_one(&store, "default", "w", LEASE).await;
    assert_eq!((rerun.id, rerun.attempt), (queued.id, 1));

    let waiting = enqueue_one(&store, job(&t, "m", b"")).await;
    store.cancel(&t, waiting.id).await.unwrap();
    let back = store
        .retry(&t, waiting.id)
        .await
        .unwrap()
        .expect("a cancelled job is retried");
    assert_eq!(back.state, JobState::Available);
}
