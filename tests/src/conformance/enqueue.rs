//! Conformance cases of enqueueing: round trips, batches and their order, idempotency keys, unknown modules.

use super::*;

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
