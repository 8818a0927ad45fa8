//! Two `wasmq worker` processes on one PostgreSQL tick one every-second schedule: one job
//! per tick, none missed, and still one per tick after one of them is killed (-9).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use common::{Proc, command};
use wasmq_host::queue::{CatchUp, Limits, NewSchedule};
use wasmq_host::schedule::{CronExpr, schedule_of};
use wasmq_tests::guests;
use wasmq_tests::harness::{fresh_store_with_url, put_module};

async fn worker(url: &str) -> Proc {
    let mut proc = Proc::spawn(command(&["worker", "--database-url", url]));
    proc.line_containing("worker starting", Duration::from_secs(60))
        .await;
    proc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_make_one_job_per_tick_even_when_one_is_killed() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "echo", guests::ECHO).await;
    let mut a = worker(&url).await;
    let b = worker(&url).await;
    let cron = CronExpr::parse("* * * * * *", "UTC").unwrap();
    let first = cron.next_after(Utc::now()).unwrap();
    store
        .put_schedule(NewSchedule {
            tenant: "default".into(),
            name: "tick".into(),
            cron: "* * * * * *".into(),
            timezone: "UTC".into(),
            module: "echo".into(),
            input: b"{}".to_vec(),
            queue: "default".into(),
            priority: 0,
            max_attempts: 1,
            limits: Limits::default(),
            catch_up: CatchUp::Skip,
            paused: false,
            next_run_at: Some(first),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let killed_at = Utc::now();
    drop(b); // SIGKILL
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(store.delete_schedule("default", "tick").await.unwrap());
    let stopped_at = Utc::now();

    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM wasmq_jobs WHERE idempotency_key IS NOT NULL",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut per_tick = BTreeMap::<i64, usize>::new();
    for key in &keys {
        assert_eq!(schedule_of(key), Some("tick"), "{key}");
        *per_tick
            .entry(key.rsplit_once(':').unwrap().1.parse().unwrap())
            .or_default() += 1;
    }
    assert!(
        per_tick.values().all(|&n| n == 1),
        "one job per tick: {per_tick:?}"
    );
    let (lo, hi) = (
        *per_tick.keys().next().unwrap(),
        *per_tick.keys().last().unwrap(),
    );
    assert_eq!(lo, first.timestamp(), "the first tick fired");
    assert_eq!(
        per_tick.len() as i64,
        hi - lo + 1,
        "no tick missed: {per_tick:?}"
    );
    assert!(
        hi >= killed_at.timestamp() + 3,
        "ticks went on after the kill: {per_tick:?}"
    );
    assert!(hi <= stopped_at.timestamp() + 1, "{per_tick:?}");
    a.terminate();
    assert!(a.exited(Duration::from_secs(30)).await.success());
}
