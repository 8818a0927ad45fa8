//! The dashboard's pages with 1,000,000 jobs in PostgreSQL: how long the overview, the
//! jobs list (filtered, and deep in by cursor) and a job's page take to answer.
//!
//! ```text
//! ./test.sh --no-run && cargo bench -p wasmq-benches --bench ui_pages
//! ```
//!
//! The jobs are written by one `INSERT … SELECT FROM generate_series` (an enqueue of a
//! million jobs would measure the enqueue): 98 % completed, 1 % failed, and the rest
//! available, running or scheduled, over two modules and four queues, as a store looks
//! after a while. The API (no workers) serves on a loopback socket; a client signs in
//! once and then asks each page in turn. Prints the median and the slowest of each.
//! Quick mode (`cargo test --benches`): 20,000 jobs, three asks a page.

use std::time::{Duration, Instant};

use wasmq_host::api::{self, ApiConfig, AppState};
use wasmq_host::queue::Scope;
use wasmq_host::runtime::{Runtime, RuntimeConfig};
use wasmq_tests::guests;
use wasmq_tests::harness::{fresh_store_with_url, put_module};

/// Every job of the bench, in one statement: its state by `i % 100`.
const FILL: &str = r#"
INSERT INTO wasmq_jobs (tenant, module, digest, queue, state, attempt, max_attempts,
                        input, result, usage, progress, error, run_at, created_at,
                        started_at, finished_at)
SELECT 'default',
       CASE WHEN i % 3 = 0 THEN 'wordcount' ELSE 'echo' END,
       $2,
       (ARRAY['default', 'mail', 'reports', 'thumbs'])[1 + i % 4],
       s.state,
       CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END,
       3,
       convert_to('{"n": ' || i || '}', 'UTF8'),
       CASE WHEN s.state = 'completed' THEN convert_to('{"ok": true}', 'UTF8') END,
       CASE WHEN s.state IN ('completed', 'failed')
            THEN '{"fuel": 12345, "memory_peak_bytes": 1114112, "duration_ms": 3}'::jsonb END,
       CASE WHEN s.state = 'running' THEN '{"percent": 40, "note": "resizing"}'::jsonb END,
       CASE WHEN s.state = 'failed'
            THEN '{"kind": "task_error", "message": "the upstream answered 503"}'::jsonb END,
       now() + CASE WHEN s.state = 'scheduled' THEN interval '1 day' ELSE interval '0' END,
       now() - (($1 - i) * interval '10 ms'),
       CASE WHEN s.state IN ('completed', 'failed', 'running') THEN now() END,
       CASE WHEN s.state IN ('completed', 'failed') THEN now() END
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT CASE
         WHEN i % 100 < 98 THEN 'completed'
         WHEN i % 100 = 98 THEN 'failed'
         WHEN i % 400 = 99 THEN 'running'
         WHEN i % 400 = 199 THEN 'scheduled'
         ELSE 'available' END AS state) AS s
"#;

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (jobs, asks): (i64, usize) = if quick { (20_000, 3) } else { (1_000_000, 30) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (store, url) = fresh_store_with_url().await;
        let digest = put_module(&store, "echo", guests::ECHO).await;
        put_module(&store, "wordcount", guests::WORDCOUNT).await;
        let key = store.create_key("default", Some("bench"), &[Scope::Admin]).await.unwrap().key;

        let started = Instant::now();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(FILL).bind(jobs).bind(&digest).execute(&pool).await.unwrap();
        sqlx::query("ANALYZE wasmq_jobs").execute(&pool).await.unwrap();
        println!("ui pages: {jobs} jobs written in {:.1} s", started.elapsed().as_secs_f64());

        let runtime = Runtime::new(RuntimeConfig { slots: 1, ..RuntimeConfig::default() }).unwrap();
        let state = AppState::new(store.clone(), runtime, ApiConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        let login = client
            .post(format!("{base}/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("key={key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303);
        let cookie = login.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();

        let middle = jobs / 2;
        let pages = [
            "/ui".to_owned(),
            "/ui/live/overview".to_owned(),
            "/ui/jobs".to_owned(),
            "/ui/jobs?state=failed".to_owned(),
            "/ui/jobs?module=wordcount&queue=mail".to_owned(),
            format!("/ui/jobs?state=completed&cursor={middle}"),
            format!("/ui/jobs/{middle}"),
        ];
        for page in &pages {
            let mut times = Vec::with_capacity(asks);
            for _ in 0..asks {
                let started = Instant::now();
                let response = client
                    .get(format!("{base}{page}"))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{page}");
                let body = response.text().await.unwrap();
                times.push(started.elapsed());
                assert!(body.contains("</"), "{page} answered HTML");
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "ui pages: {page:<42} median {:6.2} ms, slowest {:6.2} ms ({asks} asks, {jobs} jobs)",
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1]),
            );
        }
    });
}
