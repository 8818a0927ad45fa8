//! Conformance cases for paused queues: per tenant, accepted but never claimed or handed
//! over, running jobs finish, and what burst mode asks (`has_work`).

use super::*;

fn in_queue(tenant: &str, queue: &str, input: &[u8]) -> NewJob {
    NewJob {
        queue: queue.to_owned(),
        ..job(tenant, "m", input)
    }
}

async fn claim_ids(store: &Arc<dyn Store>, queue: &str) -> Vec<i64> {
    let claimed = store.claim(queue, "w", 10, LEASE).await.expect("claim");
    claimed.iter().map(|j| j.id).collect()
}

/// A tenant's pause leaves its jobs of the queue waiting (new ones are still accepted)
/// while another tenant's jobs of a queue of the same name are claimed; the listing shows
/// it paused; a resume wakes the queue and its jobs are claimed again.
pub async fn a_paused_queue_accepts_jobs_but_none_is_claimed(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    put(&store, &other, "m", b"m").await;
    let before = enqueue_one(&store, in_queue(&t, "mail", b"before")).await;
    let others = enqueue_one(&store, in_queue(&other, "mail", b"other")).await;

    assert!(store.pause_queue(&t, "mail").await.unwrap(), "paused");
    assert!(!store.pause_queue(&t, "mail").await.unwrap(), "already");
    let after = enqueue_one(&store, in_queue(&t, "mail", b"after")).await;
    assert_eq!(
        after.state,
        JobState::Available,
        "a paused queue accepts jobs"
    );
    assert_eq!(claim_ids(&store, "mail").await, vec![others.id]);
    assert!(claim_ids(&store, "mail").await.is_empty(), "nothing of t");

    let listed = store.queues(&t).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0].name.as_str(),
            listed[0].paused,
            listed[0].available
        ),
        ("mail", true, 2)
    );
    let theirs = store.queues(&other).await.unwrap();
    assert_eq!(
        (theirs[0].paused, theirs[0].running, theirs[0].available),
        (false, 1, 0),
        "another tenant's queue of the same name is not paused"
    );

    let mut events = store.subscribe();
    assert!(store.resume_queue(&t, "mail").await.unwrap(), "resumed");
    assert!(!store.resume_queue(&t, "mail").await.unwrap(), "not paused");
    expect_event(&mut events, "JobsAvailable", |e| {
        *e == StoreEvent::JobsAvailable {
            queue: "mail".into(),
        }
    })
    .await;
    let mut again = claim_ids(&store, "mail").await;
    again.sort_unstable();
    assert_eq!(again, vec![before.id, after.id]);
    assert!(!store.queues(&t).await.unwrap()[0].paused);
}

/// A job running when its queue is paused finishes; a pause with no job is listed.
pub async fn a_running_job_of_a_paused_queue_finishes(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queued = enqueue_one(&store, in_queue(&t, "reports", b"")).await;
    let running = claim_one(&store, "reports", "w", LEASE).await;
    store.pause_queue(&t, "reports").await.unwrap();
    store.pause_queue(&t, "idle").await.unwrap();
    let done = Outcome::Complete { result: vec![] };
    assert_eq!(
        store
            .finish(vec![Finish::new(running.id, 1, done)])
            .await
            .unwrap(),
        vec![true]
    );
    assert_eq!(get(&store, &t, queued.id).await.state, JobState::Completed);
    let listed = store.queues(&t).await.unwrap();
    let names: Vec<(&str, bool, u64)> = listed
        .iter()
        .map(|q| (q.name.as_str(), q.paused, q.available + q.running))
        .collect();
    assert_eq!(names, vec![("idle", true, 0), ("reports", true, 0)]);
}

/// Burst mode's question: work is a running job, or a waiting one due by the horizon in a
/// queue its tenant has not paused.
pub async fn has_work_counts_running_and_due_unpaused_jobs(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let queues = vec!["burst".to_owned()];
    let now = Utc::now();
    assert!(!store.has_work(&queues, now).await.unwrap(), "empty");
    let later = NewJob {
        run_at: Some(now + chrono::Duration::hours(1)),
        ..in_queue(&t, "burst", b"later")
    };
    enqueue_one(&store, later).await;
    assert!(
        !store.has_work(&queues, Utc::now()).await.unwrap(),
        "not due"
    );
    let horizon = Utc::now() + chrono::Duration::hours(2);
    assert!(
        store.has_work(&queues, horizon).await.unwrap(),
        "due by then"
    );
    assert!(
        !store
            .has_work(&["other".to_owned()], horizon)
            .await
            .unwrap(),
        "another queue's"
    );

    enqueue_one(&store, in_queue(&t, "burst", b"now")).await;
    assert!(store.has_work(&queues, Utc::now()).await.unwrap(), "due");
    let running = claim_one(&store, "burst", "w", LEASE).await;
    assert!(
        store.has_work(&queues, Utc::now()).await.unwrap(),
        "running"
    );
    let done = Outcome::Complete { result: vec![] };
    store
        .finish(vec![Finish::new(running.id, 1, done)])
        .await
        .unwrap();
    assert!(!store.has_work(&queues, Utc::now()).await.unwrap(), "done");

    store.pause_queue(&t, "burst").await.unwrap();
    enqueue_one(&store, in_queue(&t, "burst", b"paused")).await;
    assert!(
        !store.has_work(&queues, Utc::now()).await.unwrap(),
        "a paused queue's jobs are left"
    );
}

/// A lone job of a paused queue is not handed to an idle worker loop of the queue: it is
/// stored waiting, and claimed once the queue is resumed.
pub async fn a_paused_queues_job_is_not_handed_over(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let (taker, mut handed) = handoff.register("held", "taker", LEASE);
    taker.offer(1);
    store.pause_queue(&t, "held").await.unwrap();
    let stored = enqueue_one(&store, in_queue(&t, "held", b"")).await;
    assert_eq!((stored.state, stored.attempt), (JobState::Available, 0));
    assert!(handed.try_recv().is_err(), "nothing was handed over");
    assert!(claim_ids(&store, "held").await.is_empty());
    store.resume_queue(&t, "held").await.unwrap();
    assert_eq!(claim_ids(&store, "held").await, vec![stored.id]);
}
