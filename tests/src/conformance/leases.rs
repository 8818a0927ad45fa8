//! Conformance cases of running jobs: rescue of expired leases, heartbeats, progress, cancelling, pruning.

use super::*;

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
