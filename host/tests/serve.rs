//! The `wasmq` binary end to end: `key create`, `serve`, `module push`, `job enqueue
//! --wait`, `job get|log`, and a clean exit on SIGTERM when idle (grace.rs stops it
//! with jobs in flight).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmq_tests::guests;

mod common;

use common::{run as wasmq, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_push_enqueue_wait_and_stop() {
    let url = wasmq_tests::pg::fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");

    let created = wasmq(&["key", "create"], &[("WASMQ_DATABASE_URL", &url)]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    assert!(
        key.starts_with("wq_") && !key.contains('\n'),
        "only the key on stdout: {key}"
    );

    let mut server = common::command(&["serve", "--database-url", &url, "--listen", &listen])
        .args(["--grace", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wasmq serve");
    let client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key.as_str())];
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/readyz")).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pushed = wasmq(&["module", "push", "wordcount", guests::WORDCOUNT], &client);
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    let module: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    assert_eq!(module["version"], 1);

    let input = r#"{"text": "a b a"}"#;
    let done = wasmq(
        &["job", "enqueue", "wordcount", "--input", input, "--wait"],
        &client,
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    let result: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(result["words"], 3);

    let got = wasmq(&["job", "get", "1"], &client);
    let job: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(job["state"], "completed");
    assert!(wasmq(&["job", "log", "1"], &client).status.success());
    let missing = wasmq(&["job", "get", "999"], &client);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("does not exist"),
        "{}",
        text(&missing.stderr)
    );
    let no_key = wasmq(&["job", "get", "1"], &[("WASMQ_URL", base.as_str())]);
    assert!(text(&no_key.stderr).contains("WASMQ_KEY"));

    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
