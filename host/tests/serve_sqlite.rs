//! `wasmq serve` on the embedded store: it says so in its first log line, and a SIGKILL
//! in the middle of a 5,000-job run loses nothing — after a restart, every job whose
//! enqueue was acknowledged is completed exactly once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_tests::guests;

mod common;

use common::command;

/// Starts `wasmq serve` on `data_dir`, returning the child and its first log line.
async fn start(data_dir: &str, listen: &str) -> (Child, String) {
    let mut child = command(&[
        "serve",
        "--data-dir",
        data_dir,
        "--listen",
        listen,
        "--lease",
        "2s",
    ])
    .env("WASMQ_LOG_FORMAT", "human")
    .env("NO_COLOR", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start wasmq serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {} // keep draining so the server never blocks on a full pipe
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a first log line");
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_on_the_embedded_store_loses_no_acknowledged_job() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");

    let created = command(&["key", "create", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();

    let (mut server, first) = start(data_dir, &listen).await;
    assert!(
        first.contains("embedded SQLite store"),
        "first log line: {first}"
    );
    assert!(
        first.contains(&format!("{data_dir}/wasmq.db")),
        "names the file: {first}"
    );

    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/v1/modules/echo"))
        .bearer_auth(&key)
        .body(std::fs::read(guests::ECHO).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    // Enqueue 5,000 in batches while the workers run; kill -9 half way.
    let mut acknowledged: Vec<(i64, i64)> = Vec::new(); // (id, n)
    for batch in 0..10 {
        if batch == 5 {
            server.kill().unwrap(); // SIGKILL: no shutdown, no flush
            server.wait().unwrap();
        }
        let jobs: Vec<Value> = (0..500)
            .map(|i| json!({"module": "echo", "input": {"n": batch * 500 + i}}))
            .collect();
        let sent = http
            .post(format!("{base}/v1/jobs/batch"))
            .bearer_auth(&key)
            .json(&json!({ "jobs": jobs }))
            .send()
            .await;
        let Ok(resp) = sent else { continue }; // refused: the server is down, not acknowledged
        if resp.status() != 202 {
            continue;
        }
        let body: Value = resp.json().await.unwrap();
        for (i, job) in body["jobs"].as_array().unwrap().iter().enumerate() {
            acknowledged.push((job["id"].as_i64().unwrap(), (batch * 500 + i) as i64));
        }
    }
    assert_eq!(
        acknowledged.len(),
        2_500,
        "the batches before the kill were acknowledged"
    );

    let (mut server, _) = start(data_dir, &listen).await;
    // Every acknowledged job completes, once, with its own result.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (id, n) in &acknowledged {
        loop {
            let job: Value = http
                .get(format!("{base}/v1/jobs/{id}?wait=10s"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["state"] == "completed" {
                assert_eq!(job["result"], json!({ "n": n }), "job {id}");
                let lost = job["history"].as_array().map(|h| h.len()).unwrap_or(0);
                assert!(lost <= 1, "job {id} history: {}", job["history"]);
                break;
            }
            assert!(
                ["available", "running", "retryable", "scheduled"]
                    .contains(&job["state"].as_str().unwrap()),
                "job {id} is {}",
                job["state"]
            );
            assert!(Instant::now() < deadline, "job {id} did not complete");
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
