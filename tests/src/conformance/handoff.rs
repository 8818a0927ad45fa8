//! Conformance cases of the hand-off to idle workers of the process (`store_handoff_tests!`).

use super::*;

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
    report_handed_finish(store, got, enqueue, report).await
}

/// [`report_handed`] with a whole report.
async fn report_handed_finish(
    store: &Arc<dyn Store>,
    got: Handed,
    enqueue: tokio::task::JoinHandle<Job>,
    report: Finish,
) -> Job {
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

/// A job that may not run before it is stored (`may_run_ahead` false) reaches its taker
/// only once it is stored `running` for it: never to be run ahead.
pub async fn a_job_that_may_not_run_ahead_is_handed_once_stored(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let (taker, mut handed) = handoff.register("stored", "taker-3", Duration::from_secs(30));
    taker.offer(1);
    let new = NewJob {
        queue: "stored".into(),
        may_run_ahead: false,
        ..job(&t, "m", b"networked")
    };
    let enqueue = {
        let store = store.clone();
        tokio::spawn(async move { enqueue_one(&store, new).await })
    };
    let got = tokio::time::timeout(Duration::from_secs(10), handed.recv())
        .await
        .expect("the job is handed over")
        .expect("the taker is registered");
    assert!(got.ahead.is_none(), "handed to be run before it is stored");
    let stored = get(&store, &t, got.job.id).await;
    assert_eq!((stored.state, stored.attempt), (JobState::Running, 1));
    assert_eq!(stored.worker_id.as_deref(), Some("taker-3"));
    let done = Outcome::Complete {
        result: b"ok".to_vec(),
    };
    let answered = report_handed(&store, got, enqueue, done).await;
    assert_eq!(answered.state, JobState::Running, "answered as stored");
    let stored = get(&store, &t, answered.id).await;
    assert_eq!(stored.state, JobState::Completed);
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

/// A handed job that completes with children stores them with it, run ahead (in the
/// insert of the job with its report) or not (in the finish).
pub async fn a_handed_jobs_children_are_stored_with_it(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let t = tenant();
    let digest = put(&store, &t, "m", b"m").await.digest;
    let (taker, mut handed) = handoff.register("handed", "taker-1", Duration::from_secs(30));
    taker.offer(1);
    let enqueue = {
        let (store, new) = (
            store.clone(),
            NewJob {
                queue: "handed".into(),
                ..job(&t, "m", b"parent")
            },
        );
        tokio::spawn(async move { enqueue_one(&store, new).await })
    };
    let got = tokio::time::timeout(Duration::from_secs(10), handed.recv())
        .await
        .expect("the job is handed over")
        .expect("the taker is registered");
    let parent = got.job.id;
    let ids = store.draw_ids(2).await.unwrap();
    let children = ids
        .iter()
        .map(|&id| ChildJob {
            id,
            depth: 1,
            job: NewJob {
                digest: Some(digest.clone()),
                queue: "leaves".into(),
                ..job(&t, "m", b"child")
            },
        })
        .collect();
    let done = Outcome::Complete {
        result: b"ok".to_vec(),
    };
    let report = Finish {
        children,
        ..Finish::new(parent, 1, done)
    };
    let answered = report_handed_finish(&store, got, enqueue, report).await;
    assert_eq!(answered.id, parent);
    assert_eq!(get(&store, &t, parent).await.state, JobState::Completed);
    for id in ids {
        let child = get(&store, &t, id).await;
        assert_eq!(
            (child.state, child.parent_id),
            (JobState::Available, Some(parent))
        );
    }
}
