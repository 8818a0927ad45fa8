//! Conformance cases for schedules: the rows and their compare-and-set advance (each
//! store), and the scheduler's policy over them (written once, run over every store).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::watch;
use wasmq_host::queue::{
    CatchUp, JobFilter, JobState, Limits, NewSchedule, ScheduleAdvance, Store, StoreEvent,
};
use wasmq_host::schedule::{Scheduler, schedule_of};

use super::{enqueue_one, expect_event, job, put, tenant};

pub(super) fn spec(
    tenant: &str,
    name: &str,
    cron: &str,
    next: Option<DateTime<Utc>>,
) -> NewSchedule {
    NewSchedule {
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        cron: cron.to_owned(),
        timezone: "UTC".to_owned(),
        module: "m".to_owned(),
        input: br#"{"page":7}"#.to_vec(),
        queue: "default".to_owned(),
        priority: 3,
        max_attempts: 2,
        limits: Limits {
            fuel: Some(5_000),
            ..Limits::default()
        },
        catch_up: CatchUp::Skip,
        paused: false,
        next_run_at: next,
    }
}

fn advance(t: &str, name: &str, revision: i64, tick: DateTime<Utc>) -> ScheduleAdvance {
    ScheduleAdvance {
        tenant: t.to_owned(),
        name: name.to_owned(),
        revision,
        tick,
        next_run_at: Some(tick + chrono::Duration::hours(1)),
        job_id: None,
        error: None,
    }
}

/// A put makes or replaces a row (bumping its revision, keeping what its ticks did), is
/// seen only by its tenant, and is gone after a delete.
pub async fn schedules_put_replace_list_delete_per_tenant(store: Arc<dyn Store>) {
    let (t, other) = (tenant(), tenant());
    let next = Utc::now().trunc_subsecs(0) + chrono::Duration::hours(1);
    assert!(
        store
            .put_schedule(spec(&t, "nightly", "0 3 * * *", Some(next)))
            .await
            .unwrap()
    );
    let first = store
        .schedules(&t, Some("nightly"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.spec, spec(&t, "nightly", "0 3 * * *", Some(next)));
    assert_eq!(first.revision, 1);
    assert!(
        store
            .advance_schedule(advance(&t, "nightly", 1, next))
            .await
            .unwrap()
    );

    let replaced = NewSchedule {
        paused: true,
        ..spec(&t, "nightly", "0 4 * * *", Some(next))
    };
    assert!(
        !store.put_schedule(replaced.clone()).await.unwrap(),
        "a replacement"
    );
    let row = store
        .schedules(&t, Some("nightly"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(row.spec, replaced);
    assert_eq!(row.revision, 2);
    assert_eq!(row.last_run_at, Some(next), "what its ticks did is kept");

    store
        .put_schedule(spec(&t, "hourly", "@hourly", Some(next)))
        .await
        .unwrap();
    let names: Vec<_> = store
        .schedules(&t, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    assert!(store.schedules(&other, None).await.unwrap().is_empty());
    assert!(!store.delete_schedule(&other, "nightly").await.unwrap());
    assert!(store.delete_schedule(&t, "nightly").await.unwrap());
    assert!(!store.delete_schedule(&t, "nightly").await.unwrap());
    assert!(
        store
            .schedules(&t, Some("nightly"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A due tick is advanced once: a second advance of the same tick, or one computed from
/// an older revision, is refused, so two nodes cannot both move a schedule on.
pub async fn a_due_schedule_advances_once(store: Arc<dyn Store>) {
    let t = tenant();
    let now = Utc::now().trunc_subsecs(0);
    let tick = now - chrono::Duration::seconds(2);
    store
        .put_schedule(spec(&t, "s", "* * * * * *", Some(tick)))
        .await
        .unwrap();
    let later = now + chrono::Duration::hours(5);
    store
        .put_schedule(spec(&t, "later", "@daily", Some(later)))
        .await
        .unwrap();
    assert_eq!(store.next_schedule_at().await.unwrap(), Some(tick));
    let due = store.due_schedules(now, 10).await.unwrap();
    let due: Vec<_> = due
        .iter()
        .filter(|s| s.spec.tenant == t)
        .map(|s| s.spec.name.as_str())
        .collect();
    assert_eq!(due, ["s"]);

    assert!(
        !store
            .advance_schedule(advance(&t, "s", 0, tick))
            .await
            .unwrap(),
        "stale revision"
    );
    assert!(
        store
            .advance_schedule(advance(&t, "s", 1, tick))
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_schedule(advance(&t, "s", 1, tick))
            .await
            .unwrap(),
        "advanced already"
    );
    assert!(
        store
            .due_schedules(now, 10)
            .await
            .unwrap()
            .iter()
            .all(|s| s.spec.tenant != t)
    );
    let row = store.schedules(&t, Some("s")).await.unwrap().remove(0);
    assert_eq!(
        row.spec.next_run_at,
        Some(tick + chrono::Duration::hours(1))
    );
    assert_eq!(row.last_run_at, Some(tick));
}

/// Paused schedules and schedules with no next tick are never due.
pub async fn paused_schedules_are_never_due(store: Arc<dyn Store>) {
    let t = tenant();
    let past = Utc::now().trunc_subsecs(0) - chrono::Duration::minutes(1);
    let paused = NewSchedule {
        paused: true,
        ..spec(&t, "paused", "* * * * *", Some(past))
    };
    store.put_schedule(paused).await.unwrap();
    store
        .put_schedule(spec(&t, "never", "0 0 30 2 *", None))
        .await
        .unwrap();
    assert!(
        store
            .due_schedules(Utc::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_schedule_at().await.unwrap(), None);
}

/// A schedule shows its last job's state as it is now, and the error of a tick that made
/// none; every node hears that schedules changed.
pub async fn a_schedule_shows_its_last_job_and_error(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let mut events = store.subscribe();
    let tick = Utc::now().trunc_subsecs(0);
    store
        .put_schedule(spec(&t, "s", "@hourly", Some(tick)))
        .await
        .unwrap();
    expect_event(&mut events, "SchedulesChanged", |e| {
        *e == StoreEvent::SchedulesChanged
    })
    .await;
    let made = enqueue_one(&store, job(&t, "m", b"")).await;
    let done = ScheduleAdvance {
        job_id: Some(made.id),
        ..advance(&t, "s", 1, tick)
    };
    let next = done.next_run_at.unwrap();
    assert!(store.advance_schedule(done).await.unwrap());
    let row = store.schedules(&t, Some("s")).await.unwrap().remove(0);
    assert_eq!(
        (row.last_job_id, row.last_job_state),
        (Some(made.id), Some(JobState::Available))
    );
    let failed = ScheduleAdvance {
        error: Some("module `m` does not exist".into()),
        ..advance(&t, "s", 1, next)
    };
    assert!(store.advance_schedule(failed).await.unwrap());
    let row = store.schedules(&t, Some("s")).await.unwrap().remove(0);
    assert_eq!(row.last_job_id, Some(made.id), "the last job made stays");
    assert_eq!(row.last_error.as_deref(), Some("module `m` does not exist"));
}

/// Two schedulers over one store (two nodes) make exactly one job per tick of an
/// every-second schedule, each job with the schedule's template, and no tick missed.
pub async fn two_schedulers_make_one_job_per_tick(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let start = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(1);
    store
        .put_schedule(spec(&t, "every-second", "* * * * * *", Some(start)))
        .await
        .unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let a = tokio::spawn(Scheduler::new(store.clone()).run(stop.clone()));
    let b = tokio::spawn(Scheduler::new(store.clone()).run(stop));
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    stop_tx.send_replace(true);
    a.await.unwrap();
    b.await.unwrap();

    let page = store
        .list(
            &t,
            &JobFilter {
                limit: 100,
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    let mut ticks = BTreeSet::new();
    for j in &page.jobs {
        let key = j
            .idempotency_key
            .as_deref()
            .expect("a schedule's job has its tick's key");
        assert_eq!(schedule_of(key), Some("every-second"));
        let tick: i64 = key.rsplit_once(':').unwrap().1.parse().unwrap();
        assert!(ticks.insert(tick), "one job per tick: {key} twice");
        assert_eq!(
            (j.input.as_slice(), j.priority, j.max_attempts),
            (&br#"{"page":7}"#[..], 3, 2)
        );
        assert_eq!(j.limits.fuel, Some(5_000));
    }
    assert!(ticks.len() >= 3, "a tick a second for 4.5 s: {ticks:?}");
    let (first, last) = (*ticks.first().unwrap(), *ticks.last().unwrap());
    assert_eq!(first, start.timestamp(), "the first tick fired");
    assert_eq!(
        ticks.len() as i64,
        last - first + 1,
        "no tick missed: {ticks:?}"
    );
}

/// A tick whose module was deleted makes no job; the schedule keeps its row, records
/// why, and goes on to its next tick.
pub async fn a_tick_of_a_deleted_module_is_recorded(store: Arc<dyn Store>) {
    let t = tenant();
    let tick = Utc::now().trunc_subsecs(0);
    store
        .put_schedule(spec(&t, "orphan", "@hourly", Some(tick)))
        .await
        .unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let scheduler = tokio::spawn(Scheduler::new(store.clone()).run(stop));
    let row = super::eventually("the tick handled", || async {
        let row = store.schedules(&t, Some("orphan")).await.unwrap().remove(0);
        row.last_run_at.is_some().then_some(row)
    })
    .await;
    stop_tx.send_replace(true);
    scheduler.await.unwrap();
    assert_eq!(row.last_run_at, Some(tick));
    assert!(row.spec.next_run_at.unwrap() > tick);
    assert!(row.last_job_id.is_none());
    let error = row.last_error.expect("the failed enqueue is recorded");
    assert!(error.contains("`m`"), "{error}");
}

/// After downtime, `skip` makes no job for the missed tick and `one` makes exactly one;
/// both move the schedule past now.
pub async fn missed_ticks_are_skipped_or_caught_up_once(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let long_ago = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(3);
    store
        .put_schedule(spec(&t, "skip", "* * * * *", Some(long_ago)))
        .await
        .unwrap();
    let one = NewSchedule {
        catch_up: CatchUp::One,
        ..spec(&t, "one", "* * * * *", Some(long_ago))
    };
    store.put_schedule(one).await.unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let scheduler = tokio::spawn(Scheduler::new(store.clone()).run(stop));
    super::eventually("both handled", || async {
        let rows = store.schedules(&t, None).await.unwrap();
        rows.iter().all(|r| r.last_run_at.is_some()).then_some(())
    })
    .await;
    stop_tx.send_replace(true);
    scheduler.await.unwrap();
    let page = store.list(&t, &JobFilter::default()).await.unwrap();
    let keys: Vec<_> = page
        .jobs
        .iter()
        .filter_map(|j| j.idempotency_key.as_deref())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(schedule_of(keys[0]), Some("one"));
    for row in store.schedules(&t, None).await.unwrap() {
        assert!(row.spec.next_run_at.unwrap() > Utc::now() - chrono::Duration::seconds(5));
    }
}
