//! Conformance cases for child jobs: stored in the commit of their parent's completion,
//! with the ids drawn for them, and never for an attempt that did not complete or whose
//! report was refused (a retry, a rescue, a report sent twice).

use std::sync::Arc;

use chrono::Utc;
use wasmq_host::queue::{
    ChildJob, ErrorKind, Finish, JobError, JobFilter, JobState, NewJob, Outcome, Store, StoreEvent,
};

use super::{LEASE, claim_one, enqueue_one, expect_event, get, job, put, rescue, tenant};

/// `n` children of `module` in `queue`, with ids drawn from the store.
async fn children(
    store: &Arc<dyn Store>,
    tenant: &str,
    module: &str,
    queue: &str,
    n: usize,
) -> Vec<ChildJob> {
    let digest = store
        .get_module(tenant, module)
        .await
        .expect("get_module")
        .expect("the module is stored")
        .digest;
    let ids = store.draw_ids(n).await.expect("draw_ids");
    assert_eq!(ids.len(), n, "{n} ids drawn");
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| ChildJob {
            id,
            depth: 1,
            job: NewJob {
                digest: Some(digest.clone()),
                queue: queue.to_owned(),
                ..job(tenant, module, format!("child {i}").as_bytes())
            },
        })
        .collect()
}

fn with_children(finish: Finish, children: Vec<ChildJob>) -> Finish {
    Finish { children, ..finish }
}

async fn children_of(store: &Arc<dyn Store>, tenant: &str, parent: i64) -> Vec<i64> {
    let page = store
        .list(
            tenant,
            &JobFilter {
                parent: Some(parent),
                limit: 1000,
                ..JobFilter::default()
            },
        )
        .await
        .expect("list by parent");
    let mut ids: Vec<i64> = page.jobs.iter().map(|j| j.id).collect();
    ids.sort_unstable();
    ids
}

/// A failed attempt's children are never stored; the completing attempt's are, with the
/// ids drawn for them, available in their queue (its workers woken), naming their
/// parent and depth, and listed by parent.
pub async fn children_are_stored_only_with_a_completion(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "fan", b"fan").await;
    put(&store, &t, "leaf", b"leaf").await;
    let parent = enqueue_one(&store, job(&t, "fan", b"{}")).await;

    let first = claim_one(&store, "default", "w", LEASE).await;
    let lost = children(&store, &t, "leaf", "leaves", 3).await;
    let retry = Outcome::Retry {
        error: JobError::new(ErrorKind::TaskError, "again"),
        retry_at: Utc::now(),
    };
    let report = with_children(Finish::new(parent.id, first.attempt, retry), lost.clone());
    assert_eq!(store.finish(vec![report]).await.unwrap(), [true]);
    for child in &lost {
        assert!(
            store.get(&t, child.id).await.unwrap().is_none(),
            "a failed attempt's child"
        );
    }
    assert!(children_of(&store, &t, parent.id).await.is_empty());

    store.promote_scheduled().await.unwrap();
    let second = claim_one(&store, "default", "w", LEASE).await;
    assert_eq!(second.attempt, 2);
    let made = children(&store, &t, "leaf", "leaves", 3).await;
    let mut events = store.subscribe();
    let done = Outcome::Complete {
        result: b"ok".to_vec(),
    };
    let report = with_children(Finish::new(parent.id, 2, done), made.clone());
    assert_eq!(store.finish(vec![report]).await.unwrap(), [true]);
    expect_event(
        &mut events,
        "the children's queue woken",
        |e| matches!(e, StoreEvent::JobsAvailable { queue } if queue == "leaves"),
    )
    .await;
    let ids: Vec<i64> = made.iter().map(|c| c.id).collect();
    assert_eq!(children_of(&store, &t, parent.id).await, ids);
    for child in &made {
        let stored = get(&store, &t, child.id).await;
        assert_eq!(stored.state, JobState::Available);
        assert_eq!((stored.parent_id, stored.depth), (Some(parent.id), 1));
        assert_eq!(stored.queue, "leaves");
        assert_eq!(stored.input, child.job.input);
    }
    assert_eq!(get(&store, &t, parent.id).await.parent_id, None);
    let claimed = store.claim("leaves", "w", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 3, "the children are claimable");
}

/// A report that is refused (the job was rescued meanwhile) stores no children, and the
/// same report sent twice (its first answer lost) stores them once.
pub async fn a_refused_or_repeated_report_stores_no_more_children(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "fan", b"fan").await;
    put(&store, &t, "leaf", b"leaf").await;
    let parent = enqueue_one(&store, job(&t, "fan", b"{}")).await;
    let short = std::time::Duration::from_millis(1);
    let lost = claim_one(&store, "default", "w1", short).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(rescue(&store).await.retried, [parent.id]);
    let done = || Outcome::Complete {
        result: b"ok".to_vec(),
    };
    let stale = with_children(
        Finish::new(parent.id, lost.attempt, done()),
        children(&store, &t, "leaf", "default", 2).await,
    );
    assert_eq!(store.finish(vec![stale]).await.unwrap(), [false]);
    assert!(children_of(&store, &t, parent.id).await.is_empty());

    let held = claim_one(&store, "default", "w2", LEASE).await;
    let made = children(&store, &t, "leaf", "default", 2).await;
    let report = with_children(Finish::new(parent.id, held.attempt, done()), made.clone());
    assert_eq!(store.finish(vec![report.clone()]).await.unwrap(), [true]);
    assert_eq!(store.finish(vec![report]).await.unwrap(), [false]);
    let ids: Vec<i64> = made.iter().map(|c| c.id).collect();
    assert_eq!(children_of(&store, &t, parent.id).await, ids);
}

/// A child whose idempotency key a stored job has is not stored (the other job stands);
/// a delayed child is `scheduled` until its time.
pub async fn keyed_and_delayed_children(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "fan", b"fan").await;
    put(&store, &t, "leaf", b"leaf").await;
    let keyed = enqueue_one(
        &store,
        NewJob {
            idempotency_key: Some("page-7".into()),
            ..job(&t, "leaf", b"first")
        },
    )
    .await;
    let parent = enqueue_one(&store, job(&t, "fan", b"{}")).await;
    let mut made = children(&store, &t, "leaf", "later", 2).await;
    made[0].job.idempotency_key = Some("page-7".into());
    made[1].job.run_at = Some(Utc::now() + chrono::Duration::hours(1));
    let claimed = store.claim("default", "w", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2, "the keyed job and the parent");
    let done = Outcome::Complete {
        result: b"ok".to_vec(),
    };
    let report = with_children(Finish::new(parent.id, 1, done), made.clone());
    assert_eq!(store.finish(vec![report]).await.unwrap(), [true]);
    assert!(
        store.get(&t, made[0].id).await.unwrap().is_none(),
        "the key's job stands"
    );
    assert_eq!(get(&store, &t, keyed.id).await.input, b"first");
    assert_eq!(get(&store, &t, made[1].id).await.state, JobState::Scheduled);
    assert_eq!(children_of(&store, &t, parent.id).await, [made[1].id]);
}
