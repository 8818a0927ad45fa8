//! Conformance cases of fairness between tenants: a claim serves every waiting tenant's
//! first job before anyone's second, priority orders a tenant's own jobs only, and a
//! pool may serve one tenant alone.

use super::*;

/// Enqueues `n` jobs of `tenant` into `queue` (inputs `"<tag><i>"`), one batch.
async fn fill(store: &Arc<dyn Store>, tenant: &str, queue: &str, tag: &str, n: usize, prio: i16) {
    let jobs = (0..n)
        .map(|i| NewJob {
            queue: queue.into(),
            priority: prio,
            ..job(tenant, "m", format!("{tag}{i}").as_bytes())
        })
        .collect();
    store.enqueue(jobs).await.unwrap();
}

fn inputs(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .map(|j| String::from_utf8(j.input.clone()).unwrap())
        .collect()
}

/// A tenant with a deep backlog at the highest priority does not keep a later,
/// lower-priority tenant waiting: the next claim takes both tenants' jobs in turn.
pub async fn a_backlog_of_one_tenant_does_not_starve_another(store: Arc<dyn Store>) {
    let (a, b) = (tenant(), tenant());
    put(&store, &a, "m", b"m").await;
    put(&store, &b, "m", b"m").await;
    fill(&store, &a, "fair", "a", 500, i16::MAX).await;
    fill(&store, &b, "fair", "b", 2, -5).await;
    let claimed = store.claim("fair", "w", 4, LEASE).await.unwrap();
    assert_eq!(inputs(&claimed), ["a0", "b0", "a1", "b1"]);
    // Priority still orders a tenant's own jobs.
    fill(&store, &b, "fair", "b-urgent", 1, 10).await;
    let claimed = store.claim("fair", "w", 2, LEASE).await.unwrap();
    assert_eq!(inputs(&claimed), ["a2", "b-urgent0"]);
}

/// More tenants waiting than a claim takes: each claim takes one job of as many
/// tenants as it can, and the claims together take every job exactly once.
pub async fn many_tenants_are_served_one_job_each_per_claim(store: Arc<dyn Store>) {
    let tenants: Vec<String> = (0..10).map(|_| tenant()).collect();
    for t in &tenants {
        put(&store, t, "m", b"m").await;
        fill(&store, t, "many", t, 3, 0).await;
    }
    let first = store.claim("many", "w", 5, LEASE).await.unwrap();
    let owners: HashSet<&str> = first.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(
        owners.len(),
        5,
        "one job of each of five tenants: {:?}",
        inputs(&first)
    );
    let mut seen: HashSet<i64> = first.iter().map(|j| j.id).collect();
    loop {
        let more = store.claim("many", "w", 5, LEASE).await.unwrap();
        if more.is_empty() {
            break;
        }
        for j in more {
            assert!(seen.insert(j.id), "job {} claimed twice", j.id);
        }
    }
    assert_eq!(seen.len(), 30);
}

/// A pool serving one tenant claims only that tenant's jobs, in its priority order.
pub async fn a_claim_for_one_tenant_takes_only_its_jobs(store: Arc<dyn Store>) {
    let (a, b) = (tenant(), tenant());
    put(&store, &a, "m", b"m").await;
    put(&store, &b, "m", b"m").await;
    fill(&store, &a, "own", "a", 3, 0).await;
    fill(&store, &b, "own", "b", 2, 0).await;
    fill(&store, &b, "own", "b-high", 1, 3).await;
    let claimed = store
        .claim_for(Some(&b), "own", "w", 10, LEASE)
        .await
        .unwrap();
    assert_eq!(inputs(&claimed), ["b-high0", "b0", "b1"]);
    let rest = store.claim("own", "w", 10, LEASE).await.unwrap();
    assert_eq!(inputs(&rest), ["a0", "a1", "a2"]);
}

/// One tenant's pause leaves the other tenants' jobs of that queue to be claimed.
pub async fn a_paused_tenant_is_passed_over_and_the_others_are_served(store: Arc<dyn Store>) {
    let (a, b) = (tenant(), tenant());
    put(&store, &a, "m", b"m").await;
    put(&store, &b, "m", b"m").await;
    fill(&store, &a, "shared", "a", 3, 0).await;
    fill(&store, &b, "shared", "b", 3, 0).await;
    assert!(store.pause_queue(&a, "shared").await.unwrap());
    let claimed = store.claim("shared", "w", 10, LEASE).await.unwrap();
    assert_eq!(inputs(&claimed), ["b0", "b1", "b2"]);
    assert!(store.resume_queue(&a, "shared").await.unwrap());
    let claimed = store.claim("shared", "w", 10, LEASE).await.unwrap();
    assert_eq!(inputs(&claimed), ["a0", "a1", "a2"]);
}
