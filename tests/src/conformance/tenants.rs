//! Conformance cases for tenant rows and the counts their quotas are checked against.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use wasmq_host::queue::{
    Coalesce, Finish, NewJob, Outcome, QuotaChange, Quotas, Store, StoreError, TenantUsage,
};

use super::{LEASE, claim_one, enqueue_one, job, put, sha256_hex, tenant};

/// An operator's change writes only the quotas it names (`null` one back to unset), a row
/// per tenant; impossible values and names are refused and store nothing.
pub async fn tenant_quotas_change_field_by_field(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    assert_eq!(
        store.tenant(&t).await.unwrap(),
        None,
        "no row until a quota is set"
    );
    let before = Utc::now() - chrono::Duration::seconds(1);
    let row = store
        .set_tenant_quotas(
            &t,
            &QuotaChange {
                max_unfinished_jobs: Some(Some(3)),
                enqueue_rate: Some(Some(2.5)),
                max_schedules: Some(Some(1)),
                ..QuotaChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(row.name, t);
    assert!(row.updated_at >= before, "{row:?}");
    let set = Quotas {
        max_unfinished_jobs: Some(3),
        enqueue_rate: Some(2.5),
        max_schedules: Some(1),
        ..Quotas::default()
    };
    assert_eq!(row.quotas, set);

    // Only what is named changes; `Some(None)` goes back to the default.
    let row = store
        .set_tenant_quotas(
            &t,
            &QuotaChange {
                max_module_bytes: Some(Some(1 << 20)),
                enqueue_rate: Some(None),
                ..QuotaChange::default()
            },
        )
        .await
        .unwrap();
    let changed = Quotas {
        max_module_bytes: Some(1 << 20),
        enqueue_rate: None,
        ..set
    };
    assert_eq!(row.quotas, changed);
    assert_eq!(store.tenant(&t).await.unwrap().unwrap().quotas, changed);
    assert_eq!(store.tenant(&other).await.unwrap(), None, "per tenant");

    for (bad, what) in [
        (
            QuotaChange {
                enqueue_rate: Some(Some(0.0)),
                ..QuotaChange::default()
            },
            "a rate of 0",
        ),
        (
            QuotaChange {
                enqueue_burst: Some(Some(0)),
                ..QuotaChange::default()
            },
            "a burst of 0",
        ),
        (
            QuotaChange {
                max_running: Some(Some(u64::MAX)),
                ..QuotaChange::default()
            },
            "a count past what is stored",
        ),
    ] {
        let e = store.set_tenant_quotas(&t, &bad).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{what}: {e:?}");
    }
    let e = store
        .set_tenant_quotas("Not A Tenant", &QuotaChange::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert_eq!(store.tenant(&t).await.unwrap().unwrap().quotas, changed);
}

/// Use is counted per tenant: unfinished and running jobs (finished ones are not),
/// module bytes once per distinct digest, schedules; the unfinished count stops at its
/// bound.
pub async fn tenant_usage_is_counted_per_tenant(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    assert_eq!(
        store.tenant_usage(&t).await.unwrap(),
        TenantUsage::default()
    );
    put(&store, &t, "a", b"module a").await;
    put(&store, &t, "b", b"module a").await; // the same bytes: counted once
    put(&store, &t, "c", b"module c!").await;
    put(&store, &other, "a", b"another tenant's module").await;
    for i in 0..4u8 {
        enqueue_one(&store, job(&t, "a", &[i])).await;
    }
    enqueue_one(&store, job(&other, "a", b"x")).await;
    // The other tenant's job is the last enqueued: claimed in id order, it stays waiting.
    let first = claim_one(&store, "default", "w", LEASE).await;
    let second = claim_one(&store, "default", "w", LEASE).await;
    assert_eq!(
        (first.tenant.as_str(), second.tenant.as_str()),
        (t.as_str(), t.as_str())
    );
    let done = store
        .finish(vec![Finish::new(
            first.id,
            1,
            Outcome::Complete { result: vec![] },
        )])
        .await
        .unwrap();
    assert_eq!(done, vec![true]);
    let mut spec = super::schedules::spec(&t, "hourly", "0 * * * *", None);
    spec.module = "a".into();
    store.put_schedule(spec).await.unwrap();

    let usage = store.tenant_usage(&t).await.unwrap();
    assert_eq!(
        usage,
        TenantUsage {
            unfinished_jobs: 3,
            running_jobs: 1,
            module_bytes: (b"module a".len() + b"module c!".len()) as u64,
            schedules: 1,
        }
    );
    assert_eq!(store.tenant_usage(&other).await.unwrap().unfinished_jobs, 1);

    assert_eq!(store.unfinished_jobs(&t, 100).await.unwrap(), 3);
    assert_eq!(store.unfinished_jobs(&t, 2).await.unwrap(), 2, "bounded");
    assert_eq!(store.unfinished_jobs(&t, 0).await.unwrap(), 0);

    let stored = store
        .module_bytes_used(&t, &sha256_hex(b"module c!"))
        .await
        .unwrap();
    assert_eq!(stored, (usage.module_bytes, true));
    let new = store
        .module_bytes_used(&t, &sha256_hex(b"another tenant's module"))
        .await
        .unwrap();
    assert_eq!(
        new,
        (usage.module_bytes, false),
        "another tenant's bytes are not its"
    );
}

/// The keys whose enqueue makes no job: an idempotency key of a stored job, a coalesce
/// key of a job not started; per tenant.
pub async fn keys_with_jobs_are_those_that_make_no_job(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    put(&store, &t, "m", b"m").await;
    let keyed = |key: &str| NewJob {
        idempotency_key: Some(key.to_owned()),
        ..job(&t, "m", b"")
    };
    let debounced = |key: &str, priority: i16| NewJob {
        coalesce: Some(Coalesce {
            key: key.to_owned(),
            window: Duration::from_millis(1),
            max: None,
        }),
        priority,
        ..job(&t, "m", b"")
    };
    enqueue_one(&store, keyed("a")).await;
    enqueue_one(&store, debounced("c", 0)).await;
    let started = enqueue_one(&store, debounced("d", 10)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        claim_one(&store, "default", "w", LEASE).await.id,
        started.id
    );

    let idempotency = ["a".to_owned(), "b".to_owned()];
    let coalesce = ["c".to_owned(), "d".to_owned(), "e".to_owned()];
    assert_eq!(
        store
            .keys_with_jobs(&t, &idempotency, &coalesce)
            .await
            .unwrap(),
        2,
        "`a` is stored and `c` waits; `d` started"
    );
    assert_eq!(store.keys_with_jobs(&t, &[], &[]).await.unwrap(), 0);
    assert_eq!(
        store
            .keys_with_jobs(&other, &idempotency, &coalesce)
            .await
            .unwrap(),
        0
    );
}
