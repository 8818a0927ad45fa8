//! Faults under load, with real processes: one of three `wasmq worker` processes killed
//! with SIGKILL while they drain 30,000 jobs, and the database gone for 30 seconds under
//! `wasmq serve` in the middle of a drain. Either way every job completes exactly once
//! (a trigger records every entry into `completed`), and nothing acknowledged is lost.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Proc, command, free_listen, readyz_is, run, text, worker};
use serde_json::{Value, json};
use wasmq_host::queue::{NewJob, Store};
use wasmq_tests::guests;
use wasmq_tests::harness::{job, put_module, store_at};
use wasmq_tests::pg_server::PgServer;

/// `POST {base}/v1/jobs` of an echo job with `input`, as `key`.
async fn post_echo(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    input: Value,
) -> reqwest::Response {
    http.post(format!("{base}/v1/jobs"))
        .bearer_auth(key)
        .json(&json!({"module": "echo", "input": input}))
        .send()
        .await
        .unwrap()
}

/// `GET {base}{path}` as `key`, as JSON.
async fn get_json(http: &reqwest::Client, base: &str, key: &str, path: &str) -> Value {
    let answer = http
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    answer.json().await.unwrap()
}

/// A fresh database on `server` with the completion recorder installed, and a store on it.
async fn recorded_database(server: &str) -> (Arc<dyn Store>, String, sqlx::PgPool) {
    let url = wasmq_tests::pg::fresh_database_on(server).await;
    let store = store_at(&url).await;
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(wasmq_tests::pg::RECORD_COMPLETIONS)
        .execute(&db)
        .await
        .unwrap();
    (store, url, db)
}

/// Enqueues `n` echo jobs in batches.
async fn enqueue_echoes(store: &Arc<dyn Store>, n: usize) {
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(5_000) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|i| job("echo", json!({ "n": i })))
            .collect();
        store.enqueue(jobs).await.unwrap();
    }
}

/// `SELECT count(*) …` on `db`, or `None` while the database cannot answer.
async fn count(db: &sqlx::PgPool, sql: &'static str) -> Option<i64> {
    sqlx::query_scalar(sql).fetch_one(db).await.ok()
}

/// Waits until every job of the database has finished, failing after `within`.
async fn all_finished(db: &sqlx::PgPool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = count(
            db,
            "SELECT count(*) FROM wasmq_jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')",
        )
        .await;
        if left == Some(0) {
            return;
        }
        assert!(Instant::now() < deadline, "{left:?} jobs still unfinished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every one of the `n` jobs completed, each exactly once.
async fn each_completed_once(db: &sqlx::PgPool, n: i64) {
    let jobs = count(db, "SELECT count(*) FROM wasmq_jobs").await;
    let completed = count(
        db,
        "SELECT count(*) FROM wasmq_jobs WHERE state = 'completed'",
    )
    .await;
    let completions = count(db, "SELECT count(*) FROM test_completions").await;
    let distinct = count(db, "SELECT count(DISTINCT job_id) FROM test_completions").await;
    assert_eq!(jobs, Some(n), "no job lost, none added");
    assert_eq!(completed, Some(n), "every job completed");
    assert_eq!(
        (completions, distinct),
        (Some(n), Some(n)),
        "each job completed exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_drain_leaves_every_job_completed_once() {
    const JOBS: i64 = 30_000;
    let server = wasmq_tests::pg::server_url();
    let (store, url, db) = recorded_database(&server).await;
    put_module(&store, "echo", guests::ECHO).await;
    enqueue_echoes(&store, JOBS as usize).await;
    // Short leases: the killed worker's jobs are rescued within seconds.
    let flags = ["--queue", "default=4", "--lease", "3s"];
    let mut victim = worker(&url, &flags).await;
    let mut others = vec![worker(&url, &flags).await, worker(&url, &flags).await];

    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&db, "SELECT count(*) FROM test_completions").await < Some(JOBS / 4) {
        assert!(Instant::now() < deadline, "the workers did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.kill();

    all_finished(&db, Duration::from_secs(300)).await;
    each_completed_once(&db, JOBS).await;
    // The kill cut attempts short: those jobs were rescued and run again elsewhere.
    let rescued = count(
        &db,
        "SELECT count(*) FROM wasmq_jobs WHERE attempt = 2 AND history @> '[{\"kind\": \"lost\"}]'",
    )
    .await;
    assert!(
        rescued > Some(0),
        "the killed worker held no job: {rescued:?}"
    );
    for p in &mut others {
        p.terminate();
        assert!(p.exited(Duration::from_secs(30)).await.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_for_30_seconds_mid_drain_loses_nothing() {
    const JOBS: i64 = 5_000;
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let (store, url, db) = recorded_database(&pg.url()).await;
    let created = run(&["key", "create", "--database-url", &url], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    put_module(&store, "echo", guests::ECHO).await;
    enqueue_echoes(&store, JOBS as usize).await;

    let listen = free_listen();
    let base = format!("http://{listen}");
    let mut serve = Proc::spawn(command(&[
        "serve",
        "--database-url",
        &url,
        "--listen",
        &listen,
        "--queue",
        "default=4",
    ]));
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&db, "SELECT count(*) FROM test_completions").await < Some(JOBS / 5) {
        assert!(Instant::now() < deadline, "the workers did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let gone = Instant::now();
    // While it is gone, an enqueue is refused as unavailable, never taken and lost.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(25))
        .build()
        .unwrap();
    let mut refusals = 0;
    while gone.elapsed() < Duration::from_secs(30) {
        let answer = post_echo(&http, &base, &key, json!({"n": "during"})).await;
        assert_eq!(
            answer.status(),
            503,
            "an enqueue while the database is gone"
        );
        let problem: Value = answer.json().await.unwrap();
        assert!(
            problem["type"]
                .as_str()
                .unwrap_or("")
                .ends_with("unavailable"),
            "{problem}"
        );
        refusals += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(refusals > 0);
    assert!(serve.running(), "serve survives the outage");
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();

    // Back by itself: ready, enqueues taken, the drain finished, each job once.
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let after = post_echo(&http, &base, &key, json!({"n": "after"})).await;
    assert_eq!(after.status(), 202, "{}", after.text().await.unwrap());
    all_finished(&db, Duration::from_secs(180)).await;
    each_completed_once(&db, JOBS + 1).await;
    serve.terminate();
    assert!(serve.exited(Duration::from_secs(30)).await.success());
    drop(pg);
}

/// The last lines `proc` wrote, for a failure's message.
fn tail(proc: &Proc) -> String {
    let lines = proc.lines();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A tmpfs of a given size mounted on a temp dir (root only), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(mounted.success(), "mounting a small tmpfs needs root");
        SmallDisk { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn grow(&self, size: &str) {
        let remounted = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(remounted.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_enqueues_and_loses_no_acknowledged_job() {
    let disk = SmallDisk::mount("3m");
    let artifacts = tempfile::tempdir().unwrap();
    let created = run(&["key", "create", "--data-dir", disk.path()], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    let listen = free_listen();
    let base = format!("http://{listen}");
    let mut serve = Proc::spawn(command(&[
        "serve",
        "--data-dir",
        disk.path(),
        "--artifact-dir",
        artifacts.path().to_str().unwrap(),
        "--listen",
        &listen,
        "--queue",
        "default=2",
    ]));
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key.as_str())];
    let pushed = run(&["module", "push", "echo", guests::ECHO], &client);
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    let http = reqwest::Client::new();
    let post = |path: &str| http.post(format!("{base}{path}")).bearer_auth(&key);
    // Paused, so the jobs wait on the disk rather than finish while it fills.
    let paused = post("/v1/queues/default/pause").send().await.unwrap();
    assert!(paused.status().is_success());

    let filler = "x".repeat(32 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..1_000 {
        let answer = post_echo(&http, &base, &key, json!({"n": n, "fill": filler})).await;
        if answer.status() == 202 {
            let job: Value = answer.json().await.unwrap();
            acknowledged.push((job["id"].as_i64().unwrap(), n));
            continue;
        }
        let status = answer.status();
        let kind = answer.headers()["content-type"].clone();
        refused = Some((status, kind, answer.json::<Value>().await.unwrap()));
        break;
    }
    let (status, kind, problem) = refused.expect("the disk filled up");
    assert_eq!(status, 503, "{problem}");
    assert_eq!(kind, "application/problem+json");
    assert!(
        problem["type"].as_str().unwrap().ends_with("unavailable"),
        "{problem}"
    );
    assert!(
        acknowledged.len() > 10,
        "{} jobs before the disk filled",
        acknowledged.len()
    );
    assert!(serve.running(), "serve survives a full disk");

    let first = get_json(
        &http,
        &base,
        &key,
        &format!("/v1/jobs/{}", acknowledged[0].0),
    )
    .await;
    assert_eq!(first["state"], "available", "{}", first["error"]);

    // Space comes back: the acknowledged jobs all run, with their inputs intact.
    disk.grow("64m");
    let resumed = post("/v1/queues/default/resume").send().await.unwrap();
    assert!(
        resumed.status().is_success(),
        "{}",
        resumed.text().await.unwrap()
    );
    for (id, n) in &acknowledged {
        let got = get_json(&http, &base, &key, &format!("/v1/jobs/{id}?wait=60s")).await;
        assert_eq!(
            got["state"],
            "completed",
            "job {id}: {} {}\n{}",
            got["error"],
            got["started_at"],
            tail(&serve)
        );
        assert_eq!(got["result"]["n"], json!(n), "job {id}");
        assert_eq!(
            got["result"]["fill"].as_str().map(str::len),
            Some(filler.len())
        );
    }
    let again = post_echo(&http, &base, &key, json!({"n": "after"})).await;
    assert!(
        again.status().is_success(),
        "{}",
        again.text().await.unwrap()
    );
    serve.terminate();
    assert!(serve.exited(Duration::from_secs(30)).await.success());
}
