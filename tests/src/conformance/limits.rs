//! Conformance cases for running-job caps: a tenant's `max_running` (its own, else the
//! server's default) and a tenant's limit of one queue, enforced by the claim; every way
//! a job stops running gives its slot back; a capped job is never handed over.

use super::*;
use wasmq_host::queue::QuotaChange;

fn in_queue(tenant: &str, queue: &str) -> NewJob {
    NewJob {
        queue: queue.to_owned(),
        ..job(tenant, "m", b"")
    }
}

/// Enqueues `n` jobs of `tenant` in `queue`.
async fn enqueue_n(store: &Arc<dyn Store>, tenant: &str, queue: &str, n: usize) {
    let jobs = (0..n).map(|_| in_queue(tenant, queue)).collect();
    store.enqueue(jobs).await.expect("enqueue");
}

async fn claim_n(store: &Arc<dyn Store>, queue: &str, n: usize, lease: Duration) -> Vec<Job> {
    store.claim(queue, "w", n, lease).await.expect("claim")
}

async fn cap(store: &Arc<dyn Store>, tenant: &str, max_running: Option<u64>) {
    let change = QuotaChange {
        max_running: Some(max_running),
        ..QuotaChange::default()
    };
    store.set_tenant_quotas(tenant, &change).await.unwrap();
}

async fn complete(store: &Arc<dyn Store>, job: &Job) {
    let done = Outcome::Complete { result: vec![] };
    let applied = store.finish(vec![Finish::new(job.id, job.attempt, done)]);
    assert_eq!(applied.await.unwrap(), [true]);
}

/// A tenant with `max_running` 2 and 10 due jobs gets 2 from a claim of 10 and none
/// from the next; each finish lets one more start. Another tenant's jobs of the same
/// queue are claimed as usual, and a raised cap takes effect at the next claim.
pub async fn a_claim_never_takes_a_tenant_past_its_max_running(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    put(&store, &other, "m", b"m").await;
    cap(&store, &t, Some(2)).await;
    enqueue_n(&store, &t, "capped", 10).await;

    let first = claim_n(&store, "capped", 10, LEASE).await;
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(claim_n(&store, "capped", 10, LEASE).await.is_empty());
    complete(&store, &first[0]).await;
    let next = claim_n(&store, "capped", 10, LEASE).await;
    assert_eq!(next.len(), 1, "one finished, one more");
    assert!(claim_n(&store, "capped", 10, LEASE).await.is_empty());

    enqueue_n(&store, &other, "capped", 3).await;
    let theirs = claim_n(&store, "capped", 10, LEASE).await;
    assert_eq!(theirs.len(), 3, "another tenant is not capped");
    assert!(theirs.iter().all(|j| j.tenant == other));

    cap(&store, &t, Some(5)).await;
    assert_eq!(claim_n(&store, "capped", 10, LEASE).await.len(), 3);
    cap(&store, &t, None).await;
    assert_eq!(
        claim_n(&store, "capped", 10, LEASE).await.len(),
        4,
        "uncapped: the rest"
    );
    assert_eq!(store.tenant_usage(&t).await.unwrap().running_jobs, 9);
}

/// A released job, a cancelled one (its worker reports it) and a rescued one (its lease
/// expired) each give their slot back.
pub async fn released_cancelled_and_rescued_jobs_give_their_slot_back(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    cap(&store, &t, Some(2)).await;
    enqueue_n(&store, &t, "slots", 10).await;
    let held = claim_n(&store, "slots", 10, LEASE).await;
    assert_eq!(held.len(), 2);

    let release = Finish::new(held[0].id, held[0].attempt, Outcome::Release);
    assert_eq!(store.finish(vec![release]).await.unwrap(), [true]);
    let after_release = claim_n(&store, "slots", 10, LEASE).await;
    assert_eq!(after_release.len(), 1, "a released job's slot");

    store.cancel(&t, held[1].id).await.unwrap();
    assert!(
        claim_n(&store, "slots", 10, LEASE).await.is_empty(),
        "still running"
    );
    let cancelled = Finish::new(held[1].id, held[1].attempt, Outcome::Cancelled);
    assert_eq!(store.finish(vec![cancelled]).await.unwrap(), [true]);
    // Claimed with no lease: the rescue takes it back.
    let lost = claim_n(&store, "slots", 10, Duration::ZERO).await;
    assert_eq!(lost.len(), 1, "a cancelled job's slot");
    assert!(claim_n(&store, "slots", 10, LEASE).await.is_empty());

    let report = rescue(&store).await;
    assert_eq!(report.retried, [lost[0].id]);
    assert_eq!(
        claim_n(&store, "slots", 10, LEASE).await.len(),
        1,
        "a rescued job's slot"
    );
    assert_eq!(store.tenant_usage(&t).await.unwrap().running_jobs, 2);
}

/// The server's default caps a tenant without its own `max_running`; a tenant's own
/// value, higher or lower, wins over it.
pub async fn the_default_max_running_caps_tenants_without_their_own(store: Arc<dyn Store>) {
    let (plain, own) = (tenant(), tenant());
    put(&store, &plain, "m", b"m").await;
    put(&store, &own, "m", b"m").await;
    cap(&store, &own, Some(3)).await;
    store.set_default_max_running(Some(1));
    enqueue_n(&store, &plain, "defaults", 5).await;
    enqueue_n(&store, &own, "defaults", 5).await;
    let claimed = claim_n(&store, "defaults", 20, LEASE).await;
    let of = |t: &str| claimed.iter().filter(|j| j.tenant == t).count();
    assert_eq!((of(&plain), of(&own)), (1, 3), "{claimed:?}");
    store.set_default_max_running(None);
    assert_eq!(claim_n(&store, "defaults", 20, LEASE).await.len(), 4);
}

/// A tenant's limit of one queue caps that queue only, shows in the listing, and
/// removed, lets the rest start; the tenant's `max_running` still applies beside it.
pub async fn a_queue_limit_caps_its_queue_for_its_tenant(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    put(&store, &other, "m", b"m").await;
    store.set_queue_limit(&t, "mail", Some(2)).await.unwrap();
    enqueue_n(&store, &t, "mail", 6).await;
    enqueue_n(&store, &t, "reports", 3).await;
    enqueue_n(&store, &other, "mail", 3).await;

    let mail = claim_n(&store, "mail", 20, LEASE).await;
    let of = |t: &str| mail.iter().filter(|j| j.tenant == t).count();
    assert_eq!((of(&t), of(&other)), (2, 3), "{mail:?}");
    assert_eq!(claim_n(&store, "reports", 20, LEASE).await.len(), 3);
    let listed = store.queues(&t).await.unwrap();
    let limit = |name: &str| listed.iter().find(|q| q.name == name).unwrap().max_running;
    assert_eq!((limit("mail"), limit("reports")), (Some(2), None));
    assert_eq!(store.queues(&other).await.unwrap()[0].max_running, None);

    complete(&store, mail.iter().find(|j| j.tenant == t).unwrap()).await;
    assert_eq!(claim_n(&store, "mail", 20, LEASE).await.len(), 1);
    // The tenant's cap (5 running: 2 mail, 3 reports) holds the mail back too.
    cap(&store, &t, Some(5)).await;
    store.set_queue_limit(&t, "mail", None).await.unwrap();
    assert!(claim_n(&store, "mail", 20, LEASE).await.is_empty());
    cap(&store, &t, None).await;
    assert_eq!(claim_n(&store, "mail", 20, LEASE).await.len(), 3);
    assert_eq!(store.queues(&t).await.unwrap()[0].max_running, None);

    let e = store.set_queue_limit(&t, "No Queue", Some(1)).await;
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
    let e = store.set_queue_limit(&t, "mail", Some(u64::MAX)).await;
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
}

/// A lone job of a capped tenant, or of a limited queue, is not handed to an idle worker
/// loop (it would run uncounted): it is stored and waits for a claim, which counts.
pub async fn a_capped_job_is_not_handed_over(store: Arc<dyn Store>) {
    let handoff = declared_handoff(&store);
    let (t, limited) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    put(&store, &limited, "m", b"m").await;
    let (taker, mut handed) = handoff.register("capped", "taker", LEASE);
    taker.offer(2);
    cap(&store, &t, Some(4)).await;
    store
        .set_queue_limit(&limited, "capped", Some(4))
        .await
        .unwrap();
    for tenant in [&t, &limited] {
        let stored = enqueue_one(&store, in_queue(tenant, "capped")).await;
        assert_eq!((stored.state, stored.attempt), (JobState::Available, 0));
    }
    assert!(handed.try_recv().is_err(), "nothing was handed over");
    assert_eq!(claim_n(&store, "capped", 10, LEASE).await.len(), 2);
}
