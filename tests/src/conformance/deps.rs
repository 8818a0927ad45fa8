//! Conformance cases for dependencies: `waiting` until every dependency completed, made
//! due exactly once (also when a thousand finish at once), cancelled down a failure's
//! chain, and refused on jobs that do not exist for the tenant.

use std::sync::Arc;
use std::time::Duration;

use wasmq_host::queue::{
    Dependency, ErrorKind, Finish, Job, JobError, JobFilter, JobState, NewJob, Outcome, Store,
    StoreError, StoreEvent,
};

use super::{LEASE, claim_one, enqueue_one, expect_event, get, job, put, retry_now, tenant};

fn on(new: NewJob, deps: &[i64]) -> NewJob {
    NewJob {
        depends_on: deps.iter().map(|id| Dependency::Job(*id)).collect(),
        ..new
    }
}

fn complete() -> Outcome {
    Outcome::Complete {
        result: b"ok".to_vec(),
    }
}

fn fail() -> Outcome {
    Outcome::Fail {
        error: JobError::new(ErrorKind::TaskError, "no"),
    }
}

/// Claims job `id` (alone in `queue`) and reports `outcome` for it.
async fn run(store: &Arc<dyn Store>, queue: &str, id: i64, outcome: Outcome) {
    let claimed = claim_one(store, queue, "w", LEASE).await;
    assert_eq!(claimed.id, id, "the next job of {queue}");
    let applied = store
        .finish(vec![Finish::new(id, claimed.attempt, outcome)])
        .await
        .expect("finish");
    assert_eq!(applied, [true]);
}

async fn nothing_claimable(store: &Arc<dyn Store>, queue: &str) {
    let claimed = store.claim(queue, "w", 10, LEASE).await.expect("claim");
    assert!(claimed.is_empty(), "nothing due in {queue}: {claimed:?}");
}

fn in_queue(new: NewJob, queue: &str) -> NewJob {
    NewJob {
        queue: queue.into(),
        ..new
    }
}

/// A job on two others waits, is never claimed, shows what it depends on (and they how
/// many depend on them), is counted and listed as `waiting`, and becomes available
/// (its queue's workers woken) when the last one completes, not before.
pub async fn a_dependent_waits_until_its_dependencies_complete(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let a = enqueue_one(&store, in_queue(job(&t, "m", b"a"), "parents")).await;
    let b = enqueue_one(&store, in_queue(job(&t, "m", b"b"), "parents")).await;
    let c = enqueue_one(
        &store,
        in_queue(on(job(&t, "m", b"c"), &[b.id, a.id]), "child"),
    )
    .await;
    assert_eq!(c.state, JobState::Waiting);
    assert_eq!(c.depends_on, [a.id, b.id]);
    assert_eq!(get(&store, &t, a.id).await.dependents, 1);
    let waiting = JobFilter {
        state: Some(JobState::Waiting),
        ..JobFilter::default()
    };
    let listed = store.list_summaries(&t, &waiting).await.unwrap().jobs;
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [c.id]);
    assert_eq!(listed[0].depends_on, [a.id, b.id]);
    let queues = store.queues(&t).await.unwrap();
    let child = queues
        .iter()
        .find(|q| q.name == "child")
        .expect("its queue");
    assert_eq!((child.waiting, child.available), (1, 0));
    nothing_claimable(&store, "child").await;

    run(&store, "parents", a.id, complete()).await;
    assert_eq!(get(&store, &t, c.id).await.state, JobState::Waiting);
    nothing_claimable(&store, "child").await;
    // A failed attempt that will be retried is not a failure of the dependency.
    let claimed = claim_one(&store, "parents", "w", LEASE).await;
    store
        .finish(vec![Finish::new(b.id, claimed.attempt, retry_now("again"))])
        .await
        .unwrap();
    assert_eq!(get(&store, &t, c.id).await.state, JobState::Waiting);

    let mut events = store.subscribe();
    run(&store, "parents", b.id, complete()).await;
    expect_event(&mut events, "the child's queue woken", |e| {
        *e == StoreEvent::JobsAvailable {
            queue: "child".into(),
        }
    })
    .await;
    let released = get(&store, &t, c.id).await;
    assert_eq!(released.state, JobState::Available);
    assert_eq!(claim_one(&store, "child", "w", LEASE).await.id, c.id);
}

/// A thousand dependencies finishing at once, each in its own call from several tasks
/// (several connections): the dependent becomes available once, its queue woken once.
pub async fn a_fan_in_of_1000_releases_its_dependent_once(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let parents: Vec<i64> = store
        .enqueue(
            (0..1000)
                .map(|i| in_queue(job(&t, "m", format!("{i}").as_bytes()), "fan"))
                .collect(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();
    let child = enqueue_one(&store, in_queue(on(job(&t, "m", b"c"), &parents), "fan-in")).await;
    assert_eq!(child.state, JobState::Waiting);
    let mut claimed: Vec<Job> = Vec::new();
    while claimed.len() < parents.len() {
        let batch = store.claim("fan", "w", 500, LEASE).await.unwrap();
        assert!(!batch.is_empty(), "every dependency is claimable");
        claimed.extend(batch);
    }
    let mut events = store.subscribe();
    let tasks: Vec<_> = claimed
        .chunks(1000 / 16 + 1)
        .map(|chunk| {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for job in chunk {
                    let done = store
                        .finish(vec![Finish::new(job.id, job.attempt, complete())])
                        .await
                        .expect("finish");
                    assert_eq!(done, [true]);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let released = get(&store, &t, child.id).await;
    assert_eq!(released.state, JobState::Available, "{released:?}");
    let mut woken = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), events.recv()).await {
            Ok(Ok(StoreEvent::JobsAvailable { queue })) if queue == "fan-in" => woken += 1,
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    assert_eq!(woken, 1, "the dependent is released by exactly one finish");
    assert_eq!(claim_one(&store, "fan-in", "w", LEASE).await.id, child.id);
    nothing_claimable(&store, "fan-in").await;
}

/// A failure cancels the waiting jobs below it, down the chain, with
/// `dependency_failed`; so does a cancel of a waiting job, and long-polls are told.
pub async fn a_failure_cancels_the_chain_below_it(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let a = enqueue_one(&store, job(&t, "m", b"a")).await;
    let b = enqueue_one(&store, in_queue(on(job(&t, "m", b"b"), &[a.id]), "below")).await;
    let c = enqueue_one(&store, in_queue(on(job(&t, "m", b"c"), &[b.id]), "below")).await;
    let mut events = store.subscribe();
    run(&store, "default", a.id, fail()).await;
    for (id, on) in [(b.id, a.id), (c.id, b.id)] {
        let cancelled = get(&store, &t, id).await;
        assert_eq!(cancelled.state, JobState::Cancelled);
        let error = cancelled.error.expect("an error");
        assert_eq!(error.kind, ErrorKind::DependencyFailed);
        assert!(error.message.contains(&on.to_string()), "{}", error.message);
        assert!(cancelled.finished_at.is_some());
    }
    expect_event(
        &mut events,
        "the cancelled dependents' long-polls",
        |e| matches!(e, StoreEvent::JobsFinished { ids } if ids.contains(&c.id)),
    )
    .await;
    nothing_claimable(&store, "below").await;

    // A waiting job cancelled takes its own dependents with it; its dependency runs on.
    let p = enqueue_one(&store, in_queue(job(&t, "m", b"p"), "again")).await;
    let y = enqueue_one(&store, on(job(&t, "m", b"y"), &[p.id])).await;
    let z = enqueue_one(&store, on(job(&t, "m", b"z"), &[y.id])).await;
    let cancelled = store.cancel(&t, y.id).await.unwrap().expect("the job");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.error.unwrap().kind, ErrorKind::Cancelled);
    let z = get(&store, &t, z.id).await;
    assert_eq!(z.state, JobState::Cancelled);
    assert_eq!(z.error.unwrap().kind, ErrorKind::DependencyFailed);
    run(&store, "again", p.id, complete()).await;
    assert_eq!(get(&store, &t, y.id).await.state, JobState::Cancelled);
}

/// A dependency whose worker vanished on its last attempt fails in the rescue, and its
/// dependents are cancelled in the same transaction; one with attempts left is retried
/// and its dependents wait on.
pub async fn a_rescued_failure_cancels_its_dependents(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let last_try = NewJob {
        max_attempts: 1,
        ..in_queue(job(&t, "m", b"a"), "lost")
    };
    let doomed = enqueue_one(&store, last_try).await;
    let again = enqueue_one(&store, in_queue(job(&t, "m", b"b"), "lost")).await;
    let on_doomed = enqueue_one(&store, on(job(&t, "m", b"c"), &[doomed.id])).await;
    let on_again = enqueue_one(&store, on(job(&t, "m", b"d"), &[again.id])).await;
    let claimed = store
        .claim("lost", "vanished", 2, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let mut events = store.subscribe();
    let report = super::rescue(&store).await;
    assert_eq!(
        (report.failed, report.retried),
        (vec![doomed.id], vec![again.id])
    );
    let cancelled = get(&store, &t, on_doomed.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.error.unwrap().kind, ErrorKind::DependencyFailed);
    expect_event(
        &mut events,
        "the cancelled dependent's long-polls",
        |e| matches!(e, StoreEvent::JobsFinished { ids } if ids.contains(&on_doomed.id)),
    )
    .await;
    assert_eq!(get(&store, &t, on_again.id).await.state, JobState::Waiting);
}

/// A job on jobs already completed is available at once; one on a job already failed or
/// cancelled is cancelled at once (`dependency_failed`).
pub async fn dependencies_already_finished_decide_at_once(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let done = enqueue_one(&store, job(&t, "m", b"a")).await;
    run(&store, "default", done.id, complete()).await;
    let ready = enqueue_one(
        &store,
        in_queue(on(job(&t, "m", b"b"), &[done.id]), "ready"),
    )
    .await;
    assert_eq!(ready.state, JobState::Available);
    assert_eq!(ready.depends_on, [done.id]);
    assert_eq!(claim_one(&store, "ready", "w", LEASE).await.id, ready.id);
    assert_eq!(get(&store, &t, done.id).await.dependents, 1);

    let failed = enqueue_one(&store, job(&t, "m", b"f")).await;
    run(&store, "default", failed.id, fail()).await;
    let cancelled = enqueue_one(&store, job(&t, "m", b"c")).await;
    store.cancel(&t, cancelled.id).await.unwrap();
    for on_what in [failed.id, cancelled.id] {
        let doomed = enqueue_one(
            &store,
            in_queue(on(job(&t, "m", b"d"), &[done.id, on_what]), "doomed"),
        )
        .await;
        assert_eq!(doomed.state, JobState::Cancelled);
        let error = doomed.error.expect("an error");
        assert_eq!(error.kind, ErrorKind::DependencyFailed);
        assert!(error.message.contains(&on_what.to_string()));
        assert_eq!(get(&store, &t, doomed.id).await.state, JobState::Cancelled);
    }
    nothing_claimable(&store, "doomed").await;
}

/// A dependency on a job that does not exist, or is another tenant's, refuses the whole
/// batch; so does an index that is not of an earlier job of the batch.
pub async fn dependencies_on_unknown_jobs_are_refused(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    put(&store, &other, "m", b"m").await;
    let theirs = enqueue_one(&store, job(&other, "m", b"x")).await;
    let mine = enqueue_one(&store, job(&t, "m", b"y")).await;
    for missing in [theirs.id, mine.id + 1_000_000] {
        let batch = vec![
            job(&t, "m", b"ok"),
            on(job(&t, "m", b"z"), &[mine.id, missing]),
        ];
        let refused = store.enqueue(batch).await;
        assert!(
            matches!(&refused, Err(StoreError::Invalid(m)) if m.contains(&missing.to_string())),
            "{refused:?}"
        );
    }
    let later = NewJob {
        depends_on: vec![Dependency::Earlier(1)],
        ..job(&t, "m", b"a")
    };
    let refused = store.enqueue(vec![later, job(&t, "m", b"b")]).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let all = store.list(&t, &JobFilter::default()).await.unwrap().jobs;
    assert_eq!(all.len(), 1, "nothing of a refused batch is stored");
    assert_eq!(get(&store, &t, mine.id).await.dependents, 0);
    assert_eq!(get(&store, &other, theirs.id).await.dependents, 0);
}

/// A batch names earlier jobs of its own by index: a chain in one call waits link by
/// link, and a job of the batch on a stored one too.
pub async fn a_batch_names_earlier_jobs_by_index(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let stored = enqueue_one(&store, in_queue(job(&t, "m", b"s"), "chain")).await;
    let index = |new: NewJob, at: &[usize]| NewJob {
        depends_on: at.iter().map(|i| Dependency::Earlier(*i)).collect(),
        ..in_queue(new, "chain")
    };
    let batch = vec![
        in_queue(on(job(&t, "m", b"a"), &[stored.id]), "chain"),
        index(job(&t, "m", b"b"), &[0]),
        index(job(&t, "m", b"c"), &[0, 1]),
    ];
    let answers = store.enqueue(batch).await.unwrap();
    let ids: Vec<i64> = answers.iter().map(|e| e.job.id).collect();
    assert!(answers.iter().all(|e| e.job.state == JobState::Waiting));
    assert_eq!(answers[2].job.depends_on, [ids[0], ids[1]]);
    assert_eq!(answers[0].job.dependents, 2, "the answer is the stored row");
    assert_eq!(get(&store, &t, ids[0]).await.dependents, 2);
    run(&store, "chain", stored.id, complete()).await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(get(&store, &t, *id).await.state, JobState::Available);
        for later in &ids[i + 1..] {
            assert_eq!(get(&store, &t, *later).await.state, JobState::Waiting);
        }
        run(&store, "chain", *id, complete()).await;
    }
    nothing_claimable(&store, "chain").await;
}

/// A dependent enqueued while its dependency finishes, again and again: it is never left
/// waiting for a job that completed (the enqueue and the finish race on every node).
pub async fn a_dependent_enqueued_during_the_finish_is_never_stranded(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    for round in 0..200 {
        let parent = enqueue_one(&store, in_queue(job(&t, "m", b"p"), "race")).await;
        let claimed = claim_one(&store, "race", "w", LEASE).await;
        let finishing = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .finish(vec![Finish::new(parent.id, claimed.attempt, complete())])
                    .await
            })
        };
        let child = store
            .enqueue(vec![in_queue(
                on(job(&t, "m", b"c"), &[parent.id]),
                "raced",
            )])
            .await
            .unwrap()
            .remove(0)
            .job;
        assert_eq!(finishing.await.unwrap().unwrap(), [true]);
        let child = get(&store, &t, child.id).await;
        assert_eq!(child.state, JobState::Available, "round {round}: {child:?}");
        assert_eq!(claim_one(&store, "raced", "w", LEASE).await.id, child.id);
    }
}
