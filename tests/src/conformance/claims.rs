//! Conformance cases of claiming and finishing: order, schedules, concurrent claimers, results, retries, stale reports.

use super::*;

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
