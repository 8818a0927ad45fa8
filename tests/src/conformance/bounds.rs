//! Conformance cases for what a store bounds or leaves out: error messages and histories
//! that a guest can make long, listings that must not read whole rows, the long-poll's
//! look at a job's state.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use wasmq_host::queue::{
    ErrorKind, Finish, JobError, JobFilter, JobState, MAX_HISTORY, NewJob, Outcome, Progress, Store,
};
use wasmq_host::text::MAX_MESSAGE_BYTES;

use super::{
    LEASE, claim_one, declared_handoff, enqueue_one, get, job, put, report_handed, rescue,
    retry_now, tenant,
};

/// About a megabyte of text in three-byte chars, so most cut points fall inside one.
fn huge_message() -> String {
    "€".repeat(350_000)
}

/// `message` is the start of `original`, cut to at most [`MAX_MESSAGE_BYTES`] with a note.
fn assert_cut(message: &str, original: &str) {
    assert!(
        message.len() <= MAX_MESSAGE_BYTES,
        "{} bytes",
        message.len()
    );
    let (kept, note) = message.split_once('…').expect("a note says it was cut");
    assert!(kept.len() > MAX_MESSAGE_BYTES / 2, "the start is kept");
    assert!(original.starts_with(kept));
    assert!(note.ends_with("bytes cut]"), "{note}");
}

/// A guest's megabyte of error text, failed for good or retried, is stored cut to a few
/// KiB with a note, in the error and in the history.
pub async fn a_huge_error_message_is_stored_cut(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let huge = huge_message();
    let failed = enqueue_one(&store, job(&t, "m", b"")).await;
    let retried = enqueue_one(
        &store,
        NewJob {
            queue: "again".into(),
            ..job(&t, "m", b"")
        },
    )
    .await;
    claim_one(&store, "default", "w", LEASE).await;
    claim_one(&store, "again", "w", LEASE).await;
    let fail = Outcome::Fail {
        error: JobError::new(ErrorKind::TaskError, huge.clone()),
    };
    let retry = Outcome::Retry {
        error: JobError::new(ErrorKind::Trap, huge.clone()),
        retry_at: Utc::now() + chrono::Duration::hours(1),
    };
    let reports = vec![
        Finish::new(failed.id, 1, fail),
        Finish::new(retried.id, 1, retry),
    ];
    assert_eq!(store.finish(reports).await.unwrap(), [true, true]);
    for (id, state) in [
        (failed.id, JobState::Failed),
        (retried.id, JobState::Retryable),
    ] {
        let stored = get(&store, &t, id).await;
        assert_eq!(stored.state, state);
        assert_cut(&stored.error.expect("an error").message, &huge);
        assert_eq!(stored.history.len(), 1);
        assert_cut(&stored.history[0].message, &huge);
    }
}

/// A job that fails 100 times (once lost) keeps its first failure and the latest ones, at
/// most [`MAX_HISTORY`] in all.
pub async fn a_job_retried_100_times_keeps_a_bounded_history(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(
        &store,
        NewJob {
            max_attempts: 100,
            ..job(&t, "m", b"")
        },
    )
    .await;
    for attempt in 1..=100u32 {
        // Attempt 50 is lost: the rescuer's entry is bounded too.
        let lease = if attempt == 50 { Duration::ZERO } else { LEASE };
        let running = claim_one(&store, "default", "w", lease).await;
        assert_eq!(running.attempt, attempt);
        if attempt == 50 {
            assert_eq!(rescue(&store).await.retried, [queued.id]);
            continue;
        }
        let outcome = if attempt == 100 {
            Outcome::Fail {
                error: JobError::new(ErrorKind::Trap, "the last straw"),
            }
        } else {
            retry_now(&format!("attempt {attempt} failed"))
        };
        let report = Finish::new(queued.id, attempt, outcome);
        assert_eq!(store.finish(vec![report]).await.unwrap(), [true]);
    }
    let failed = get(&store, &t, queued.id).await;
    assert_eq!((failed.state, failed.attempt), (JobState::Failed, 100));
    let attempts: Vec<u32> = failed.history.iter().map(|h| h.attempt).collect();
    let latest = 100 - (MAX_HISTORY as u32 - 1) + 1..=100;
    let expected: Vec<u32> = std::iter::once(1).chain(latest).collect();
    assert_eq!(attempts, expected, "the first failure and the latest");
    assert_eq!(failed.history[0].message, "attempt 1 failed");
    assert_eq!(failed.history.last().unwrap().message, "the last straw");
}

/// A listing of jobs with a megabyte of input and of result each answers every listed
/// column as stored (`Job::into_parts`), paged and filtered as whole jobs are, and
/// carries neither (its rows have no such fields).
pub async fn listings_leave_out_big_inputs_and_results(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let big = vec![b'x'; 1 << 20];
    let jobs = (0..3).map(|_| job(&t, "m", &big)).collect();
    store.enqueue(jobs).await.unwrap();
    let claimed = store.claim("default", "w", 3, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let reports = vec![
        Finish::new(
            claimed[0].id,
            1,
            Outcome::Complete {
                result: big.clone(),
            },
        ),
        Finish::new(
            claimed[1].id,
            1,
            Outcome::Fail {
                error: JobError::new(ErrorKind::Trap, "boom"),
            },
        ),
    ];
    store.finish(reports).await.unwrap();

    let listed = store
        .list_summaries(&t, &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.next_cursor, None);
    let mut ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(listed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), ids);
    for summary in &listed.jobs {
        let whole = get(&store, &t, summary.id).await;
        assert_eq!(
            whole.input.len(),
            big.len(),
            "the job itself keeps its input"
        );
        let (expected, _) = whole.into_parts();
        assert_eq!(*summary, expected);
    }
    let states: Vec<JobState> = listed.jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [JobState::Running, JobState::Failed, JobState::Completed]
    );

    // One at a time, by cursor, and by state: as whole jobs are listed.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let filter = JobFilter {
            limit: 1,
            cursor,
            ..JobFilter::default()
        };
        let page = store.list_summaries(&t, &filter).await.unwrap();
        assert!(page.jobs.len() <= 1);
        paged.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    let completed = JobFilter {
        state: Some(JobState::Completed),
        ..JobFilter::default()
    };
    let page = store.list_summaries(&t, &completed).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [claimed[0].id]
    );
    let others = store
        .list_summaries("someone-else", &JobFilter::default())
        .await
        .unwrap();
    assert!(others.jobs.is_empty());
}

/// A job's state alone, to its tenant only, through its life.
pub async fn job_state_is_read_alone(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    let state = || {
        let store = store.clone();
        let t = t.clone();
        async move { store.job_state(&t, queued.id).await.unwrap() }
    };
    assert_eq!(state().await, Some(JobState::Available));
    claim_one(&store, "default", "w", LEASE).await;
    assert_eq!(state().await, Some(JobState::Running));
    let done = Finish::new(queued.id, 1, Outcome::Complete { result: vec![] });
    store.finish(vec![done]).await.unwrap();
    assert_eq!(state().await, Some(JobState::Completed));
    assert_eq!(store.job_state("someone-else", queued.id).await, Ok(None));
    assert_eq!(store.job_state(&t, queued.id + 1000).await, Ok(None));
}

/// A job handed to an idle worker and failed with a megabyte of error text is stored cut,
/// whether its report went in with the job (run ahead) or after it.
pub async fn a_handed_jobs_huge_error_is_stored_cut(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let (taker, mut handed) = handoff.register("handed", "taker-3", Duration::from_secs(30));
    taker.offer(1);
    let enqueue = {
        let store = store.clone();
        let new = NewJob {
            queue: "handed".into(),
            ..job(&t, "m", b"")
        };
        tokio::spawn(async move { enqueue_one(&store, new).await })
    };
    let got = tokio::time::timeout(Duration::from_secs(10), handed.recv())
        .await
        .expect("the job is handed over")
        .expect("the taker is registered");
    let id = got.job.id;
    let huge = huge_message();
    let fail = Outcome::Fail {
        error: JobError::new(ErrorKind::Trap, huge.clone()),
    };
    let answered = report_handed(&store, got, enqueue, fail).await;
    if let Some(error) = &answered.error {
        assert_cut(&error.message, &huge);
    }
    let stored = get(&store, &t, id).await;
    assert_eq!(stored.state, JobState::Failed);
    assert_cut(&stored.error.expect("an error").message, &huge);
    assert_cut(&stored.history[0].message, &huge);
    drop(taker);
}

/// A NUL in a guest's error, log or progress note (which PostgreSQL's text and JSON cannot
/// hold) does not make the report fail: it is stored as U+FFFD.
pub async fn nul_characters_in_a_report_are_stored_replaced(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, job(&t, "m", b"")).await;
    claim_one(&store, "default", "w", LEASE).await;
    let note = |text: &str| Progress {
        percent: 10,
        note: Some(text.into()),
    };
    assert!(
        store
            .set_progress(queued.id, 1, note("a\0b"))
            .await
            .unwrap()
    );
    assert_eq!(
        get(&store, &t, queued.id).await.progress,
        Some(note("a\u{FFFD}b"))
    );
    let report = Finish {
        log: "one\0two\n".into(),
        progress: Some(note("c\0d")),
        ..Finish::new(
            queued.id,
            1,
            Outcome::Fail {
                error: JobError::new(ErrorKind::TaskError, "bad\0input"),
            },
        )
    };
    assert_eq!(store.finish(vec![report]).await.unwrap(), [true]);
    let failed = get(&store, &t, queued.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.error.unwrap().message, "bad\u{FFFD}input");
    assert_eq!(failed.history[0].message, "bad\u{FFFD}input");
    assert_eq!(failed.log, "one\u{FFFD}two\n");
    assert_eq!(failed.progress, Some(note("c\u{FFFD}d")));
}
